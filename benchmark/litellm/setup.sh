#!/usr/bin/env bash
# One-time, offline set-up of LiteLLM's proxy as the bench-proxy baseline, in LAB (default .bench/litellm):
# a venv with a pinned litellm[proxy], the Prisma client, and a PostgreSQL schema for virtual keys.
#
# Prisma's native engines download from a host these machines cannot reach, and no package ships them. The
# same engine build is on npm as WebAssembly: qe-shim/ serves it behind the native engine's HTTP API, and
# LiteLLM's migrations are applied with psql. So LiteLLM runs unmodified, with its real virtual-key path
# (key cached in memory after the first lookup, spend logged to PostgreSQL in batches).
# Needs python3.11, node and npm, psql, PostgreSQL on 127.0.0.1:5432 with trust auth. Idempotent.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
LAB=${LAB:-$HERE/../../.bench/litellm}
# 1.106.2: the newest release that installs here (newer ones need a certifi the index lacks); never
# 1.82.7 or 1.82.8, which were compromised.
LITELLM_VERSION=${LITELLM_VERSION:-1.106.2}
DB=${DB:-litellm_bench}
mkdir -p "$LAB" && LAB=$(cd "$LAB" && pwd) && export LAB
[ -f "$LAB/.ready-$LITELLM_VERSION" ] && { echo "litellm: ready in $LAB"; exit 0; }
cp -r "$HERE/qe-shim" "$HERE/env.sh" "$HERE/apply_migrations.sh" "$LAB/"
cd "$LAB"

[ -x venv/bin/python ] || python3.11 -m venv venv
venv/bin/pip install -q --dry-run --report plan.json "litellm[proxy]==$LITELLM_VERSION" "prisma==0.11.0"
venv/bin/python -c 'import json,sys; r=json.load(open("plan.json")); sys.exit(any(i["metadata"]["name"].lower()=="torch" for i in r["install"]))' \
    || { echo "litellm: pip wants torch; refusing (it would be a multi-GB CUDA build)"; exit 1; }
venv/bin/pip install -q "litellm[proxy]==$LITELLM_VERSION"
# LiteLLM's DB layer is written against prisma-client-py 0.11 (it sets Prisma._Prisma__engine).
venv/bin/pip install -q "prisma==0.11.0"
(cd qe-shim && npm install --no-audit --no-fund --loglevel=error)

. ./env.sh
SCHEMA=$(venv/bin/python -c 'import litellm, os; print(os.path.join(os.path.dirname(litellm.__file__), "proxy", "schema.prisma"))')
sed 's/^\s*binaryTargets = .*$/  binaryTargets = ["native"]/' "$SCHEMA" > schema.prisma
timeout 600 prisma generate --schema schema.prisma
./apply_migrations.sh "$DB"
touch "$LAB/.ready-$LITELLM_VERSION"
echo "litellm: ready in $LAB"
