#!/usr/bin/env bash
# Build every ATLAS container image from the repository root (what `make images` and the images workflow run):
#   scripts/images.sh            build them all, then list them
#   scripts/images.sh --push     build, then push each one
#   scripts/images.sh --list     only list the images and their Dockerfiles (no engine needed)
# Tags: ${ATLAS_IMAGE_REGISTRY:-ghcr.io/atlas}/atlas-<name>:${ATLAS_IMAGE_TAG:-<version in core/pyproject.toml>}.
# The engine is docker, else podman, else buildah (ATLAS_CONTAINER_ENGINE picks one). ATLAS_PYTHON_IMAGE, when
# set, replaces the base image the Dockerfiles pin by digest (--build-arg PYTHON_IMAGE).
set -euo pipefail
cd "$(dirname "$0")/.."

# image name -> Dockerfile, one line each (tests/manifests/test_dockerfiles.py checks every Dockerfile is here)
IMAGES="
atlas-api-portal api-portal/Dockerfile
atlas-llm-proxy llm-proxy/Dockerfile
atlas-rag-api rag-api/Dockerfile
atlas-sandbox sandbox/Dockerfile
atlas-task-worker task-worker/Dockerfile
atlas-dashboard dashboard/Dockerfile
atlas-embed llama-server/Dockerfile.embed
"

push=0
list_only=0
for arg in "$@"; do
    case "$arg" in
        --push) push=1 ;;
        --list) list_only=1 ;;
        -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "images: unknown argument $arg (use --push, --list or --help)" >&2; exit 2 ;;
    esac
done

version=$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' core/pyproject.toml | head -n 1)
registry=${ATLAS_IMAGE_REGISTRY:-ghcr.io/atlas}
tag=${ATLAS_IMAGE_TAG:-$version}
if [ -z "$tag" ]; then
    echo "images: no tag: set ATLAS_IMAGE_TAG (core/pyproject.toml has no version line)" >&2
    exit 1
fi

if [ "$list_only" = 1 ]; then
    while read -r name dockerfile; do
        [ -n "$name" ] && echo "$registry/$name:$tag  ($dockerfile)"
    done <<< "$IMAGES"
    exit 0
fi

# An engine that answers: a docker CLI without a reachable daemon does not count (`docker info` fails).
engine=""
for candidate in ${ATLAS_CONTAINER_ENGINE:-docker podman buildah}; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" info >/dev/null 2>&1; then
        engine=$candidate
        break
    fi
done
if [ -z "$engine" ]; then
    echo "images: no working container engine (tried ${ATLAS_CONTAINER_ENGINE:-docker podman buildah}: not" \
         "installed, or its daemon is not reachable): install or start one, or set ATLAS_CONTAINER_ENGINE" >&2
    exit 1
fi

build_args=()
if [ -n "${ATLAS_PYTHON_IMAGE:-}" ]; then
    build_args+=(--build-arg "PYTHON_IMAGE=$ATLAS_PYTHON_IMAGE")
fi

built=()
while read -r name dockerfile; do
    [ -n "$name" ] || continue
    ref="$registry/$name:$tag"
    echo "images: building $ref from $dockerfile with $engine"
    if [ "$engine" = buildah ]; then
        buildah bud ${build_args[@]+"${build_args[@]}"} -f "$dockerfile" -t "$ref" .
    else
        "$engine" build ${build_args[@]+"${build_args[@]}"} -f "$dockerfile" -t "$ref" .
    fi
    built+=("$ref")
done <<< "$IMAGES"

if [ "$push" = 1 ]; then
    for ref in "${built[@]}"; do
        echo "images: pushing $ref"
        "$engine" push "$ref"
    done
fi

echo "images: $([ "$push" = 1 ] && echo "built and pushed" || echo built):"
printf '  %s\n' "${built[@]}"
