#!/usr/bin/env bash
# Builds the project's images with podman (`make images`; `make test` calls it), each only when
# its inputs changed, and writes their names to build/images.env for the tests.
#
#   images/build.sh [TARGET ...]        default: operator dashboard scoring llamacpp vllm-cpu
#
# An image's tag is a hash of everything it is built from: the base image, the Dockerfile's
# stages it needs, requirements/, and (but for the llama.cpp server) pyproject.toml and the source folders, as
# they are in the working tree. An image with that tag in podman's storage is not
# built again. The operator, dashboard and scoring images are built in two steps: their
# dependencies (the `<target>-deps` stage, tagged localhost/slam-<target>-deps:<hash of the base,
# Dockerfile, requirements/ and pyproject.toml>, kept), then the project reinstalled over them
# (seconds): a source change no longer reinstalls PyTorch (the scoring image: 6 to 10 minutes).
#
# Here no registry can be reached, so the base is made from Debian packages (images/base.sh) and
# passed as BASE; pip inside the build uses the host's CA bundle, pip cache and network, and the
# llamacpp target gets the portable llama-cpp-python wheel that `make` built (mounted at /wheels)
# instead of compiling it again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cache="${SLAM_CACHE:-$HOME/.cache/slam}"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/images/containers.conf}"
targets=("$@")
(( ${#targets[@]} )) || targets=(operator dashboard scoring llamacpp vllm-cpu)

command -v podman >/dev/null || { echo "images/build.sh: podman is needed (make system-deps)" >&2; exit 1; }
# The pip cache mounted into the builds: podman refuses a missing source folder, and a fresh
# machine's pip may not have made one (pip stores nothing when the index answers "no-store").
mkdir -p "$HOME/.cache/pip"
base="$(bash images/base.sh "$cache")"
wheel="$(bash requirements/llama-cpp-wheel.sh "${PYTHON:-python3.11}" "$cache")"
# The operator image's Go proxy is built with this machine's Go and module cache (mounted).
command -v go >/dev/null || { echo "images/build.sh: Go is needed for the gateway's proxy" >&2; exit 1; }
goroot="$(go env GOROOT)"; gomodcache="$(go env GOMODCACHE)"
mkdir -p "$gomodcache"
(cd gateway && go mod download)

# What each image is built from besides its Dockerfile stages (the llama.cpp server uses none of
# the project's own code).
inputs() {
  case "$1" in
    llamacpp) echo requirements images/llamacpp_serve.py ;;
    vllm-cpu) echo requirements/images/vllm-cpu.txt ;;
    operator) echo requirements pyproject.toml engine operator dashboard images gateway ;;
    # The dependencies' stage of the three below (the project it installs is reinstalled).
    *-deps) echo requirements pyproject.toml ;;
    # README.md is copied (pyproject's readme) but only as package metadata: not an input.
    *) echo requirements pyproject.toml engine operator dashboard images ;;
  esac
}
# Of the Dockerfile, only the stages the target is built from count (images/stages.py): an edit
# to the scoring stage leaves the vllm-cpu image's tag as it was.
inputs_hash() {
  # shellcheck disable=SC2046 - the list is words by design
  { echo "$base"; "${PYTHON:-python3.11}" images/stages.py Dockerfile "$1"
    git ls-files -z --cached --others --exclude-standard -- $(inputs "$1") \
      | sort -z | xargs -0 sha256sum; } | sha256sum | cut -c1-16
}
build() {  # TARGET NAME DOCKERFILE
  echo ">> building image $2"
  local start=$SECONDS size
  # --no-cache: an image is only built when its inputs changed, and buildah's layer cache does
  # not hash what a RUN --mount=type=bind sees (it reused an install of the old sources).
  podman build --quiet --no-cache --pull=never --network host --target "$1" --file "$3" \
    --build-arg "BASE=$base" --build-arg "GO_IMAGE=$base" \
    --volume "$goroot:/usr/local/go:ro" --volume "$gomodcache:/root/go/pkg/mod" \
    --env "GOPROXY=$(go env GOPROXY)" --env GOFLAGS=-mod=readonly --env GOMODCACHE=/root/go/pkg/mod \
    --volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro \
    --volume "$HOME/.cache/pip:/root/.cache/pip" \
    --volume "$(dirname "$wheel"):/wheels:ro" \
    --env PIP_CERT=/etc/ssl/certs/ca-certificates.crt --env PIP_DISABLE_PIP_VERSION_CHECK=1 \
    --tag "$2" . >/dev/null
  size="$(podman image inspect --format '{{.Size}}' "$2")"
  echo "built $2 in $((SECONDS - start)) s: $((size / 1000000)) MB"
}
mkdir -p build
: > build/images.env.part
# Layers an interrupted build left behind (untagged, nothing built on them).
podman image prune --force >/dev/null 2>&1 || true
for target in "${targets[@]}"; do
  name="localhost/slam-$target:$(inputs_hash "$target")"
  deps=""
  grep -qx "FROM $target-deps AS $target" Dockerfile \
    && deps="localhost/slam-$target-deps:$(inputs_hash "$target-deps")"
  # Older builds of this target, then of its dependencies (an image is not removed while one
  # built on it is there), go before the new one is built: nothing reuses them (--no-cache) and
  # kept, they would double what a rebuild needs on disk (the vllm-cpu and scoring images: 7 GB
  # each).
  for keep in "$name" "$deps"; do
    [[ -n "$keep" ]] || continue
    podman images --format '{{.Repository}}:{{.Tag}}' "${keep%:*}" \
      | grep -vxF "$keep" | xargs -r podman rmi >/dev/null 2>&1 || true
  done
  if podman image exists "$name"; then
    echo "image $name: up to date"
  elif [[ -n "$deps" ]]; then
    if podman image exists "$deps"; then
      echo "image $deps: up to date"
    else
      build "$target-deps" "$deps" Dockerfile
    fi
    # podman 4.3's buildah takes `FROM ${ARG}` as an image name, never a stage's: the final
    # stage is pointed at the kept dependencies' image in a copy of the Dockerfile.
    sed "s|^FROM $target-deps AS $target\$|FROM $deps AS $target|" Dockerfile \
      > "build/Dockerfile.$target"
    build "$target" "$name" "build/Dockerfile.$target"
  else
    build "$target" "$name" Dockerfile
  fi
  var="${target^^}"; echo "SLAM_IMAGE_${var//-/_}=$name" >> build/images.env.part
done
podman image prune --force >/dev/null 2>&1 || true
mv build/images.env.part build/images.env
