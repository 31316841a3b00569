#!/usr/bin/env bash
# Run the overlays' llama-server command lines on a real llama-server: scripts/k8s/check-llama-server.sh [BINARY]
#
# Without BINARY, builds llama.cpp's server on CPU once (~10 min on 2 cores) from the source llama-cpp-python's
# pinned version vendors (the only llama.cpp source reachable from the package registries), into .bench/llama.cpp.
# On a GPU box pass its CUDA llama-server (or `docker run` one) to check the gpu component for real: layers
# offloaded, tokens per second. Results: bench-results/k8s-llama-check/*.json (docs/kubernetes.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=.venv/bin
server=${1:-}
if [ -z "$server" ]; then
    version=$(sed -n 's/^llama[-_]cpp[-_]python==//p' constraints.txt)
    root=.bench/llama.cpp/llama_cpp_python-$version
    server=$root/vendor/llama.cpp/build/bin/llama-server
    if [ ! -x "$server" ]; then
        mkdir -p .bench/llama.cpp
        "$BIN/pip" download -q "llama-cpp-python==$version" --no-deps --no-binary :all: -d .bench/llama.cpp
        tar xzf ".bench/llama.cpp/llama_cpp_python-$version.tar.gz" -C .bench/llama.cpp
        (cd "$root/vendor/llama.cpp" \
            && cmake -B build -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
                -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
                > /dev/null \
            && cmake --build build --target llama-server -j"$(nproc)" > /dev/null)
    fi
fi
out=bench-results/k8s-llama-check
mkdir -p "$out"
status=0
for check in "cpu llama-server --spread" "cpu embedding-server" "k3s-gpu llama-server --spread" \
             "k3s-gpu embedding-server"; do
    set -- $check
    echo "== $1 $2"
    "$BIN/python" scripts/k8s/check_llama_server.py --server "$server" --overlay "$1" --workload "$2" ${3:-} \
        --out "$out/$1-$2.json" > /dev/null || { echo "   FAILED (see $out/$1-$2.json)"; status=1; continue; }
    "$BIN/python" -c 'import json,sys; d=json.load(open(sys.argv[1])); print("  ", {k: d[k] for k in ("ok", "slots", "speculative", "tokens_per_s", "draft_tokens", "draft_accepted", "embedding_dims", "gpu_layers_offloaded", "spread") if k in d})' "$out/$1-$2.json"
done
exit $status
