"""Datasets: Dataset and Example, the built-in dialogues, and CSV/TSV/JSONL import.
Imports from core only errors and policy."""
