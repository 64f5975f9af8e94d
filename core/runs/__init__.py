"""Runs: the run spec, experiments with their local and served backends, recording, sweeps,
background jobs and the Playground's runs. Imports any package above and storage/; not cli/."""
