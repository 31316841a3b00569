"""Project file paths: which ones a project may hold (`clean_path`) and which files are not worth indexing
(`skip_reason`). Pure functions, shared by the server (paths arrive from clients) and the CLI (paths come from
walking a checkout), so both refuse and skip exactly the same things.

    clean_path("./src//app.py")        # "src/app.py"
    clean_path("../etc/passwd")        # raises PathRefused: field "path", "must not contain '..' …"
    skip_reason("node_modules/x/a.js", b"...")  # "vendored or generated directory 'node_modules'"
"""

from __future__ import annotations

import re
import unicodedata

MAX_PATH = 512
MAX_COMPONENT = 255  # what most filesystems allow for one name
BINARY_SNIFF = 8192  # git's heuristic: a NUL byte in the first 8 KiB makes a file binary
MAX_MINIFIED_LINE = 1000

# Directories whose files are someone else's code or a build's output: indexing them drowns the project's own.
SKIPPED_DIRS = frozenset(
    {"node_modules", "vendor", "third_party", ".venv", "venv", "site-packages", "dist", "build", "__pycache__",
     ".git", ".tox", "target", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
)  # fmt: skip
LOCK_FILES = frozenset({"package-lock.json", "yarn.lock", "pnpm-lock.yaml", "Cargo.lock", "poetry.lock"})
_MINIFIABLE = (".js", ".mjs", ".cjs", ".css")
_DRIVE = re.compile(r"[A-Za-z]:")
# Bidirectional overrides and isolates: they make a path display as something else ("Trojan Source").
_BIDI = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class PathRefused(ValueError):
    """A path a project cannot hold; `field` names the request field, the message says what to change."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def clean_path(raw: object, field: str = "path") -> str:
    """`raw` as a normalised relative POSIX path ("./a//b.py" -> "a/b.py"), or raise `PathRefused`.

    Refused: anything that could leave the project root or hide inside it (absolute paths, drive letters, `~`,
    `..`, `.git`), characters that mean something else elsewhere (backslashes, control and bidi characters),
    directories (a trailing slash) and names longer than filesystems allow. `.` components and repeated
    slashes are harmless and collapse; dotfiles such as `.github/workflows/ci.yml` are fine.
    """
    if not isinstance(raw, str):
        raise PathRefused(field, f"must be a string, got {type(raw).__name__}")
    if not raw:
        raise PathRefused(field, "must not be empty: give the file's path relative to the project root")
    if len(raw) > MAX_PATH:
        raise PathRefused(field, f"is {len(raw)} characters long; the limit is {MAX_PATH}")
    for ch in raw:
        if unicodedata.category(ch) in ("Cc", "Zl", "Zp") or ch in _BIDI:
            raise PathRefused(field, f"contains the control character U+{ord(ch):04X}; remove it")
    if "\\" in raw:
        raise PathRefused(field, "contains a backslash; separate directories with '/'")
    if raw.startswith("/") or _DRIVE.match(raw):
        raise PathRefused(field, "must be relative to the project root: drop the leading '/' or drive letter")
    if raw.startswith("~"):
        raise PathRefused(field, "must not start with '~': give the path relative to the project root")
    if raw.endswith("/"):
        raise PathRefused(field, "names a directory (trailing '/'); give a file path")
    parts = [part for part in raw.split("/") if part not in ("", ".")]
    if not parts:
        raise PathRefused(field, "names the project root itself; give a file path")
    for part in parts:
        if part == "..":
            raise PathRefused(field, "must not contain '..': give the path from the project root down")
        if part.casefold() == ".git":  # casefold: a case-insensitive filesystem maps .GIT onto .git
            raise PathRefused(field, "must not be inside '.git/': git's own files are not project files")
        if len(part) > MAX_COMPONENT:
            raise PathRefused(field, f"has a {len(part)}-character name; the limit is {MAX_COMPONENT} per name")
    return "/".join(parts)


def skip_reason(path: str, data: bytes) -> str | None:
    """Why the file at `path` (a clean path) holding `data` should not be indexed, or None to index it.

    Any text file is indexed (only the languages `outline` reads get an outline); skipped are vendored and
    generated directories, lock files, minified JS/CSS and binary or non-UTF-8 content.
    """
    *dirs, name = path.split("/")
    for part in dirs:
        if part in SKIPPED_DIRS:
            return f"vendored or generated directory {part!r}"
    if name in LOCK_FILES:
        return "lock file"
    lowered = name.lower()
    if lowered.endswith((".min.js", ".min.css", ".js.map", ".css.map")):
        return "minified or generated file"
    if b"\0" in data[:BINARY_SNIFF]:
        return "binary file"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "not UTF-8 text"
    if lowered.endswith(_MINIFIABLE) and max(map(len, text.split("\n"))) > MAX_MINIFIED_LINE:
        return f"minified (a line longer than {MAX_MINIFIED_LINE} characters)"
    return None
