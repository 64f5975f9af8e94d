"""Models: loading, reuse and unloading, the GGUF cache, model facts, and what the operator lets
Prompt Lab open. May import core.errors and core.policy only."""
