"""core.atomic: a file is replaced whole or not at all, and a failed write leaves no temp file."""

import os

import pytest

from core import atomic


@pytest.mark.parametrize("durable", [False, True])
def test_a_write_replaces_the_file_whole(tmp_path, durable):
    path = tmp_path / "status.json"
    path.write_text("old")
    inode = path.stat().st_ino
    atomic.write_text(path, "new ✓", durable=durable)
    assert path.read_text(encoding="utf-8") == "new ✓"
    assert (
        path.stat().st_ino != inode
    )  # a new file renamed over the old: readers see one or the other
    assert sorted(p.name for p in tmp_path.iterdir()) == ["status.json"]


def test_an_error_while_writing_keeps_the_old_file_and_removes_the_temp(tmp_path):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"old")
    with pytest.raises(OSError, match="disk full"), atomic.replacing(path) as tmp:
        tmp.write_bytes(b"half a fi")
        raise OSError(28, "disk full")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_the_writer_writes_the_temp_name_beside_the_target(tmp_path):
    path = tmp_path / "tokens.npy"
    with atomic.replacing(path, durable=True) as tmp:
        assert tmp.parent == tmp_path and tmp.name == f".tokens.npy.{os.getpid()}.tmp"
        assert not path.exists()  # nothing under the final name until the block ends
        tmp.write_bytes(b"x")
    assert path.read_bytes() == b"x" and not tmp.exists()


def test_no_temp_is_left_when_the_folder_is_gone(tmp_path):
    with pytest.raises(FileNotFoundError):
        atomic.write_bytes(tmp_path / "missing" / "f", b"x")
