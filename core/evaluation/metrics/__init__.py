"""Evaluation metrics as local `evaluate` modules, one folder per metric, loadable offline."""
