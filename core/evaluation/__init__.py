"""Judging outputs: ROUGE (metrics/) and other scores, statistics, repeats, shot curves,
verdicts and comparisons. May import core.runs' records through storage/, never a backend."""
