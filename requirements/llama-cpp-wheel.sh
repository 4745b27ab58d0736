#!/usr/bin/env bash
# Builds the llama-cpp-python wheel once, portably, and prints its path.
#
#   requirements/llama-cpp-wheel.sh PYTHON CACHE_DIR          build if needed; print the wheel
#   requirements/llama-cpp-wheel.sh PYTHON CACHE_DIR --dir    print only where it goes
#
# Why not `pip install llama-cpp-python`: its source build defaults to -march=native, which
# compiles in ggml's AMX kernels on CPUs that report AMX (Sapphire Rapids: AWS c7i/m7i), and
# those crash with SIGSEGV on the first answer (issue 11; llama.cpp #20824, ollama #17205).
# A native build is also not portable: built on one CPU, it can crash with SIGILL on another.
#
# So: no native detection, x86-64-v3 (AVX, AVX2, FMA, F16C, BMI2 -- every x86 EC2 instance and
# every development machine of this project has them), no AVX-512, no AMX. The Dockerfile runs
# this same script, so the image and the venv run the same build.
#
# pip's wheel cache is keyed by name and version, not by CMAKE_ARGS: a wheel built earlier with
# native flags would be reused silently. So the build bypasses pip's cache (--no-cache-dir) and
# lands in a directory of our own keyed by the version, these flags and the Python version.
# tests/engine/test_llama_build.py checks the library in use reports no AMX and no AVX-512.
set -euo pipefail

python=${1:?usage: llama-cpp-wheel.sh PYTHON CACHE_DIR}
cache=${2:?usage: llama-cpp-wheel.sh PYTHON CACHE_DIR}
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

version="$(sed -n 's/^llama-cpp-python==\([^ ;]*\).*/\1/p' "$here/lock.txt")"
[[ -n "$version" ]] || { echo "llama-cpp-python is not pinned in $here/lock.txt" >&2; exit 1; }

export CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON \
-DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF \
-DGGML_AVX512_BF16=OFF -DGGML_AVX_VNNI=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF \
-DGGML_AMX_BF16=OFF -DGGML_BACKEND_DL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF"

pyver="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
key="$(printf '%s\n%s\n%s\n' "$version" "$CMAKE_ARGS" "$pyver" | sha256sum | cut -c1-12)"
dir="$cache/wheels/llama-cpp-python-$version-$key"
if [[ "${3:-}" == "--dir" ]]; then
  echo "$dir"
  exit 0
fi

shopt -s nullglob
wheels=("$dir"/llama_cpp_python-"$version"-*.whl)
if (( ${#wheels[@]} == 0 )); then
  echo ">> building llama-cpp-python $version (portable x86-64-v3, no AMX; ~11 min on 2 cores, once: cached in $dir)" >&2
  mkdir -p "$cache/wheels"
  tmp="$(mktemp -d "$cache/wheels/.build.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  "$python" -m pip wheel --no-deps --no-cache-dir --no-binary llama-cpp-python \
    --progress-bar off -w "$tmp" "llama-cpp-python==$version" >&2
  rm -rf "$dir"
  mv "$tmp" "$dir"
  trap - EXIT
  wheels=("$dir"/llama_cpp_python-"$version"-*.whl)
fi
echo "${wheels[0]}"
