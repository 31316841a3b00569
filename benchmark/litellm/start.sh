#!/usr/bin/env bash
# Run LiteLLM's proxy in the foreground for bench-proxy: virtual keys in PostgreSQL, Redis for its router and
# cache, one model pointing at the bench's fake backend. Environment: LAB, LITELLM_PORT, FAKE_BASE, FAKE_KEY,
# BENCH_MODEL, REDIS_PORT, REDIS_PASSWORD (and DATABASE_URL, default the local litellm_bench database).
set -euo pipefail
cd "$LAB"
. ./env.sh
export DATABASE_URL=${DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/litellm_bench}
export REDIS_HOST=127.0.0.1 LITELLM_LOG=WARNING  # WARNING: no access-log line per request, like llm-proxy
mkdir -p run
cat > run/config.yaml <<YAML
model_list:
  - model_name: $BENCH_MODEL
    litellm_params: {model: openai/$BENCH_MODEL, api_base: "$FAKE_BASE", api_key: "$FAKE_KEY", rpm: 1000000}
router_settings: {redis_host: 127.0.0.1, redis_port: $REDIS_PORT, redis_password: "$REDIS_PASSWORD"}
litellm_settings:
  telemetry: false
  cache: true
  cache_params: {type: redis, host: 127.0.0.1, port: $REDIS_PORT, password: "$REDIS_PASSWORD", mode: default_off}
general_settings:
  master_key: sk-bench-master
  database_url: os.environ/DATABASE_URL
  disable_prisma_schema_update: true
YAML
exec venv/bin/litellm --config run/config.yaml --host 127.0.0.1 --port "$LITELLM_PORT" --num_workers 1
