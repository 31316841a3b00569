"""Write locks/<name>.txt: each container image's third-party dependencies, pinned and hash-locked.

pip does not check hashes given in a constraints file (pypa/pip#12956), so each image installs its third-party
dependencies from its lock, checked against these hashes, and only then its own local directories, which cannot be
hash-checked:

    pip install --no-cache-dir --require-hashes --no-deps --only-binary :all: -r locks/api-portal.txt
    pip install --no-cache-dir --no-deps --no-build-isolation ./core ./api-portal

(--only-binary: an sdist would run its build with build requirements pip fetches unchecked; --no-build-isolation:
./core and the service build with the locked setuptools instead of one fetched unchecked into an isolated build
environment.)

A lock holds the closure of what the local distributions in LOCKS need (LOCKS mirrors each Dockerfile's install
step): their pyproject.toml dependencies, with the extras named, and build requirements, then the requirements of
each third-party distribution as the metadata installed in the running environment states them, markers
evaluated for Linux and CPython 3.11 (platform_machine as on this machine). Each one is written at its version in
constraints.txt, with the sha256 of every wheel and sdist that PyPI's simple index lists for that version, so
the lock verifies on any platform. torch is left out (LEFT_OUT): the embedding server installs it alone, from
PyTorch's CPU index, whose files are not on PyPI, so it is the one download of the images that no hash checks (a
lock of its own would need the hashes that index lists; download.pytorch.org was not reachable when this was
written). benchmark has no image; its lock serves the install-alone test.

Regenerate after changing constraints.txt or a pyproject.toml's dependencies, once .venv has them installed
(make install):

    .venv/bin/python scripts/lock.py            # fetches hashes from https://pypi.org/simple/, rewrites locks/
    .venv/bin/python scripts/lock.py --check    # offline: exit 1 if a lock's names or versions are stale

tests/install/test_pins.py makes the --check comparison; tests/install/test_install_alone.py installs each lock
with --require-hashes.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import re
import sys
import textwrap
import tomllib
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import Specifier
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

REPO = Path(__file__).resolve().parent.parent
LOCK_DIR = REPO / "locks"
INDEX_URL = "https://pypi.org/simple/"


@dataclass(frozen=True)
class Lock:
    """What one image installs: its Dockerfile and the local directories (with extras) it passes to pip."""

    dockerfile: str | None
    installs: tuple[str, ...]


LOCKS = {
    "api-portal": Lock("api-portal/Dockerfile", ("core", "api-portal")),
    "dashboard": Lock("dashboard/Dockerfile", ("core", "dashboard")),
    "llm-proxy": Lock("llm-proxy/Dockerfile", ("core", "llm-proxy")),
    "rag-api": Lock("rag-api/Dockerfile", ("core", "engine", "lens", "router", "pageindex", "rag-api")),
    "sandbox": Lock("sandbox/Dockerfile", ("core", "sandbox")),
    "task-worker": Lock("task-worker/Dockerfile", ("core", "engine", "lens", "router", "task-worker")),
    "embedding-server": Lock("llama-server/Dockerfile.embed", ("core", "llama-server[embed]")),
    "benchmark": Lock(None, ("core", "engine", "lens", "router", "benchmark")),
    "engine": Lock(None, ("core", "engine")),
    "lens": Lock(None, ("core", "engine", "lens")),
    "router": Lock(None, ("core", "engine", "router")),
    "pageindex": Lock(None, ("core", "pageindex")),
}
# In a closure, but installed by another step of the Dockerfile and so not written to the lock (its own
# requirements are).
LEFT_OUT = {
    "torch": "llama-server/Dockerfile.embed (and rag-api's and task-worker's, for the Lens) install its CPU build"
    " alone, unhashed, from PyTorch's CPU index;"
    " that wheel is not on PyPI, whose Linux x86_64 wheel of the same version is the CUDA build (it requires"
    " cuda-toolkit and nvidia-* packages)",
}
# Linux, CPython 3.11: what every image runs (python:3.11-slim).
ENVIRONMENT: dict[str, str] = {key: str(value) for key, value in default_environment().items()} | {
    "os_name": "posix",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_python_implementation": "CPython",
    "implementation_name": "cpython",
    "python_version": "3.11",
}


class LockError(Exception):
    """The environment, constraints.txt and the pyproject files do not give a complete, consistent lock."""


@dataclass(frozen=True)
class LocalDistribution:
    directory: str
    dependencies: tuple[str, ...]
    optional: dict[str, tuple[str, ...]]
    build_requires: tuple[str, ...]


def local_distributions() -> dict[NormalizedName, LocalDistribution]:
    """The repository's own distributions by PEP 503 name, read from each */pyproject.toml."""
    found: dict[NormalizedName, LocalDistribution] = {}
    for pyproject in sorted(REPO.glob("*/pyproject.toml")):
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        project = data["project"]
        found[canonicalize_name(project["name"])] = LocalDistribution(
            directory=pyproject.parent.name,
            dependencies=tuple(project.get("dependencies", [])),
            optional={extra: tuple(reqs) for extra, reqs in project.get("optional-dependencies", {}).items()},
            build_requires=tuple(data.get("build-system", {}).get("requires", [])),
        )
    return found


