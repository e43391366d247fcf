"""The ``gridshift`` command: parse, call, print. Each module holds the commands of one area."""

from gridshift.cli.main import app, main

__all__ = ["app", "main"]
