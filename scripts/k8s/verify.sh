#!/usr/bin/env bash
# Check an installed ATLAS end to end: scripts/k8s/verify.sh
#
# 1. every workload of the namespace is rolled out and ready;
# 2. a new API key, made for this check through the portal as the admin (VERIFY_ADMIN_PASSWORD, and
#    VERIFY_ADMIN_USER, default admin), and deleted at the end; without the password, ATLAS_API_KEY is used as is;
# 3. through the ingress (https://ATLAS_K8S_HOST/v1, or VERIFY_URL): a raw chat, a verified solve and a task;
# 4. `atlas bench run` on VERIFY_BENCH_LIMIT (default 3) HumanEval problems through the ingress, their hidden tests
#    scored in a sandbox started on this machine (they never reach the cluster). Needs the datasets
#    (ATLAS_DATA_DIR or ./datasets); VERIFY_BENCH_LIMIT=0 skips it.
# The ingress's certificate is read from its Secret and trusted for this check only (self-signed is fine).
set -euo pipefail
cd "$(dirname "$0")/../.."

die() { echo "verify: $*" >&2; exit 1; }
ATLAS=${ATLAS:-.venv/bin/atlas}
[ -x "$ATLAS" ] || ATLAS=$(command -v atlas) || die "the atlas CLI is needed (make install)"
ns=$("$ATLAS" k8s get ATLAS_K8S_NAMESPACE)
host=$("$ATLAS" k8s get ATLAS_K8S_HOST)
tls=$("$ATLAS" k8s get ATLAS_K8S_TLS_SECRET)
url=${VERIFY_URL:-https://$host/v1}
work=$(mktemp -d)
forward=""
key_id=""
cleanup() {
    if [ -n "$key_id" ]; then
        curl -fsS -X DELETE -H "Authorization: Bearer $jwt" "http://127.0.0.1:$port/api/keys/$key_id" >/dev/null \
            && echo "deleted the check's key" || echo "verify: could not delete key $key_id; revoke it in the portal" >&2
    fi
    [ -z "$forward" ] || kill "$forward" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

echo "== readiness"
for workload in $(kubectl -n "$ns" get deployment,statefulset -l app.kubernetes.io/part-of=atlas -o name); do
    kubectl -n "$ns" rollout status "$workload" --timeout=60s >/dev/null || die "$workload is not ready"
    echo "   $workload ready"
done

if kubectl -n "$ns" get secret "$tls" >/dev/null 2>&1; then
    kubectl -n "$ns" get secret "$tls" -o jsonpath='{.data.tls\.crt}' | base64 -d > "$work/ingress.crt"
    export SSL_CERT_FILE="$work/ingress.crt"
fi

echo "== a key for this check"
if [ -n "${VERIFY_ADMIN_PASSWORD:-}" ]; then
    port=${VERIFY_PORTAL_PORT:-13000}
    kubectl -n "$ns" port-forward svc/api-portal "$port:3000" >/dev/null 2>&1 &
    forward=$!
    for _ in $(seq 50); do curl -fsS "http://127.0.0.1:$port/livez" >/dev/null 2>&1 && break; sleep 0.2; done
    login=$(jq -n --arg u "${VERIFY_ADMIN_USER:-admin}" --arg p "$VERIFY_ADMIN_PASSWORD" '{username: $u, password: $p}')
    jwt=$(curl -fsS -H 'Content-Type: application/json' -d "$login" "http://127.0.0.1:$port/api/auth/login" \
          | jq -r .access_token) || die "the admin login failed"
    made=$(curl -fsS -H "Authorization: Bearer $jwt" -H 'Content-Type: application/json' \
           -d "{\"name\": \"verify-$(date +%s)\", \"expires_days\": 1}" "http://127.0.0.1:$port/api/keys") \
           || die "the portal refused a new key"
    key_id=$(jq -r .id <<<"$made")
    export ATLAS_API_KEY=$(jq -r .key <<<"$made")
    echo "   made key $key_id (deleted at the end)"
else
    [ -n "${ATLAS_API_KEY:-}" ] || die "set VERIFY_ADMIN_PASSWORD (a new key is made) or ATLAS_API_KEY"
    echo "   using ATLAS_API_KEY"
fi

echo "== through the ingress: $url"
"$ATLAS" k8s smoke --url "$url"

limit=${VERIFY_BENCH_LIMIT:-3}
if [ "$limit" -gt 0 ]; then
    echo "== benchmark: $limit HumanEval problems, hidden tests scored on this machine"
    "$ATLAS" bench run --dataset humaneval --limit "$limit" --url "$url" --out "$work/bench" --ablations public
fi
echo "ATLAS in namespace $ns passed every check"
