#!/usr/bin/env bash
# Create a LiteLLM virtual key with limits too high to refuse (as bench-proxy does for llm-proxy); print it.
set -euo pipefail
curl -sf -m 60 "http://127.0.0.1:$LITELLM_PORT/key/generate" -H 'Authorization: Bearer sk-bench-master' \
  -H 'content-type: application/json' \
  -d "{\"models\":[\"$BENCH_MODEL\"],\"rpm_limit\":1000000,\"tpm_limit\":1000000000,\"key_alias\":\"bench-$(date +%s%N)\"}" \
  | "$LAB/venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["key"])'
