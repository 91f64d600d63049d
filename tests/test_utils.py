"""Atomic writes: all or nothing, and ordinary file permissions."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from inpaint_hub import utils
from inpaint_hub.utils import atomic_write, atomic_write_text


def test_atomic_write_gives_umask_permissions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    current = os.umask(0o022)
    os.umask(current)
    atomic_write_text(tmp_path / "a.txt", "hello")
    assert (tmp_path / "a.txt").read_text() == "hello"
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o666 & ~current  # not mkstemp's 0o600
    monkeypatch.setattr(utils, "_UMASK", 0o027)
    atomic_write_text(tmp_path / "b.txt", "hello")
    assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o640


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "b.txt"
    atomic_write_text(target, "old")

    def broken(tmp: str) -> None:
        Path(tmp).write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, broken)
    assert target.read_text() == "old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["b.txt"]
