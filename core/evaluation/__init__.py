"""Judging outputs: ROUGE (metrics/) and scoring, statistics, repeats, shot curves, verdicts and
comparisons. Imports from core: reporting, errors; and storage/."""
