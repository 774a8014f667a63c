#!/usr/bin/env bash
# Builds the nodehealthd Bottlerocket host-container image.
#
#   bottlerocket/build-image.sh IMAGE [--push] [--dist DIR] [--arch "amd64 arm64"] [-- BUILDX-ARGS...]
#   bottlerocket/build-image.sh --stage-only [--dist DIR] [--arch ...]
#
# Stages usr/bin/nodehealthd and usr/bin/nodehealthctl from the .deb packages
# of `make packages` (DIR/nodehealthd_<ver>-1_<arch>.deb, default DIR=dist) into
# bottlerocket/build/bin/<arch>/, so the image carries the same binaries as
# the packages, then runs docker buildx for those platforms. Without buildx
# (or with --stage-only) it stops after staging and prints the build command.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

usage() {
  echo "usage: $0 IMAGE [--push] [--dist DIR] [--arch \"amd64 arm64\"] [-- BUILDX-ARGS...]" >&2
  echo "       $0 --stage-only [--dist DIR] [--arch ...]" >&2
  echo "(a multi-platform image needs --push: docker cannot load it locally)" >&2
  exit 2
}

image=""
push=0
stage_only=0
dist="$root/dist"
arches="amd64 arm64"
extra=()
while (($#)); do
  case $1 in
  --push) push=1 ;;
  --stage-only) stage_only=1 ;;
  --dist) dist=${2:?--dist needs a directory}; shift ;;
  --arch) arches=${2:?--arch needs a list}; shift ;;
  -h | --help) usage ;;
  --)
    shift
    extra=("$@")
    break
    ;;
  -*) echo "build-image: unknown option $1" >&2; usage ;;
  *) image=$1 ;;
  esac
  shift
done
[[ -n "$image" || $stage_only -eq 1 ]] || usage
command -v dpkg-deb >/dev/null || { echo "build-image: dpkg-deb is needed to unpack the .deb packages" >&2; exit 1; }

version=""
platforms=()
for arch in $arches; do
  shopt -s nullglob
  debs=("$dist"/nodehealthd_*_"$arch".deb)
  shopt -u nullglob
  if ((${#debs[@]} != 1)); then
    echo "build-image: want exactly one $dist/nodehealthd_*_$arch.deb, found ${#debs[@]} (run make packages)" >&2
    exit 1
  fi
  v=$(dpkg-deb -f "${debs[0]}" Version)
  v=${v%-*}
  if [[ -n "$version" && "$v" != "$version" ]]; then
    echo "build-image: packages disagree on the version ($version, $v)" >&2
    exit 1
  fi
  version=$v
  unpack=$(mktemp -d)
  dpkg-deb -x "${debs[0]}" "$unpack"
  out="$here/build/bin/$arch"
  rm -rf "$out"
  mkdir -p "$out"
  install -m 0755 "$unpack/usr/bin/nodehealthd" "$unpack/usr/bin/nodehealthctl" "$out/"
  rm -rf "$unpack"
  echo "build-image: staged $arch binaries of nodehealthd $version from ${debs[0]##*/}"
  platforms+=("linux/$arch")
done

cmd=(docker buildx build
  --platform "$(IFS=,; echo "${platforms[*]}")"
  --build-arg "VERSION=$version"
  -f "$here/Containerfile"
  -t "${image:-IMAGE}")
((push)) && cmd+=(--push)
cmd+=("${extra[@]}" "$here")

if ((stage_only)) || ! docker buildx version >/dev/null 2>&1; then
  echo "build-image: staged only; build with:"
  printf ' %q' "${cmd[@]}"
  echo
  exit 0
fi
"${cmd[@]}"
