#!/usr/bin/env bash
# Builds the pinned Kubernetes control plane (kube-apiserver, kube-controller-manager) and etcd,
# and the test node's parts (kubelet, kube-proxy, CoreDNS, the pause binary) from their Go
# modules and the Kubernetes source into a cache outside the repository, keyed by version.
# Builds only what is missing. Used by `make control-plane` (and so by `make test`).
#
# The versions are pinned in tests/controlplane/gomod/go.mod (+ go.sum): k8s.io/kubernetes, each
# k8s.io/<staging> module replaced by its v0.X.Y release, and the etcd server that this
# Kubernetes release requires. CoreDNS has its own module (gomod/coredns) so that its client-go
# does not move the control plane's modules.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
gomod="$here/gomod"
k8s_version="$(cd "$gomod" && go list -m -f '{{.Version}}' k8s.io/kubernetes)"
etcd_version="$(cd "$gomod" && go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)"
coredns_version="$(cd "$gomod/coredns" && go list -m -f '{{.Version}}' github.com/coredns/coredns)"
# The chart tests' tools (tests/test_chart.py): helm and the manifest linter kube-score.
helm_version="$(cd "$gomod/helm" && go list -m -f '{{.Version}}' helm.sh/helm/v4)"
kubescore_version="$(cd "$gomod/kubescore" && go list -m -f '{{.Version}}' github.com/zegl/kube-score)"
# The Prometheus Operator's ServiceMonitor CRD (from its Go module), so the chart's ServiceMonitor
# is applied against the real schema.
promop_version=v0.85.0
if [[ -z "$k8s_version" || -z "$etcd_version" ]]; then
  echo "build.sh: cannot read the pinned versions from $gomod/go.mod" >&2
  exit 1
fi

cache="${SLAM_CACHE:-$HOME/.cache/slam}/controlplane/k8s-${k8s_version}_etcd-${etcd_version}"
bins=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy "coredns-${coredns_version}" pause
      "helm-${helm_version}" "kube-score-${kubescore_version}"
      "servicemonitors-crd-${promop_version}.yaml")

missing=()
for b in "${bins[@]}"; do [[ -x "$cache/$b" || ( "$b" == *.yaml && -f "$cache/$b" ) ]] || missing+=("$b"); done
if [[ ${#missing[@]} == 0 ]]; then
  echo "control plane and node ${k8s_version} / etcd ${etcd_version} / CoreDNS ${coredns_version}: cached in $cache"
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

echo "building ${missing[*]} (${k8s_version} / etcd ${etcd_version} / CoreDNS ${coredns_version}) into $cache (cold: ~12 min on 2 cores; helm alone ~3 min)"
start=$SECONDS
tmp="$cache.partial.$$"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
pkgs=()
for b in "${missing[@]}"; do
  case "$b" in
    etcd) pkgs+=(./etcd) ;;
    kube-score-*) ;;
    kube-*|kubelet|kubectl) pkgs+=("k8s.io/kubernetes/cmd/$b") ;;
  esac
done
if [[ ${#pkgs[@]} -gt 0 ]]; then
  (cd "$gomod" && go build -trimpath -ldflags "$ldflags" -o "$tmp/" "${pkgs[@]}")
fi
if [[ " ${missing[*]} " == *" coredns-"* ]]; then
  (cd "$gomod/coredns" && go build -trimpath -ldflags "-s -w" -o "$tmp/coredns-${coredns_version}" .)
fi
if [[ " ${missing[*]} " == *" helm-"* ]]; then
  (cd "$gomod/helm" && go build -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=${helm_version}" \
    -o "$tmp/helm-${helm_version}" helm.sh/helm/v4/cmd/helm)
fi
if [[ " ${missing[*]} " == *" kube-score-"* ]]; then
  (cd "$gomod/kubescore" && go build -trimpath -ldflags "-s -w -X main.version=${kubescore_version}" \
    -o "$tmp/kube-score-${kubescore_version}" github.com/zegl/kube-score/cmd/kube-score)
fi
if [[ " ${missing[*]} " == *" servicemonitors-crd-"* ]]; then
  dir="$(cd "$tmp" && GOFLAGS=-mod=mod go mod download -json \
    "github.com/prometheus-operator/prometheus-operator@${promop_version}" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  cp "$dir/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml" \
    "$tmp/servicemonitors-crd-${promop_version}.yaml"
fi
if [[ " ${missing[*]} " == *" pause "* ]]; then
  # The pod sandbox's process, from the pinned Kubernetes source (no registry to pull it from).
  src="$(cd "$gomod" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c"
  gcc -Os -static -Wall -Werror -DVERSION="${k8s_version}-slam" -o "$tmp/pause" "$src"
fi
mkdir -p "$cache"
for b in "${missing[@]}"; do mv "$tmp/$b" "$cache/$b"; done
echo "built in $((SECONDS - start)) s: $("$cache/kube-apiserver" --version)"
