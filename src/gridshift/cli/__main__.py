"""``python -m gridshift.cli``: the ``gridshift`` command."""

from gridshift.cli.main import main

main()
