"""The Redis Lua scripts of atlas_core, one per ``.lua`` file beside this module, read by name.

They live in files rather than Python strings so an editor, a linter or ``redis-cli --eval`` sees plain Lua;
each file's opening comment says what it does, its KEYS and its ARGV. They are package data (see
``core/pyproject.toml``), read through ``importlib.resources`` so an installed wheel finds them as the source
tree does. A ``*_lib_*`` file holds functions, not a script: it goes before the scripts that call them.

    submit = redis.register_script(source("queue_lib_finished", "queue_submit"))
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files


@cache
def read(name: str) -> str:
    """The text of ``<name>.lua``; FileNotFoundError when there is no such script."""
    return files(__name__).joinpath(f"{name}.lua").read_text(encoding="utf-8")


def source(*names: str) -> str:
    """The files ``names``, in order, as one script: the functions a script calls first, then the script."""
    return "\n".join(read(name) for name in names)