def read_pins(path: Path = REPO / "constraints.txt") -> dict[NormalizedName, str]:
    """constraints.txt as {PEP 503 name: version}; every requirement line must be `name==version`."""
    pins: dict[NormalizedName, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line)
        if match is None:
            raise LockError(f"{path.name}: {line!r} is not `name==version`")
        pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def closure(installs: tuple[str, ...]) -> dict[NormalizedName, set[str]]:
    """Third-party distributions (PEP 503 names) that installing these local directories needs, each with what
    requires it. Third-party requirements come from the metadata installed in the running environment."""
    local = local_distributions()
    by_directory = {dist.directory: name for name, dist in local.items()}
    installed: set[NormalizedName] = set()
    todo: list[tuple[NormalizedName, str, str]] = []  # (requirer, requirement, extra it comes with or "")
    for spec in installs:
        directory, _, extras = spec.partition("[")
        if directory not in by_directory:
            raise LockError(f"{directory}/pyproject.toml not found")
        name = by_directory[directory]
        installed.add(name)
        dist = local[name]
        todo += [(name, text, "") for text in (*dist.dependencies, *dist.build_requires)]
        for extra in filter(None, extras.rstrip("]").split(",")):
            extra = extra.strip()
            if extra not in dist.optional:
                raise LockError(f"{directory} has no extra {extra!r}")
            todo += [(name, text, extra) for text in dist.optional[extra]]

    needed: dict[NormalizedName, set[str]] = {}
    done: set[tuple[NormalizedName, str]] = set()  # (distribution, extra or "") whose requirements are queued
    while todo:
        requirer, text, extra = todo.pop()
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate({**ENVIRONMENT, "extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        if name in local:
            if name not in installed:
                raise LockError(f"{requirer} requires {name}, a local distribution the lock does not install")
            continue
        needed.setdefault(name, set()).add(requirer)
        for wanted in ("", *sorted(requirement.extras)):
            if (name, wanted) in done:
                continue
            done.add((name, wanted))
            try:
                requires = importlib.metadata.distribution(name).requires or []
            except importlib.metadata.PackageNotFoundError:
                raise LockError(f"{name} (required by {requirer}) is not installed here: make install first") from None
            # Evaluated with extra == wanted: an extra's requirements come with it, the others with any extra.
            todo += [(name, text, wanted) for text in requires]
    return needed


def expected(name: str, pins: dict[NormalizedName, str] | None = None) -> dict[NormalizedName, str]:
    """{PEP 503 name: version} that locks/<name>.txt must hold now (offline: metadata and constraints.txt)."""
    pins = read_pins() if pins is None else pins
    versions: dict[NormalizedName, str] = {}
    problems: list[str] = []
    for dist, requirers in sorted(closure(LOCKS[name].installs).items()):
        if dist not in pins:
            problems.append(f"{dist} (required by {', '.join(sorted(requirers))}) is not pinned in constraints.txt")
            continue
        have = importlib.metadata.version(dist)
        if not Specifier(f"=={pins[dist]}").contains(have, prereleases=True):
            problems.append(f"constraints.txt pins {dist}=={pins[dist]} but {have} is installed: make install")
        if dist not in LEFT_OUT:
            versions[dist] = pins[dist]
    if problems:
        raise LockError(f"locks/{name}.txt: " + "; ".join(problems))
    return versions


def read_lock(path: Path) -> dict[NormalizedName, tuple[str, list[str]]]:
    """A lock file as {PEP 503 name: (version, [sha256, ...])}."""
    entries: dict[NormalizedName, tuple[str, list[str]]] = {}
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement, *options = line.split()
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", requirement)
        if match is None:
            raise LockError(f"{path.name}: {requirement!r} is not `name==version`")
        hashes = [option.removeprefix("--hash=sha256:") for option in options if option.startswith("--hash=sha256:")]
        entries[canonicalize_name(match.group(1))] = (match.group(2), hashes)
    return entries


def file_version(filename: str) -> Version | None:
    """The version a wheel's or sdist's file name carries; None for other kinds of file."""
    try:
        if filename.endswith(".whl"):
            return parse_wheel_filename(filename)[1]
        if filename.endswith((".tar.gz", ".zip")):
            return parse_sdist_filename(filename)[1]
    except (InvalidWheelFilename, InvalidSdistFilename):
        pass
    return None


def index_hashes(name: NormalizedName, version: str, index_url: str = INDEX_URL) -> list[str]:
    """The sha256 of every wheel and sdist the simple index (PEP 691 JSON) lists for name==version."""
    url = f"{index_url.rstrip('/')}/{name}/"
    request = urllib.request.Request(url, headers={"Accept": "application/vnd.pypi.simple.v1+json"})  # noqa: S310
    for attempt in range(3):
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 (https unless --index-url)
                files: list[dict[str, Any]] = json.load(response)["files"]
            break
        except OSError:
            if attempt == 2:
                raise
    wanted = Version(version)
    hashes = sorted({file["hashes"]["sha256"] for file in files if file_version(file["filename"]) == wanted})
    if not hashes:
        raise LockError(f"{index_url} lists no file for {name}=={version}")
    return hashes


def render(
    name: str, versions: dict[NormalizedName, str], hashes: dict[tuple[NormalizedName, str], list[str]]
) -> str:
    """The text of locks/<name>.txt, in pip-compile's layout: one requirement, then its hashes, one a line."""
    lock = LOCKS[name]
    what = f"{lock.dockerfile} installs" if lock.dockerfile else "The install-alone test installs"
    lines = [
        f"# locks/{name}.txt: written by scripts/lock.py from constraints.txt; do not edit (see its docstring).",
        f"# {what} these with --require-hashes --no-deps, then {' '.join('./' + d for d in lock.installs)}.",
    ]
    for dist, why in LEFT_OUT.items():
        if dist in closure(lock.installs):
            note = f"{dist} is not here: {why}."
            lines += textwrap.wrap(note, width=116, initial_indent="# ", subsequent_indent="# ",
                                   break_on_hyphens=False)
    for dist, version in sorted(versions.items()):
        options = [f"{dist}=={version}", *(f"    --hash=sha256:{digest}" for digest in hashes[dist, version])]
        lines.append(" \\\n".join(options))
    return "\n".join(lines) + "\n"


def check() -> list[str]:
    """What is stale in locks/, offline: names and versions against expected(), and at least one hash each."""
    problems = []
    for name in LOCKS:
        path = LOCK_DIR / f"{name}.txt"
        if not path.exists():
            problems.append(f"{path.relative_to(REPO)} is missing")
            continue
        entries = read_lock(path)
        have = {dist: version for dist, (version, _) in entries.items()}
        want = expected(name)
        if have != want:
            extra = sorted(f"{d}=={v}" for d, v in have.items() if want.get(d) != v)
            missing = sorted(f"{d}=={v}" for d, v in want.items() if have.get(d) != v)
            problems.append(f"locks/{name}.txt holds {extra or 'nothing else'} but should hold {missing or 'no more'}")
        problems += [f"locks/{name}.txt: {dist} has no hash" for dist, (_, digests) in entries.items() if not digests]
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="offline: exit 1 if a lock is stale, write nothing")
    parser.add_argument("--index-url", default=INDEX_URL, help=f"simple index to read hashes from ({INDEX_URL})")
    args = parser.parse_args()
    if sys.version_info[:2] != (3, 11):
        sys.exit("lock: run with .venv/bin/python (Python 3.11): the locks follow its installed metadata")
    try:
        if args.check:
            problems = check()
            print("\n".join(problems) or "lock: locks/ is up to date")
            sys.exit(1 if problems else 0)
        wanted = {name: expected(name) for name in LOCKS}
        pairs = sorted({(dist, version) for versions in wanted.values() for dist, version in versions.items()})
        with ThreadPoolExecutor(max_workers=8) as pool:
            found = pool.map(lambda pair: index_hashes(pair[0], pair[1], args.index_url), pairs)
            digests = dict(zip(pairs, found, strict=True))
    except (LockError, OSError) as error:
        sys.exit(f"lock: {error}")
    LOCK_DIR.mkdir(exist_ok=True)
    for name, versions in wanted.items():
        path = LOCK_DIR / f"{name}.txt"
        path.write_text(render(name, versions, digests), encoding="utf-8")
        count = sum(len(digests[pair]) for pair in versions.items())
        print(f"lock: wrote {path.relative_to(REPO)} ({len(versions)} distributions, {count} hashes)")


if __name__ == "__main__":
    main()
