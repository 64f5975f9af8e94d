"""Judging outputs: the metric set (ROUGE, BLEU, chrF, similarity, checks, ...), statistics,
repeats, shot curves, verdicts and comparisons. Imports from core: prompting (its embeddings),
reporting, errors, policy; and storage/."""
