#!/usr/bin/env bash
# Builds the pinned Kubernetes control plane (kube-apiserver, kube-controller-manager) and etcd
# from their Go modules into a cache outside the repository, keyed by version. Does nothing when
# the binaries are already there. Used by `make control-plane` (and so by `make test`).
#
# The versions are pinned in tests/controlplane/gomod/go.mod (+ go.sum): k8s.io/kubernetes, each
# k8s.io/<staging> module replaced by its v0.X.Y release, and the etcd server that this
# Kubernetes release requires.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
gomod="$here/gomod"
k8s_version="$(cd "$gomod" && go list -m -f '{{.Version}}' k8s.io/kubernetes)"
etcd_version="$(cd "$gomod" && go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)"
if [[ -z "$k8s_version" || -z "$etcd_version" ]]; then
  echo "build.sh: cannot read the pinned versions from $gomod/go.mod" >&2
  exit 1
fi

cache="${SLAM_CACHE:-$HOME/.cache/slam}/controlplane/k8s-${k8s_version}_etcd-${etcd_version}"
bins=(etcd kube-apiserver kube-controller-manager)

missing=0
for b in "${bins[@]}"; do [[ -x "$cache/$b" ]] || missing=1; done
if [[ $missing == 0 ]]; then
  echo "control plane ${k8s_version} / etcd ${etcd_version}: cached in $cache"
  exit 0
fi

command -v go >/dev/null || { echo "build.sh: Go is required to build the control plane" >&2; exit 1; }
minor="${k8s_version#v1.}"; minor="${minor%%.*}"
# Stamp the real version in (a plain `go build` reports v0.0.0-master, which the API server
# would also use as its emulation version).
ldflags="-s -w \
 -X k8s.io/component-base/version.gitVersion=${k8s_version} \
 -X k8s.io/component-base/version.gitMajor=1 \
 -X k8s.io/component-base/version.gitMinor=${minor} \
 -X k8s.io/component-base/version.gitTreeState=clean"

echo "building control plane ${k8s_version} / etcd ${etcd_version} into $cache (cold: ~5 min on 2 cores)"
start=$SECONDS
tmp="$cache.partial.$$"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
(
  cd "$gomod"
  go build -trimpath -ldflags "$ldflags" -o "$tmp/" \
    ./etcd k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
)
mkdir -p "$cache"
for b in "${bins[@]}"; do mv "$tmp/$b" "$cache/$b"; done
echo "built in $((SECONDS - start)) s: $("$cache/kube-apiserver" --version)"
