"""The prompt library: named prompts with immutable numbered versions, labels and tags, their
diffs, and prompt files for git. Imports from core: datasets, prompting, generation, evaluation,
errors, policy; and storage/. runs/ may use it."""
