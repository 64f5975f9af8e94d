"""Reporting: CSV export and the catalogue of stored experiments. Imports from core only errors;
and storage/."""
