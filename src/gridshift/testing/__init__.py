"""Helpers for tests, benchmarks and scripts that start GridShift processes."""
