"""Datasets: Dataset and Example, the built-in dialogues, and CSV/TSV/JSONL import.
May import core.errors and core.policy only."""
