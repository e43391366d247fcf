"""Helpers for tests, benchmarks and scripts that start GridShift processes (not part of the service)."""
