"""Prompts: designs and presets, shot selection, rendering and fitting to the context window,
embeddings for shots by similarity, and token views. Imports from core: datasets, errors, policy."""
