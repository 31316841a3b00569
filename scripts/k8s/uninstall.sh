#!/usr/bin/env bash
# Remove ATLAS from the cluster: scripts/k8s/uninstall.sh [OVERLAY] [--purge]
#
# Deletes what install.sh applied. Without --purge the data stays: the volumes (Redis's queue and limits, the
# portal's database, the model files, the Lens's weights) and the Secret atlas-generated, so a re-install comes
# back with the same users, keys and state. --purge deletes the namespace with all of it.
set -euo pipefail
cd "$(dirname "$0")/../.."

die() { echo "uninstall: $*" >&2; exit 1; }
ATLAS=${ATLAS:-.venv/bin/atlas}
[ -x "$ATLAS" ] || ATLAS=$(command -v atlas) || die "the atlas CLI is needed (make install)"
purge=no
args=()
for arg in "$@"; do
    if [ "$arg" = --purge ]; then purge=yes; else args+=("$arg"); fi
done
overlay=${args[0]:-$("$ATLAS" k8s get ATLAS_K8S_OVERLAY)}
ns=$("$ATLAS" k8s get ATLAS_K8S_NAMESPACE)

if [ "$purge" = yes ]; then
    kubectl delete namespace "$ns" --wait=true
    echo "namespace $ns deleted, with every volume and Secret in it"
    exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$ATLAS" k8s render "$overlay" --out "$work"
# Everything the overlay made goes but what is labelled atlas.dev/keep: the Namespace and the volumes the base
# declares (the StatefulSets' volumes are not in the overlay, so they stay too).
kubectl kustomize "$work" > "$work/all.yaml"
kubectl delete -f "$work/all.yaml" --ignore-not-found --wait=true --selector='!atlas.dev/keep'
kubectl -n "$ns" delete secret -l app.kubernetes.io/part-of=atlas --field-selector metadata.name!=atlas-generated \
    --ignore-not-found
echo "ATLAS removed from $ns; its volumes and the Secret atlas-generated remain (--purge deletes them)"
