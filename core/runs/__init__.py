"""Runs: the run spec, experiments and their recording, sweeps, background jobs and the
Playground's runs. May import every concern above it and storage/."""
