"""core's Redis Lua scripts, kept in ``atlas_core/lua/*.lua``: each says what it does, each one is used, each
compiles in a real Redis, and the wheel carries them (a non-editable install reads them as package data)."""

from __future__ import annotations

import tomllib
from importlib.resources import files

import pytest

from atlas_core import lua, queue, ratelimit
from atlas_rag import solver
from tests.conftest import REPO, RedisServer

NAMES = sorted(f.name.removesuffix(".lua") for f in files("atlas_core.lua").iterdir() if f.name.endswith(".lua"))
SCRIPTS = {**{f"queue {name}": body for name, body in queue.SCRIPTS.items()},
           "ratelimit admit": ratelimit.ADMIT, "ratelimit finish": ratelimit.FINISH,
           "ratelimit stream": ratelimit.STREAM, "rag-api admission": solver.ADMIT}


@pytest.mark.parametrize("name", NAMES)
def test_each_file_opens_with_what_it_does_and_its_keys_and_argv(name: str) -> None:
    header = []
    for line in lua.read(name).splitlines():
        if not line.startswith("--"):
            break
        header.append(line)
    assert header, f"{name}.lua does not open with a comment"
    assert any("KEYS" in line for line in header) and any("ARGV" in line for line in header), name


@pytest.mark.parametrize("name", NAMES)
def test_each_file_is_used(name: str) -> None:
    assert any(lua.read(name) in body for body in SCRIPTS.values()), f"{name}.lua is in no script"


def test_a_missing_script_is_an_error() -> None:
    with pytest.raises(FileNotFoundError):
        lua.read("no_such_script")


def test_every_script_compiles_in_redis(redis_server: RedisServer) -> None:
    with redis_server.client() as client:
        for label, body in SCRIPTS.items():
            sha = client.script_load(body)
            assert client.script_exists(sha) == [True], label


def test_the_package_data_includes_the_scripts() -> None:
    # A non-editable install (the Dockerfiles', tests/install's) has only what package-data names.
    config = tomllib.loads((REPO / "core" / "pyproject.toml").read_text())
    assert "*.lua" in config["tool"]["setuptools"]["package-data"]["atlas_core.lua"]
