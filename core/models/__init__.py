"""Models: loading, reuse and unloading, the GGUF cache, model facts, and what the operator lets
Prompt Lab open. Imports from core: prompting (for chat templates), errors, policy."""
