#!/usr/bin/env bash
# Apply LiteLLM's shipped Prisma migrations with plain psql (no Prisma schema engine needed).
set -euo pipefail
DB=${1:-litellm_bench}
PGARGS=(-h 127.0.0.1 -U postgres)
MIG=$("$LAB"/venv/bin/python -c 'import litellm_proxy_extras,os;print(os.path.join(os.path.dirname(litellm_proxy_extras.__file__),"migrations"))')
psql "${PGARGS[@]}" -d test -qc "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" 2>&1 | grep -v NOTICE || true
n=0
while IFS= read -r -d '' f; do
  psql "${PGARGS[@]}" -d "$DB" -q -v ON_ERROR_STOP=1 -f "$f" >/dev/null 2>/tmp/litellm-mig.err || { echo "FAILED: $f"; cat /tmp/litellm-mig.err; exit 1; }
  n=$((n+1))
done < <(find "$MIG" -mindepth 2 -maxdepth 2 -name migration.sql -print0 | sort -z)
echo "applied $n migrations to $DB"
