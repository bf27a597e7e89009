"""Runs: configuration files, planning and building a run, its directory."""
