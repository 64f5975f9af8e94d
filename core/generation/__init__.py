"""Generation: settings as in Hugging Face `generate`, batched local generation, streaming, the
sampling inspector and per-token confidence. Imports from core: models, prompting, errors."""
