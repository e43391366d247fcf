"""A small YAML (or JSON) document from a file — a providers file, the gateway's backends file — with one-line
errors naming the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from gridshift.errors import DataError


def read_yaml(path: str | Path, what: str = "file") -> Any:
    """The parsed document at ``path``; an unreadable file or invalid YAML is one :class:`DataError`."""
    p = Path(path)
    try:
        return yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise DataError(f"cannot read the {what}: {e.strerror or e}", file=p) from None
    except yaml.YAMLError as e:
        raise DataError(f"not valid YAML: {str(e).splitlines()[0]}", file=p) from None
