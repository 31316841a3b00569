#!/usr/bin/env bash
# What `make test` and CI run: lint, types, then the whole suite (unit, services, CLI, end to end, install).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

echo "== ruff"
"$BIN/ruff" check .
echo "== mypy --strict"
"$BIN/mypy"
echo "== pytest"
"$BIN/pytest" "$@"
