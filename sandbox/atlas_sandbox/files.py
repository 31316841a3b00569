"""Work directories: one per candidate, written without following links, removed after the call."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}$")
MAX_DEPTH = 4
MAX_FILES = 64
MAX_TOTAL_BYTES = 16 * 1024 * 1024


class BadFiles(ValueError):
    """A caller-supplied file name or set of files is refused (400)."""


def check_names(files: Mapping[str, str]) -> None:
    """Relative paths of plain names only: no absolute path, no ``..``, no hidden tricks, a few levels deep."""
    if len(files) > MAX_FILES:
        raise BadFiles(f"files: at most {MAX_FILES} files")
    if sum(len(v.encode()) for v in files.values()) > MAX_TOTAL_BYTES:
        raise BadFiles(f"files: at most {MAX_TOTAL_BYTES // (1024 * 1024)} MB in all")
    for name in files:
        parts = name.split("/")
        if len(parts) > MAX_DEPTH or not all(_NAME.fullmatch(p) and p not in (".", "..") for p in parts):
            raise BadFiles(f"files: {name[:100]!r} is not a relative path of plain names (letters, digits, "
                           f"'_', '-', '.'; no '..', no leading '/', at most {MAX_DEPTH} levels)")


def write(root: Path, name: str, content: str) -> None:
    """Create ``root/name`` (and its folders) refusing to follow or replace anything already there."""
    parts = name.split("/")
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o755, dir_fd=fd)
            os.chmod(part, 0o755, dir_fd=fd)  # noqa: S103 - the run uid reads it; atlas up sets umask 077
            nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nxt
        try:
            out = os.open(parts[-1], os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=fd)
        except FileExistsError:
            raise BadFiles(f"files: {name!r} clashes with a file the sandbox writes itself") from None
        os.fchmod(out, 0o644)  # the run uid reads it, whatever the service's umask
        with os.fdopen(out, "w", encoding="utf-8") as f:
            f.write(content)
    finally:
        os.close(fd)


def check_reachable(path: Path) -> None:
    """Every folder above the work directories must let other users pass (x), or the run uid cannot reach its
    own directory and every run fails; say so at start instead."""
    for parent in [path, *path.parents]:
        if not os.stat(parent).st_mode & 0o001:
            raise OSError(f"{parent} is not searchable by other users (chmod o+x), so sandboxed runs cannot "
                          "reach their work directory; set ATLAS_SANDBOX_WORK_DIR to a folder under one that is")


class WorkDirs:
    def __init__(self, base: Path | None) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="atlas-sandbox-", dir=base))
        os.chmod(self.base, 0o711)  # noqa: S103 - the run uid may enter its own directory, list none

    def new(self) -> Path:
        return Path(tempfile.mkdtemp(dir=self.base))

    @staticmethod
    def remove(path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)  # rmtree never follows symlinks a program left behind

    def close(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)
