#!/usr/bin/env bash
# Builds the shadow gateway's request path (slam-gateway-proxy, Go) once per input and installs it
# next to the venv's Python, where `slam gateway` looks first (`make gateway-proxy`).
#
#   gateway/build.sh BIN_DIR [CACHE]
#
# The binary is static (CGO_ENABLED=0) and kept in CACHE/gateway/<hash of the sources, go.sum and
# the Go version>; the Go modules come from the Go module proxy (go.sum pins them).
set -euo pipefail
bin_dir="$(realpath "$1")"
cd "$(dirname "${BASH_SOURCE[0]}")"
cache="${2:-${SLAM_CACHE:-$HOME/.cache/slam}}"
command -v go >/dev/null || { echo "gateway/build.sh: Go is needed (https://go.dev/dl; make control-plane uses it too)" >&2; exit 1; }
key="$({ go version; sha256sum go.mod go.sum ./*.go; } | sha256sum | cut -c1-16)"
out="$cache/gateway/$key/slam-gateway-proxy"
if [[ ! -x "$out" ]]; then
  echo ">> building slam-gateway-proxy ($key)"
  mkdir -p "$(dirname "$out")"
  CGO_ENABLED=0 go build -trimpath -ldflags=-s -o "$out.tmp" .
  mv "$out.tmp" "$out"
fi
install -m 0755 "$out" "$bin_dir/slam-gateway-proxy"
