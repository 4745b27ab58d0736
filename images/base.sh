#!/usr/bin/env bash
# A python:3.11-slim-bookworm stand-in made from Debian packages, for machines that reach no
# container registry (like this project's CI): Debian bookworm minbase with python3, venv and CA
# certificates, built with mmdebstrap from apt's own sources, imported into podman. Like the slim
# images it has no documentation, manual pages or translations (dpkg skips them, also for what
# the Dockerfile installs later), and /usr is merged by mmdebstrap's hook rather than by the
# usrmerge package, which pulls in Perl: 129 MB instead of 248 MB (bench/README.md).
#
#   images/base.sh CACHE_DIR      prints the image name (localhost/slam-base:<key>)
#
# mmdebstrap downloads every package again on each run (~3 min), so the tarball is cached under
# a key of the suite, the package list and the apt sources.
set -euo pipefail
cache=${1:?usage: base.sh CACHE_DIR}
suite=bookworm
packages=python3,python3-venv,ca-certificates
options=(--variant=minbase --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
         --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*'
         --dpkgopt='path-exclude=/usr/share/locale/*'
         --dpkgopt='path-include=/usr/share/locale/locale.alias'
         --dpkgopt='path-exclude=/usr/share/doc/*'
         --dpkgopt='path-include=/usr/share/doc/*/copyright')
sources=/etc/apt/sources.list.d/debian.sources
[[ -r $sources ]] || { echo "base.sh: $sources (apt's Debian sources) is needed" >&2; exit 1; }
key="$(printf '%s\n' "$suite" "$packages" "${options[@]}" | cat - "$sources" | sha256sum \
  | cut -c1-12)"
name="localhost/slam-base:$key"
tar="$cache/images/base-$key.tar"
if ! podman image exists "$name"; then
  if [[ ! -s $tar ]]; then
    echo ">> making the base image with mmdebstrap ($suite minbase + $packages; ~3 min, once)" >&2
    mkdir -p "$cache/images"
    mmdebstrap --quiet --format=tar "${options[@]}" --include="$packages" "$suite" "$tar.part" \
      "$sources" >&2
    mv "$tar.part" "$tar"
  fi
  podman import --quiet "$tar" "$name" >/dev/null
fi
echo "$name"
