"""Served models behind an OpenAI-compatible endpoint: the endpoint and its settings mapping,
the HTTP client, streams, and served runs. May import generation, prompting, models, datasets."""
