#!/usr/bin/env bash
# Builds, on a machine without a GPU, what scripts/gpu-check.sh runs on a GPU machine, so that the lease is not
# spent compiling: libstreamingt2v_cuda (nvcc 13.0.88 from scripts/install-cuda-toolchain.sh, the same version as
# the GPU machines' /usr/local/cuda; SASS for sm_90 only, i.e. H100 / H200), the check tools cuda_check,
# cuda_model_check, cuda_engine_check, and the CPU-side st2v_tests and attn_bench. Copies them, stripped, into
# gpu-prebuilt/ (ignored by git). Then, on the device machine:
#   ST2V_GPU_PREBUILT=gpu-prebuilt bash scripts/gpu-check.sh        (carry: gpu-prebuilt)
# The binaries need glibc >= this machine's (2.36 on Debian 12; the GPU machines have 2.39) and link libstdc++
# dynamically (g++ 12 here; the GPU machines' g++ 13 runtime is newer, so compatible).
set -euo pipefail
cd "$(dirname "$0")/.."
ARCHS="${ST2V_GPU_ARCHS:-90}"
BUILD=build-gpu
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DST2V_CUDA=ON -DST2V_CUDA_ARCHS="$ARCHS" \
  -DST2V_BUILD_TESTS=ON > /dev/null
ninja -C "$BUILD" streamingt2v_cuda cuda_check cuda_model_check cuda_engine_check st2v_tests attn_bench
rm -rf gpu-prebuilt
mkdir -p gpu-prebuilt
for f in libstreamingt2v_cuda.so cuda_check cuda_model_check cuda_engine_check st2v_tests attn_bench; do
  cp "$BUILD/$f" gpu-prebuilt/
  strip gpu-prebuilt/$f
done
git rev-parse HEAD > gpu-prebuilt/commit.txt 2>/dev/null || true
du -sh gpu-prebuilt
