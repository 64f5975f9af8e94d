"""Prompt Lab's engine: prompts, models, generation, scoring and data, with no UI code."""
