#!/usr/bin/env bash
# Build Spaceyard's images (helm/Dockerfile: platform, postgresql, redis) and push them to a registry.
#
#   helm/images.sh [REGISTRY]       default REGISTRY: 127.0.0.1:5000 (the dev cluster's, helm/dev-cluster.sh)
#
# Each image is tagged by the content it is made of (its Dockerfile target, the project files it copies
# and the base image's id): when the registry already has that tag, nothing is built or pushed, so a
# second CI run costs a few HTTP requests. Prints one line per image, e.g.
#   SPACEYARD_IMAGE_PLATFORM=127.0.0.1:5000/spaceyard/platform:3f2a...
# and pushes the base image itself (BASE_IMAGE, under its own name: the oci build engine reads it from
# the registry), printed without the registry host: SPACEYARD_IMAGE_BASE=spaceyard/python:3.11-bookworm-r2
# Environment: BASE_IMAGE (default spaceyard/python:3.11-bookworm-r2 when Docker has it, else
# python:3.11-slim), IMAGE_PREFIX (default spaceyard), IMAGES (default "platform postgresql redis").
set -euo pipefail
cd "$(dirname "$0")/.."

REGISTRY=${1:-${REGISTRY:-127.0.0.1:5000}}
PREFIX=${IMAGE_PREFIX:-spaceyard}
IMAGES=${IMAGES:-platform postgresql redis}
if [ -z "${BASE_IMAGE:-}" ]; then
  if docker image inspect spaceyard/python:3.11-bookworm-r2 >/dev/null 2>&1; then
    BASE_IMAGE=spaceyard/python:3.11-bookworm-r2
  else
    BASE_IMAGE=python:3.11-slim
  fi
fi
log() { printf '==> %s\n' "$*" >&2; }

base_id=$(docker image inspect --format '{{.Id}}' "$BASE_IMAGE" 2>/dev/null || echo "$BASE_IMAGE")
# the build context: tracked and new (not ignored) files the Dockerfile copies
context_files() {
  git ls-files --cached --others --exclude-standard -- helm/Dockerfile helm/images \
    "${@}" | sort -u | while read -r f; do [ -f "$f" ] && echo "$f"; done
}
content_tag() { # TARGET FILES...: 16 hex digits of the inputs of one target
  local target=$1; shift
  { echo "target=$target base=$base_id"; context_files "$@" | xargs -d '\n' sha256sum; } | sha256sum | cut -c1-16
}
in_registry() { # NAME TAG
  curl -fsS -o /dev/null -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "http://$REGISTRY/v2/$1/manifests/$2" 2>/dev/null
}

for target in $IMAGES; do
  case "$target" in
    platform) srcs=(pyproject.toml README.md platform builder runtime) ;;
    postgresql | redis) srcs=() ;;
    *) echo "unknown image $target" >&2; exit 2 ;;
  esac
  tag=$(content_tag "$target" "${srcs[@]}")
  name=$PREFIX/$target
  ref=$REGISTRY/$name:$tag
  if in_registry "$name" "$tag"; then
    log "$ref is in the registry (nothing to build)"
  else
    t0=$SECONDS
    if ! docker image inspect "$ref" >/dev/null 2>&1; then
      log "docker build --target $target ($BASE_IMAGE)"
      context_files "${srcs[@]}" | tar -c -T - | docker build -q --network host -f helm/Dockerfile \
        --target "$target" --build-arg "BASE_IMAGE=$BASE_IMAGE" -t "$ref" - >/dev/null
    fi
    log "docker push $ref"
    docker push -q "$ref" >/dev/null
    log "$target built and pushed in $((SECONDS - t0)) s"
  fi
  var=SPACEYARD_IMAGE_$(echo "$target" | tr '[:lower:]' '[:upper:]')
  echo "$var=$ref"
done

# the base image of Space images, under its own name: the oci engine reads it from the registry
# (worker.baseImage; a name without a registry host is looked up there)
base_name=${BASE_IMAGE%:*} base_tag=${BASE_IMAGE##*:}
[ "$base_name" = "$BASE_IMAGE" ] && base_tag=latest
if ! in_registry "$base_name" "$base_tag"; then
  log "docker push $REGISTRY/$base_name:$base_tag (the base of Space images)"
  docker tag "$BASE_IMAGE" "$REGISTRY/$base_name:$base_tag"
  docker push -q "$REGISTRY/$base_name:$base_tag" >/dev/null
fi
echo "SPACEYARD_IMAGE_BASE=$base_name:$base_tag"
