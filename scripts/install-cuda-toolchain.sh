#!/usr/bin/env bash
# Installs the pinned CUDA 13.0 build toolchain from PyPI wheels into a cache folder and prints the nvcc path
# (the last line of stdout). Idempotent: a complete install (stamp file matching the pins) is reused as is.
#
#   scripts/install-cuda-toolchain.sh            # -> ~/.cache/streamingt2v/cuda-13.0.88/nvidia/cu13/bin/nvcc
#   ST2V_CUDA_CACHE=/some/dir scripts/install-cuda-toolchain.sh
#
# Why these wheels: nvcc 13.0 matches the GPU machines we verify on (docs/cuda.md). nvidia-cuda-nvcc ships
# bin/nvcc, ptxas, fatbinary, nvlink; nvidia-cuda-crt the crt/ headers nvcc includes; nvidia-nvvm cicc and
# libdevice; nvidia-cuda-runtime cudart (static + headers); nvidia-cuda-cccl CUB/Thrust/libcu++ headers;
# nvidia-cublas the cuBLAS/cuBLASLt headers (+ the libraries, found at run time by native/cuda/loader.cpp).
# cuDNN is not used yet. The CUDA 13 wheels have no -cu13 suffix (the -cu13 names are deprecated stubs).
# Nothing here is a runtime dependency of the CPU build.
set -euo pipefail

CUDA_VER=13.0.88
PKGS=(
  "nvidia-cuda-nvcc==13.0.88"
  "nvidia-cuda-crt==13.0.88"
  "nvidia-nvvm==13.0.88"
  "nvidia-cuda-runtime==13.0.96"
  "nvidia-cuda-cccl==13.0.85"
  "nvidia-cublas==13.1.0.3"
)

if [ -n "${ST2V_CUDA_CACHE:-}" ]; then
  dest="$ST2V_CUDA_CACHE"
else
  base="${XDG_CACHE_HOME:-$HOME/.cache}"
  case "$base" in /*) ;; *) base="$HOME/.cache" ;; esac
  dest="$base/streamingt2v/cuda-$CUDA_VER"
fi
root="$dest/nvidia/cu13"
stamp="$dest/.st2v-installed"
want="${PKGS[*]}"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$root/bin/nvcc" ]; then
  echo "$root/bin/nvcc"
  exit 0
fi

py="${PYTHON:-python3}"
command -v "$py" >/dev/null 2>&1 || { echo "install-cuda-toolchain: $py not found" >&2; exit 2; }
mkdir -p "$dest"
tmp="$(mktemp -d "$dest/.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

pip_install() {  # pip_install <python> <target>
  PIP_ROOT_USER_ACTION=ignore "$1" -m pip install --quiet --disable-pip-version-check --no-deps --no-compile --target "$2" "${PKGS[@]}"
}
echo "install-cuda-toolchain: installing ${PKGS[*]} into $dest" >&2
if ! "$py" -m pip --version >/dev/null 2>&1 || ! pip_install "$py" "$tmp/t" >&2; then
  # Debian's system pip refuses (externally-managed-environment) or is missing: use a throw-away venv.
  echo "install-cuda-toolchain: plain pip failed, retrying in a venv" >&2
  rm -rf "$tmp/t" "$tmp/venv"
  "$py" -m venv "$tmp/venv" >&2
  pip_install "$tmp/venv/bin/python" "$tmp/t" >&2
fi
[ -x "$tmp/t/nvidia/cu13/bin/nvcc" ] || { echo "install-cuda-toolchain: the wheels have no nvidia/cu13/bin/nvcc" >&2; exit 3; }
# nvcc.profile links from lib64/; the wheels ship lib/.
ln -sfn lib "$tmp/t/nvidia/cu13/lib64"
rm -rf "$dest/nvidia" "$dest"/nvidia_*.dist-info
mv "$tmp/t/nvidia" "$dest/nvidia"
mv "$tmp/t"/*.dist-info "$dest/" 2>/dev/null || true
"$root/bin/nvcc" --version >&2
printf '%s' "$want" > "$stamp"
echo "$root/bin/nvcc"
