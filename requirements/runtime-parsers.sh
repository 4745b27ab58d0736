#!/usr/bin/env bash
# The runtimes' own argument parsers for the flag contract tests
# (tests/operator/modeldeployment/test_runtime_contracts.py), once each (a changed pin is a new
# directory under $SLAM_CACHE/runtime-parsers):
# - each requirements/runtimes/NAME.txt installed with --no-deps into NAME-<sha of the file>;
# - llama.cpp's argument definitions (common/arg.cpp) and server routes (tools/server), from the
#   llama.cpp that llama-cpp-python's source release vendors at the version in lock.txt (the
#   one the llamacpp image is built from) into llamacpp-<version>.
# Usage: runtime-parsers.sh PYTHON CACHE_DIR
set -euo pipefail
python="$1"; cache="$2/runtime-parsers"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mkdir -p "$cache"
for req in "$here"/runtimes/*.txt; do
  name="$(basename "$req" .txt)"
  dir="$cache/$name-$(sha256sum "$req" | cut -c1-12)"
  [[ -f "$dir/.installed" ]] && continue
  echo ">> installing $name's argument parser ($(grep -m1 -E '^[a-z]' "$req")) into $dir"
  rm -rf "$dir.tmp"
  "$python" -m pip install --quiet --progress-bar off --no-deps --only-binary :all: \
    --target "$dir.tmp" -r "$req"
  rm -rf "$dir"; mv "$dir.tmp" "$dir"; touch "$dir/.installed"
done

version="$(sed -n 's/^llama-cpp-python==\([^ ;]*\).*/\1/p' "$here/lock.txt")"
dir="$cache/llamacpp-$version"
if [[ ! -f "$dir/.installed" ]]; then
  echo ">> unpacking llama.cpp's argument definitions from llama-cpp-python $version's source into $dir"
  rm -rf "$dir.tmp"; mkdir -p "$dir.tmp"
  "$python" -m pip download --quiet --progress-bar off --no-deps --no-binary :all: \
    -d "$dir.tmp" "llama-cpp-python==$version"
  tar -xzf "$dir.tmp"/llama_cpp_python-"$version".tar.gz -C "$dir.tmp" --strip-components=3 \
    --wildcards "*/vendor/llama.cpp/common/*" "*/vendor/llama.cpp/tools/server/*.cpp"
  rm -f "$dir.tmp"/*.tar.gz
  rm -rf "$dir"; mv "$dir.tmp" "$dir"; touch "$dir/.installed"
fi
