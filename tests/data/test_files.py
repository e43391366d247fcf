"""The one atomic writer: old or new content, never half; nothing left behind on failure; normal file mode."""

from __future__ import annotations

import json
import os

import pytest

from gridshift.data import files


def test_replaces_whole_file_and_leaves_no_temporary(tmp_path):
    p = tmp_path / "sub" / "a.json"
    files.write_json_atomic(p, {"x": 1})
    files.write_json_atomic(p, {"x": 2}, indent=1, sort_keys=True)
    assert json.loads(p.read_text()) == {"x": 2}
    assert sorted(x.name for x in p.parent.iterdir()) == ["a.json"]


def test_failure_keeps_the_old_file_and_removes_the_temporary(tmp_path, monkeypatch):
    p = tmp_path / "a.txt"
    files.write_text_atomic(p, "old")

    def broken(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk gone"):
        files.write_text_atomic(p, "new")
    assert p.read_text() == "old"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.txt"]


def test_mode_follows_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        files.write_bytes_atomic(tmp_path / "b", b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "b").stat().st_mode & 0o777 == 0o640


def test_nan_refused_when_asked(tmp_path):
    with pytest.raises(ValueError):
        files.write_json_atomic(tmp_path / "c.json", {"x": float("nan")}, allow_nan=False)
    assert not any(tmp_path.iterdir())
