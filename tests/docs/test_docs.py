"""Docs that cannot drift: the settings table, atlas.conf.example, the CLI's commands, the README's commands."""

from __future__ import annotations

import argparse

from pydantic import TypeAdapter

from atlas_cli.config import ALL_SETTINGS, known_keys
from atlas_cli.docs import settings_table
from atlas_cli.main import parser
from atlas_core.settings import iter_keys
from tests.conftest import REPO


def test_configuration_doc_has_the_generated_table() -> None:
    doc = (REPO / "docs" / "configuration.md").read_text()
    assert settings_table() in doc, "docs/configuration.md is stale: run `make docs`"


def test_example_conf_lists_every_key_once_with_a_comment_and_the_default() -> None:
    lines = (REPO / "atlas.conf.example").read_text().splitlines()
    seen: list[str] = []
    for number, line in enumerate(lines):
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        seen.append(key)
        assert lines[number - 1].startswith("# "), f"{key} needs a one-line comment above it"
        if not value:
            continue
        for cls in ALL_SETTINGS:
            for name_key, _, info in iter_keys(cls):
                if name_key == key:
                    parsed = TypeAdapter(info.annotation or str).validate_python(value)
                    assert parsed == info.default, f"{key}={value} in the example but the default is {info.default}"
    assert sorted(seen) == sorted(known_keys()), "atlas.conf.example and the settings classes disagree"


def test_operations_doc_covers_every_cli_command() -> None:
    doc = (REPO / "docs" / "operations.md").read_text()
    subparsers = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    for choice in subparsers._choices_actions:
        assert f"| `atlas {choice.dest}` | {choice.help} |" in doc, f"document `atlas {choice.dest}`"


def test_readme_gives_the_two_commands_and_ci_runs_the_test_one() -> None:
    readme = (REPO / "README.md").read_text()
    assert "make up" in readme and "make test" in readme
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_security_doc_states_every_limit_and_every_services_redis_keys() -> None:
    """docs/security.md lists every limit with its default, and each service's Redis key patterns."""
    import re

    from atlas_core.redis_acl import RULES

    doc = (REPO / "docs" / "security.md").read_text()
    limits = [k for k in known_keys()
              if re.search(r"MAX_|_DEFAULT_|POOL|CONNECTIONS|BUFFER|MAXMEMORY|ALARM|KEEP|QUOTA|TIMEOUT", k)]
    assert [k for k in sorted(limits) if f"`{k}`" not in doc] == []
    redis = doc.partition("### Redis: one ACL user per service")[2].partition("\n## ")[0]
    for service, (keys, _, _) in RULES.items():
        row = next(line for line in redis.splitlines() if line.startswith(f"| {service} |"))
        assert all(f"`{key}`" in row for key in keys), service
