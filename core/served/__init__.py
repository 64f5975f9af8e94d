"""Served models behind an OpenAI-compatible endpoint: the endpoint and its settings mapping,
the HTTP client with retries, and streams. Imports generation, prompting, policy, errors; never
runs/ or storage/ (a served run is runs/served.py)."""
