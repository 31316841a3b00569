"""constraints.txt pins every third-party distribution installed here, at the version installed, and each image's
lock (locks/<name>.txt) holds exactly its dependency closure at those versions, with hashes. Fast and offline: reads
the running environment's metadata and the text of constraints.txt, the locks and the Dockerfiles."""

from __future__ import annotations

import importlib.metadata
import re

import pytest
from packaging.specifiers import Specifier
from packaging.utils import canonicalize_name

from scripts.lock import LOCK_DIR, LOCKS, expected, read_lock
from tests.conftest import REPO

# Installers, which venv puts there: they need no pin (setuptools has one, for the images' builds; when pinned, the
# version must match like any other).
UNPINNED = {"pip", "setuptools", "wheel"}


def constraint_pins() -> dict[str, str]:
    """constraints.txt as {PEP 503 name: the version after ==}; any other kind of line fails."""
    pins: dict[str, str] = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line)
        assert match, f"constraints.txt: {line!r} is not `name==version`"
        name = canonicalize_name(match.group(1))
        assert name not in pins, f"constraints.txt pins {name} twice"
        pins[name] = match.group(2)
    return pins


def installed_third_party() -> dict[str, str]:
    """{PEP 503 name: version} of this environment's distributions, less the project's own."""
    installed: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        if not name.startswith("atlas-"):
            installed[name] = dist.version
    return installed


def test_every_installed_distribution_is_pinned_at_its_installed_version() -> None:
    pins = constraint_pins()
    installed = installed_third_party()
    unpinned = sorted(
        f"{name}=={version}" for name, version in installed.items() if name not in pins and name not in UNPINNED
    )
    # `==` as pip reads it: a pin without a local label matches that version's local builds (torch==2.13.0 is the
    # +cpu wheel installed here), so a pin that pip would accept for the installed version passes.
    wrong = sorted(
        f"{name}: pinned =={pins[name]}, installed {version}"
        for name, version in installed.items()
        if name in pins and not Specifier(f"=={pins[name]}").contains(version, prereleases=True)
    )
    assert not unpinned, f"installed but not pinned in constraints.txt: {' '.join(unpinned)}"
    assert not wrong, f"pinned at another version than installed: {'; '.join(wrong)}"


def test_every_pin_is_installed() -> None:
    installed = {canonicalize_name(dist.metadata["Name"]) for dist in importlib.metadata.distributions()}
    stale = sorted(set(constraint_pins()) - installed)
    assert not stale, f"pinned in constraints.txt but not installed (remove them): {' '.join(stale)}"


# The hash-locked requirement files the images install from (scripts/lock.py writes them).


@pytest.mark.parametrize("name", sorted(LOCKS))
def test_lock_pins_the_constraints_versions_with_hashes(name: str) -> None:
    pins = constraint_pins()
    entries = read_lock(LOCK_DIR / f"{name}.txt")
    assert entries, f"locks/{name}.txt is empty"
    for dist, (version, hashes) in entries.items():
        assert pins.get(dist) == version, f"locks/{name}.txt: {dist}=={version}, constraints.txt: {pins.get(dist)}"
        assert hashes, f"locks/{name}.txt: {dist} has no hash"
        assert all(re.fullmatch(r"[0-9a-f]{64}", digest) for digest in hashes), f"locks/{name}.txt: {dist}"


@pytest.mark.parametrize("name", sorted(LOCKS))
def test_lock_is_what_lock_py_would_write_now(name: str) -> None:
    """Names and versions only: the dependency closure is computed offline from the installed metadata; the hashes
    need PyPI, and the install-alone test checks them."""
    have = {dist: version for dist, (version, _) in read_lock(LOCK_DIR / f"{name}.txt").items()}
    want = expected(name)
    assert have == want, (
        f"locks/{name}.txt is stale (run .venv/bin/python scripts/lock.py): "
        f"only in the lock {sorted(set(have.items()) - set(want.items()))}, "
        f"missing {sorted(set(want.items()) - set(have.items()))}"
    )


def test_every_dockerfile_has_a_lock() -> None:
    dockerfiles = {str(path.relative_to(REPO)) for path in REPO.glob("*/Dockerfile*")}
    assert dockerfiles == {lock.dockerfile for lock in LOCKS.values() if lock.dockerfile}


@pytest.mark.parametrize("name", sorted(name for name, lock in LOCKS.items() if lock.dockerfile))
def test_dockerfile_installs_its_lock_with_hashes_then_its_local_directories(name: str) -> None:
    lock = LOCKS[name]
    assert lock.dockerfile
    text = (REPO / lock.dockerfile).read_text()
    assert f"\nCOPY locks/{name}.txt ./locks/\n" in text
    assert re.search(rf"pip install [^\n]*--require-hashes [^\n]*--no-deps [^\n]*-r locks/{name}\.txt", text)
    local = re.search(r"pip install [^\n]*--no-deps --no-build-isolation ([^\n]*)", text)
    assert local, f"{lock.dockerfile} installs no local directories with --no-deps --no-build-isolation"
    assert local.group(1).replace('"', "").split() == [f"./{spec}" for spec in lock.installs]
