"""Versioned Lens weights in the state directory, published atomically, loaded only after they check out.

Layout under ``<state dir>/lens/``::

    versions/v0001/lens.safetensors   the tensors (safetensors: never a pickle)
    versions/v0001/meta.json          features, energy centre/scale, training report, validation AUC, sha256
    current                           the live version's name, replaced atomically (rename)

A version directory is complete before ``current`` names it (written under a temporary name, then renamed), so a
reader never sees half a version. The previous live version is kept for ``atlas lens rollback``; at most
``keep`` versions stay on disk."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from atlas_lens.model import BadWeights, LensModel, from_tensors

FORMAT = 1
WEIGHTS = "lens.safetensors"
META = "meta.json"
VERSION = re.compile(r"^v(\d{4,9})$")
MAX_META_BYTES = 1024 * 1024


def lens_dir(state_dir: Path) -> Path:
    return state_dir / "lens"


class WeightStore:
    def __init__(self, root: Path, keep: int = 5) -> None:
        self.root = root
        self.versions_dir = root / "versions"
        self.keep = max(2, keep)

    def versions(self) -> list[str]:
        if not self.versions_dir.is_dir():
            return []
        return sorted((p.name for p in self.versions_dir.iterdir() if VERSION.match(p.name)),
                      key=lambda n: int(n[1:]))

    def current(self) -> str | None:
        """The live version's name (None: none published)."""
        try:
            name = (self.root / "current").read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return name if VERSION.match(name) else None

    def pointer_stamp(self) -> tuple[int, int] | None:
        """What changes when ``current`` is replaced (its inode and mtime): cheap to poll."""
        try:
            st = (self.root / "current").stat()
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns

    def publish(self, model: LensModel, meta: dict[str, Any]) -> str:
        """Write a new version and make it live; returns its name."""
        self.versions_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        existing = self.versions()
        name = f"v{(int(existing[-1][1:]) + 1) if existing else 1:04d}"
        tmp = self.versions_dir / f".tmp-{name}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(mode=0o700)
        save_file(model.tensors(), str(tmp / WEIGHTS))
        digest = hashlib.sha256((tmp / WEIGHTS).read_bytes()).hexdigest()
        full = meta | {"format": FORMAT, "version": name, "created": time.time(), "previous": self.current(),
                       "dim": model.dim, "centre": model.centre, "scale": model.scale, "sha256": digest}
        (tmp / META).write_text(json.dumps(full, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.versions_dir / name)
        self.point(name)
        self._prune()
        return name

    def point(self, name: str) -> None:
        """Make ``name`` the live version (atomically)."""
        if name not in self.versions():
            raise BadWeights(f"no version {name} under {self.versions_dir}")
        tmp = self.root / f".current-{os.getpid()}"
        tmp.write_text(name + "\n", encoding="utf-8")
        os.replace(tmp, self.root / "current")

    def rollback(self) -> str:
        """Make the version before the live one live again; returns its name."""
        live = self.current()
        if live is None:
            raise BadWeights("no weights are live: nothing to roll back")
        previous = self.meta(live).get("previous")
        if not isinstance(previous, str) or previous not in self.versions():
            raise BadWeights(f"{live} names no earlier version that is still kept")
        self.point(previous)
        return previous

    def meta(self, name: str) -> dict[str, Any]:
        path = self.versions_dir / name / META
        try:
            if path.stat().st_size > MAX_META_BYTES:
                raise BadWeights(f"{path} is larger than {MAX_META_BYTES} bytes")
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BadWeights(f"{path} is unreadable ({type(exc).__name__}: {exc})") from None
        if not isinstance(meta, dict):
            raise BadWeights(f"{path} is not a JSON object")
        return meta

    def load(self, name: str) -> LensModel:
        """The version's model, or BadWeights saying why it cannot be used (a wrong format, a checksum that does
        not match, tensors of the wrong shape or not finite)."""
        if not VERSION.match(name):
            raise BadWeights(f"{name!r} is not a version name")
        meta = self.meta(name)
        if meta.get("format") != FORMAT:
            raise BadWeights(f"{name}: format {meta.get('format')!r}, this service reads format {FORMAT}")
        try:
            dim, centre, scale = int(meta["dim"]), float(meta["centre"]), float(meta["scale"])
            digest = str(meta["sha256"])
        except (KeyError, TypeError, ValueError) as exc:
            raise BadWeights(f"{name}: meta.json lacks a usable {exc}") from None
        path = self.versions_dir / name / WEIGHTS
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise BadWeights(f"{name}: {WEIGHTS} is unreadable ({exc.strerror})") from None
        if hashlib.sha256(raw).hexdigest() != digest:
            raise BadWeights(f"{name}: {WEIGHTS} does not match its recorded sha256 (corrupt or altered)")
        try:
            tensors = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise BadWeights(f"{name}: {WEIGHTS} is not a readable safetensors file ({exc})") from None
        return from_tensors(tensors, dim, centre, scale, meta)

    def _prune(self) -> None:
        live = self.current()
        keep = set(self.versions()[-self.keep:]) | {live}
        if live is not None:
            keep.add(self.meta(live).get("previous") or live)
        for name in self.versions():
            if name not in keep:
                shutil.rmtree(self.versions_dir / name, ignore_errors=True)
