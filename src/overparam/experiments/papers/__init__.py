"""Experiment specs, one module per paper; every module here is imported by the registry."""
