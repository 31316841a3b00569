"""Project path rules: every hostile path is refused with the request field named and a message that says how to
fix it, harmless spellings normalise, and `skip_reason` names each kind of file that is not worth indexing."""

from __future__ import annotations

import pytest

from atlas_pageindex.paths import MAX_COMPONENT, MAX_PATH, PathRefused, clean_path, skip_reason

LONGEST = "d" * (MAX_COMPONENT - 1) + "/" + "e" * MAX_COMPONENT + "/f"  # 512 characters, no name over 255


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("../x", "'..'"),
        ("a/../../b", "'..'"),
        ("a/..", "'..'"),
        ("/etc/passwd", "relative"),
        ("C:\\x", "backslash"),
        ("C:/x", "drive letter"),
        ("c:x", "drive letter"),
        ("a\\b", "backslash"),
        ("x\x00y", "U+0000"),
        ("x\ny", "U+000A"),
        ("x\x1by", "U+001B"),
        ("x\x7fy", "U+007F"),
        ("x\u202egnp.exe", "U+202E"),  # a right-to-left override hides the real extension
        ("a" * (MAX_PATH + 1), f"limit is {MAX_PATH}"),
        ("d/" + "n" * (MAX_COMPONENT + 1), f"limit is {MAX_COMPONENT}"),
        (".git/config", ".git"),
        ("sub/.git/hooks/pre-commit", ".git"),
        (".GIT/config", ".git"),
        ("~/x", "'~'"),
        ("~root/x", "'~'"),
        ("src/", "trailing"),
        ("", "empty"),
        (".", "project root"),
        ("././/.", "project root"),
        (None, "string"),
        (b"a.py", "string"),
        (3, "string"),
        (["a.py"], "string"),
    ],
)
def test_hostile_paths_are_refused(raw: object, says: str) -> None:
    with pytest.raises(PathRefused) as refused:
        clean_path(raw, field="files[2].path")
    assert refused.value.field == "files[2].path"
    assert says in refused.value.message
    assert str(refused.value).startswith("files[2].path: ")
    assert isinstance(refused.value, ValueError)


def test_the_default_field_is_path() -> None:
    with pytest.raises(PathRefused) as refused:
        clean_path("../x")
    assert refused.value.field == "path"


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("./a//b.py", "a/b.py"),
        ("a/./b/./c.go", "a/b/c.go"),
        ("src/app.py", "src/app.py"),
        (".github/workflows/ci.yml", ".github/workflows/ci.yml"),
        (".gitignore", ".gitignore"),
        ("docs/..notes.md", "docs/..notes.md"),  # only a whole `..` component climbs
        ("a/b~/c~.txt", "a/b~/c~.txt"),
        ("ünï/cødé 世界.rs", "ünï/cødé 世界.rs"),
        (LONGEST, LONGEST),
    ],
)
def test_good_paths_normalise(raw: str, clean: str) -> None:
    assert clean_path(raw) == clean
    assert len(LONGEST) == MAX_PATH


@pytest.mark.parametrize(
    ("path", "data", "says"),
    [
        ("node_modules/react/index.js", b"module.exports = 1;\n", "node_modules"),
        ("web/node_modules/x/a.ts", b"x\n", "node_modules"),
        ("vendor/github.com/x/y.go", b"package y\n", "vendor"),
        ("third_party/zlib/inflate.c", b"int x;\n", "third_party"),
        (".venv/lib/python3.11/site-packages/a.py", b"x = 1\n", ".venv"),
        ("venv/lib/a.py", b"x = 1\n", "venv"),
        ("lib/site-packages/a.py", b"x = 1\n", "site-packages"),
        ("dist/bundle.js", b"x\n", "dist"),
        ("build/lib/a.py", b"x\n", "build"),
        ("pkg/__pycache__/a.cpython-311.pyc", b"x\n", "__pycache__"),
        (".git/HEAD", b"ref: refs/heads/main\n", ".git"),
        (".tox/py311/a.py", b"x\n", ".tox"),
        ("target/debug/build.rs", b"fn main() {}\n", "target"),
        (".mypy_cache/3.11/a.json", b"{}\n", ".mypy_cache"),
        ("static/app.min.js", b"var a=1;\n", "minified"),
        ("static/site.min.css", b"a{b:c}\n", "minified"),
        ("static/app.js", b"var a = 1;\n" + b"x" * 1001 + b"\n", "minified"),
        ("static/site.css", b"a" * 1001, "minified"),
        ("package-lock.json", b"{}\n", "lock"),
        ("web/yarn.lock", b"# yarn\n", "lock"),
        ("pnpm-lock.yaml", b"lockfileVersion: 9\n", "lock"),
        ("Cargo.lock", b"version = 3\n", "lock"),
        ("poetry.lock", b"[[package]]\n", "lock"),
        ("assets/logo.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
        ("data/blob.txt", b"text then a NUL\x00", "binary"),
        ("data/latin1.txt", "café".encode("latin-1"), "UTF-8"),
    ],
)
def test_skip_reasons(path: str, data: bytes, says: str) -> None:
    reason = skip_reason(path, data)
    assert reason is not None and says in reason


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("src/app.py", b"def f():\n    return 1\n"),
        ("README.md", "# Über\n".encode()),
        ("web/app.js", b"const a = 1;\n" * 100),
        ("web/site.css", b"a { color: red; }\n" + "é".encode() * 999),  # 999 characters, 1,998 bytes: not minified
        ("docs/build.md", b"how to build\n"),  # a file named build is not a build directory
        ("src/target.rs", b"fn target() {}\n"),
        ("Makefile", b"all:\n\ttrue\n"),
        ("data/big.json", b"[" + b"1," * 5000 + b"1]"),  # long lines only mark JS and CSS as minified
        ("empty.py", b""),
    ],
)
def test_normal_files_are_indexed(path: str, data: bytes) -> None:
    assert skip_reason(path, data) is None


def test_binary_sniff_reads_only_the_head() -> None:
    # Like git: a NUL past the first 8 KiB is not sniffed, but such a file must still be valid UTF-8 to index.
    assert skip_reason("a.txt", b"x" * 9000 + b"\x00") is None
    assert skip_reason("a.txt", b"x" * 9000 + b"\xff") == "not UTF-8 text"
