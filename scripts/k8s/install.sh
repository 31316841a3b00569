#!/usr/bin/env bash
# Install (or upgrade) ATLAS on the cluster kubectl points at: scripts/k8s/install.sh [OVERLAY]
#
# OVERLAY is k3s-gpu (default: ATLAS_K8S_OVERLAY), cluster or cpu (manifests/overlays/). The same atlas.conf as
# `atlas up` configures it (ATLAS_CONF or ./atlas.conf; the ATLAS_K8S_* keys say where and under which name).
# Every Secret is generated once, with the same rules as `atlas up`, straight into the cluster: nothing secret is
# written to the disk or to the repository, and a re-run keeps the values already there (Secret atlas-generated).
# The first install prints the admin's password and a first API key, once.
set -euo pipefail
cd "$(dirname "$0")/../.."

die() { echo "install: $*" >&2; exit 1; }
ATLAS=${ATLAS:-.venv/bin/atlas}
[ -x "$ATLAS" ] || ATLAS=$(command -v atlas) || die "the atlas CLI is needed (make install, or pip install ./cli)"
command -v kubectl >/dev/null || die "kubectl is needed (https://kubernetes.io/docs/tasks/tools/)"
kubectl version --request-timeout=15s >/dev/null 2>&1 \
    || die "kubectl cannot reach a cluster: check KUBECONFIG and \`kubectl cluster-info\`"

overlay=${1:-$("$ATLAS" k8s get ATLAS_K8S_OVERLAY)}
ns=$("$ATLAS" k8s get ATLAS_K8S_NAMESPACE)
host=$("$ATLAS" k8s get ATLAS_K8S_HOST)
tls=$("$ATLAS" k8s get ATLAS_K8S_TLS_SECRET)
timeout_s=$("$ATLAS" k8s get ATLAS_K8S_ROLLOUT_TIMEOUT_S)
[ -f "manifests/overlays/$overlay/kustomization.yaml" ] || die "no overlay '$overlay' in manifests/overlays"
if [[ "$overlay" != cpu ]] && ! kubectl get nodes -o jsonpath='{.items[*].status.allocatable}' | grep -q nvidia.com/gpu; then
    echo "install: warning: no node offers nvidia.com/gpu (NVIDIA device plugin); llama-server will stay Pending" >&2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$ATLAS" k8s render "$overlay" --out "$work"   # fails here, before anything is applied, on a bad atlas.conf

echo "== namespace $ns"
kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null

echo "== secrets (generated once, kept on re-install)"
# Server-side apply: the values are not copied into a last-applied annotation.
{ kubectl -n "$ns" get secret atlas-generated -o json 2>/dev/null || true; } \
    | "$ATLAS" k8s secrets --existing - \
    | kubectl -n "$ns" apply --server-side --force-conflicts --field-manager=atlas-install -f - >/dev/null
if ! kubectl -n "$ns" get secret "$tls" >/dev/null 2>&1; then
    # The ingress's certificate (ATLAS_K8S_TLS_SECRET): a self-signed one until the operator supplies theirs
    # (kubectl create secret tls, or cert-manager writing that Secret).
    command -v openssl >/dev/null || die "openssl is needed to make a self-signed certificate (or create Secret $tls)"
    openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=$host" -addext "subjectAltName=DNS:$host" \
        -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null
    kubectl -n "$ns" create secret tls "$tls" --cert="$work/tls.crt" --key="$work/tls.key" >/dev/null
    rm -f "$work/tls.key"
    echo "   made a self-signed certificate for $host in Secret $tls (replace it with a real one)"
fi

if grep -q components/external-data "manifests/overlays/$overlay/kustomization.yaml"; then
    echo "   external Redis: give it the services' users before the workloads can start (they retry until then):"
    echo "   kubectl -n $ns get secret atlas-generated -o json | $ATLAS k8s redis-acl --existing - > users.acl"
    echo "   (then load users.acl into that Redis: ACL LOAD with aclfile, or one ACL SETUSER per line; delete the file)"
fi

echo "== apply manifests/overlays/$overlay"
kubectl apply -k "$work"

echo "== waiting for every workload (up to ${timeout_s}s; the first start downloads the model files)"
deadline=$(( $(date +%s) + timeout_s ))
for workload in $(kubectl -n "$ns" get deployment,statefulset -l app.kubernetes.io/part-of=atlas -o name); do
    left=$(( deadline - $(date +%s) ))
    (( left > 0 )) || die "timed out waiting for the workloads; see kubectl -n $ns get pods"
    kubectl -n "$ns" rollout status "$workload" --timeout="${left}s"
done

echo "== first start"
# The portal makes the admin and a first key once (as `atlas up` does); later runs find it made (409).
bootstrap=$(kubectl -n "$ns" exec deploy/api-portal -- python -c '
import json, os, sys, urllib.error, urllib.request
port = os.environ.get("ATLAS_PORTAL_PORT", "3000")
request = urllib.request.Request(f"http://127.0.0.1:{port}/internal/bootstrap", method="POST",
    headers={"Authorization": "Bearer " + os.environ["ATLAS_RECOVERY_TOKEN"]})
try:
    body = json.load(urllib.request.urlopen(request, timeout=30))
except urllib.error.HTTPError as exc:
    sys.exit(0 if exc.code == 409 else f"bootstrap refused: HTTP {exc.code}")
print(body["username"], body["password"], body["key"])
')
if [ -n "$bootstrap" ]; then
    read -r user password key <<<"$bootstrap"
    echo "admin account '$user', password $password"
    echo "first API key $key"
    echo "shown once: keep them (the password can be reset with \`atlas admin recover\` through port-forward)"
else
    echo "the portal already has an admin; no new credentials were made"
fi
echo
echo "ATLAS is installed in namespace $ns. The API: https://$host/v1 (OpenAI-compatible, with an sk-llm- key)."
echo "Check it end to end: ATLAS_API_KEY=... scripts/k8s/verify.sh"
