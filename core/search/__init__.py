"""Prompt search: designs (shots, their number, order and format, instructions) explored on a
selection set, the winner then tested once against the base on a locked test set."""
