"""Rewrite the generated settings table in docs/configuration.md from the settings classes."""

from __future__ import annotations

from pathlib import Path

from atlas_cli.docs import BEGIN, END, settings_table

path = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
text = path.read_text(encoding="utf-8")
head, _, rest = text.partition(BEGIN)
_, _, tail = rest.partition(END)
path.write_text(head + settings_table() + tail, encoding="utf-8")
print(f"updated {path}")
