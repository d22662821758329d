#!/usr/bin/env bash
# Installs the Debian packages embark needs, only those missing.
set -euo pipefail
PKGS=(build-essential cmake pkg-config zlib1g-dev libzstd-dev libxxhash-dev libopenblas-dev libdnnl-dev
      libcli11-dev libtomlplusplus-dev nlohmann-json3-dev libsimdjson-dev libcpp-httplib-dev libgtest-dev libbenchmark-dev
      libopenmpi-dev openmpi-bin librocksdb-dev
      # vector indexes (src/index/: hnswlib, header-only) and faiss for bench/ann_bench.cc
      libhnswlib-dev libfaiss-dev
      python3 python3-sklearn python3-numpy zstd gzip procps
      # the Python module (docs/python.md) and its tests and pictures
      python3-dev pybind11-dev python3-pytest python3-matplotlib
      # Debian's dnnl-config.cmake looks for OpenCL (oneDNN's GPU runtime), though embark uses only its CPU side
      ocl-icd-opencl-dev opencl-c-headers)
# Callers add their own (the fuzzer needs clang): EXTRA_PKGS="a b" deps.sh
read -r -a extra <<<"${EXTRA_PKGS:-}"
PKGS+=("${extra[@]}")
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "embark: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
