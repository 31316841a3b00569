"""The language registry: adding a language is one entry (file name, compile step, run step, version).

Commands name programs, not paths: they are looked up on RUNTIME_PATH, the system directories bound read-only
into every sandbox, so a toolchain in a user's home (rustup's ~/.cargo) is never what untrusted code runs.
In argument lists ``{src}`` is the source file and ``{exe}`` the compiled program, both in the work directory.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

# The distribution's runtimes first: a container image's own Python (the service's) lives in /usr/local.
RUNTIME_PATH = "/usr/bin:/bin:/usr/local/bin"
# Parses the file without running it, so a syntax error is a compile failure, not a runtime one.
_PY_SYNTAX = """import ast, sys, traceback
try:
    source = open(sys.argv[1], "rb").read()
except OSError as exc:
    print(exc, file=sys.stderr)
    sys.exit(70)
try:
    ast.parse(source, sys.argv[1])
except SyntaxError as exc:
    sys.exit("".join(traceback.format_exception_only(exc)))
"""
# Exit status of a compile step that could not read its source: the sandbox's fault, not the program's.
UNREADABLE = 70


@dataclass(frozen=True)
class Language:
    name: str
    source: str  # file name of the program in the work directory
    run: tuple[str, ...]
    compile: tuple[str, ...] | None = None
    version: tuple[str, ...] = ()
    # V8 and rustc reserve far more address space than they use: they get the cgroup memory limit only.
    limit_address_space: bool = True
    syntax_error: str = "CompileError"  # error_type of a failed compile step
    aliases: tuple[str, ...] = ()

    @property
    def tools(self) -> set[str]:
        commands = {self.run[0]} | ({self.compile[0]} if self.compile else set())
        return {c for c in commands if not c.startswith("{")}


LANGUAGES: tuple[Language, ...] = (
    Language("python", "main.py", ("python3", "-B", "{src}"), ("python3", "-B", "-c", _PY_SYNTAX, "{src}"),
             ("python3", "--version"), syntax_error="SyntaxError", aliases=("python3", "py")),
    Language("javascript", "main.js", ("node", "{src}"), ("node", "--check", "{src}"), ("node", "--version"),
             limit_address_space=False, syntax_error="SyntaxError", aliases=("js", "node")),
    Language("c", "main.c", ("{exe}",), ("gcc", "-O2", "-std=gnu17", "-pipe", "-o", "{exe}", "{src}", "-lm"),
             ("gcc", "-dumpfullversion")),
    Language("cpp", "main.cpp", ("{exe}",), ("g++", "-O2", "-std=gnu++17", "-pipe", "-o", "{exe}", "{src}"),
             ("g++", "-dumpfullversion"), aliases=("c++", "cxx")),
    Language("rust", "main.rs", ("{exe}",), ("rustc", "-O", "--edition", "2021", "-o", "{exe}", "{src}"),
             ("rustc", "--version"), aliases=("rs",)),
    Language("bash", "main.sh", ("bash", "{src}"), ("bash", "-n", "{src}"), ("bash", "--version"),
             syntax_error="SyntaxError", aliases=("sh", "shell")),
)
EXE = "prog"


@dataclass(frozen=True)
class Toolchain:
    """A language whose programs were found on this host, with their absolute paths and version."""

    language: Language
    paths: dict[str, str]
    version: str

    def argv(self, template: tuple[str, ...], src: str, exe: str) -> list[str]:
        out = [a.format(src=src, exe=exe) for a in template]
        out[0] = self.paths.get(out[0], out[0])
        return out


def lookup(name: str) -> Language | None:
    key = name.strip().lower()
    return next((lang for lang in LANGUAGES if key == lang.name or key in lang.aliases), None)


def discover(path: str = RUNTIME_PATH) -> dict[str, Toolchain]:
    """The languages whose tools exist on ``path``, keyed by name (the version is read once, at start)."""
    found: dict[str, Toolchain] = {}
    for lang in LANGUAGES:
        paths = {tool: shutil.which(tool, path=path) for tool in lang.tools}
        if not all(paths.values()):
            continue
        resolved = {tool: p for tool, p in paths.items() if p}
        version = ""
        if lang.version:
            argv = [resolved.get(lang.version[0], lang.version[0]), *lang.version[1:]]
            try:
                out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
                version = (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else ""
            except (OSError, subprocess.TimeoutExpired):
                continue
        found[lang.name] = Toolchain(lang, resolved, version)
    return found
