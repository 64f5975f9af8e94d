"""Reporting: CSV export and the catalogue of stored experiments. May import core.evaluation,
core.runs and storage/."""
