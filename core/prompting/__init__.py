"""Prompts: designs and presets, shot selection, rendering and fitting to the context window,
embeddings for shots by similarity, and token views. May import core.datasets and core.models."""
