#!/usr/bin/env bash
# The prepared check for a GPU machine (H100 / H200; docs/cuda.md): run from the repository root, done in
# under 6 minutes. The machine has nvcc 13.0 and cuBLAS/cuBLASLt in /usr/local/cuda, cmake + ninja + python3
# with PyTorch 2.11 on PATH, no Node and no network.
#
#   1. binaries: prebuilt here by scripts/gpu-prebuild.sh (ST2V_GPU_PREBUILT=<dir>), else built there (cmake +
#      ninja, the GPU's own architecture only): libstreamingt2v_cuda and the check tools
#   1b. the CPU side of that machine (often AVX-512 silicon, which our own machines lack), first while nothing
#      else runs: the `ops` bench cases on 2 threads (attn_bench --json), then the C++ unit tests (st2v_tests;
#      the goldens are not sent, so golden cases skip); both only when built (prebuilt, or tests ON)
#   2. runs every CUDA op against the CPU backend on seeded random data (cuda_check: one JSON line per op)
#   2b. runs the stage-2 networks (CAM + UNet3D + APM, CFG, DDIM) on CUDA against the CPU models at the tiny and a
#      mid-size config (f32 and bf16 resident weights), then times our stage-2 step at the bench shape (full size,
#      CFG batch 2, 16 frames, 32x32 latents) in f32 and bf16 with its peak device memory and a per-op profile
#      (cuda_model_check --bench --profile)
#   2b'. the same stage-2 check (tiny) and bf16 step with the direct fp32 convolution kernel instead of the default
#      tensor-core GEMMs (ST2V_CUDA_CONV=direct), in the result as stage2_step_ms.ours_bf16_conv_direct and
#      conv_direct
#   2b''. the same bf16 step with every attention in the fused online-softmax kernel (ST2V_CUDA_ATTN=fused) instead of
#      the default's cuBLASLt GEMM path for the long self-attentions: stage2_step_ms.ours_bf16_attn_fused, attn_fused
#   2b (bf16 attention). the same with the GEMM attention path on bf16 operands (ST2V_CUDA_ATTN_BF16=1; bf16 parity
#      cases only): stage2_step_ms.ours_bf16_attn_bf16, attn_bf16; the enhancer bench (3b) times its bf16 step that
#      way too (enh_step_ms.ours_bf16_attn_bf16, enh_attn_bf16_vs_default_rel)
#   2c. a whole 2-chunk generation (24 frames, built-in model, engine::Engine) with the denoisers on cuda against
#      the same generation on cpu, uint8 frames compared (cuda_engine_check)
#   3. runs the PyTorch peer (scripts/torch_anchor.py: stage-2 step bf16 eager + fp32, enhancer-sized step
#      bf16 eager) on the same GPU in the same run
#   3b. our stage-3 enhancer step on the device (cuda_model_check --bench-enh: the real MS-Vid2Vid-XL layout with
#      random weights, 24 frames of 90x160 latents, two forwards + CFG, f32 and bf16, with a per-op profile of one
#      step: enh_profile) while the run is under 270 s
#   3c. compute-sanitizer memcheck over cuda_check --quick while the run is under 300 s
#   4. writes bench/results/gpu-<date>.json (and a copy under $OUT when set, with the logs as one gpu-logs.tgz:
#      the device tool returns at most 8 files)
#
# Figures that a phase did not produce are written as null, never guessed. Environment: ST2V_GPU_ARCHS (default: the GPU's own, e.g. 90),
# ST2V_GPU_SKIP_TORCH=1 (no anchor), ST2V_GPU_BUILD_TIMEOUT (s, default 240), CUDA_HOME (default /usr/local/cuda),
# ST2V_GPU_PREBUILT=<dir> (binaries built elsewhere with nvcc 13.0 for this GPU, e.g. by scripts/gpu-prebuild.sh:
# used as they are when every tool is there, so the lease is not spent compiling), ST2V_GPU_SKIP_CPU=1 (no 1b),
# ST2V_GPU_RACECHECK=1 (compute-sanitizer racecheck too).
set -uo pipefail
cd "$(dirname "$0")/.."
T0=$SECONDS
phase() { echo "[gpu-check +$((SECONDS - T0))s] $*" >&2; }

CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
export CUDA_HOME
export PATH="$CUDA_HOME/bin:$PATH"
BUILD=build-gpu
LOGS="$BUILD/gpu-check"
mkdir -p "$LOGS" bench/results
STAMP="$(date -u +%Y-%m-%dT%H%M%SZ)"
RESULT="bench/results/gpu-$STAMP.json"

phase "device"
nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader > "$LOGS/nvidia-smi.txt" 2> "$LOGS/nvidia-smi.err" \
  || echo "gpu-check: nvidia-smi failed: $(head -c 300 "$LOGS/nvidia-smi.err")" >&2
cat "$LOGS/nvidia-smi.txt" >&2
CC="$(cut -d, -f4 "$LOGS/nvidia-smi.txt" 2>/dev/null | head -1 | tr -d ' .')"
[[ "$CC" =~ ^[0-9]+$ ]] || CC=90
ARCHS="${ST2V_GPU_ARCHS:-$CC}"
nvcc --version > "$LOGS/nvcc.txt" 2> "$LOGS/nvcc.err" || echo "gpu-check: no nvcc in $CUDA_HOME/bin or on PATH" >&2

# ---- 1. build (about 1-2 min on 16 cores: st2v_core + the CUDA library) ----
BUILD_OK=0
PRE="${ST2V_GPU_PREBUILT:-}"
if [ -n "$PRE" ] && [ -f "$PRE/libstreamingt2v_cuda.so" ] && [ -x "$PRE/cuda_check" ] && [ -x "$PRE/cuda_model_check" ] \
   && [ -x "$PRE/cuda_engine_check" ]; then
  phase "prebuilt binaries in $PRE (not compiled here)"
  BUILD="$PRE"
  BUILD_OK=1
  echo "prebuilt: $PRE" > "$LOGS/build.log"
  ls -l "$PRE" >> "$LOGS/build.log"
elif ! command -v cmake >/dev/null 2>&1 || ! command -v ninja >/dev/null 2>&1; then
  echo "gpu-check: cmake or ninja missing on PATH: cannot build" | tee "$LOGS/build.log" >&2
else
  phase "build (archs $ARCHS)"
  if timeout 200 cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DST2V_CUDA=ON \
       -DCMAKE_CUDA_COMPILER="$CUDA_HOME/bin/nvcc" -DST2V_CUDA_ARCHS="$ARCHS" -DST2V_BUILD_TESTS=OFF \
       > "$LOGS/build.log" 2>&1 &&
     timeout "${ST2V_GPU_BUILD_TIMEOUT:-240}" ninja -C "$BUILD" -j "$(nproc)" streamingt2v_cuda cuda_check cuda_model_check cuda_engine_check >> "$LOGS/build.log" 2>&1; then
    BUILD_OK=1
  else
    echo "gpu-check: build FAILED (tail of $LOGS/build.log):" >&2
    tail -30 "$LOGS/build.log" >&2
  fi
fi

# ---- 1b. the machine's own CPU first, while nothing else runs: the ops bench cases on 2 threads, then the C++
# unit tests on every core (goldens absent: golden cases skip) ----
: > "$LOGS/cpu_bench.jsonl"
: > "$LOGS/cpu_tests.log"
BENCH_BIN="$BUILD/attn_bench"
TESTS_BIN="$BUILD/st2v_tests"
if [ "${ST2V_GPU_SKIP_CPU:-0}" != 1 ] && [ -x "$BENCH_BIN" ]; then
  phase "ops bench cases on the host CPU, 2 threads"
  timeout 150 "$BENCH_BIN" --threads 2 --json fma_peak_avx512 fma_peak_avx2 gemm_2048_paired gemm_f32_2048 gemm_f16_2048 \
    gemm_f32_4096 conv3x3_16x320x32x32 attention_80x1024x1024_d64 tattn_5120x16x16_d64 groupnorm_silu_16x320x32x32 \
    > "$LOGS/cpu_bench.jsonl" 2> "$LOGS/cpu_bench.err"
  cat "$LOGS/cpu_bench.jsonl" >&2
fi
if [ "${ST2V_GPU_SKIP_CPU:-0}" != 1 ] && [ -x "$TESTS_BIN" ]; then
  phase "C++ unit tests on the host CPU (goldens absent)"
  ST2V_SHARED=/nonexistent timeout 150 "$TESTS_BIN" --gtest_brief=1 --gtest_output=json:"$LOGS/cpu_tests.json" \
    > "$LOGS/cpu_tests.log" 2>&1
  echo "exit $?" >> "$LOGS/cpu_tests.log"
  tail -4 "$LOGS/cpu_tests.log" >&2
fi

# run_check <tool> <timeout s> <args...>: runs $BUILD/<tool> into $LOGS/<tool>.jsonl (+ .err), echoes them, and
# sets CHECK_RC to its exit code (-1 when the build failed and it did not run).
run_check() {
  local tool=$1 limit=$2
  shift 2
  CHECK_RC=-1
  : > "$LOGS/$tool.jsonl"
  [ "$BUILD_OK" = 1 ] || return 0
  phase "$tool $*"
  timeout "$limit" stdbuf -oL "$BUILD/$tool" "$@" > "$LOGS/$tool.jsonl" 2> "$LOGS/$tool.err"
  CHECK_RC=$?
  cat "$LOGS/$tool.jsonl" >&2
  tail -5 "$LOGS/$tool.err" >&2
}

# ---- 2. op-by-op parity against the CPU backend ----
run_check cuda_check 150 --reps 10
OPS_RC=$CHECK_RC

# ---- 2b. the stage-2 networks against the CPU models, and our stage-2 step bench (about 1-2 min) ----
run_check cuda_model_check 200 --bench --profile --reps 5
MODEL_RC=$CHECK_RC
# bf16_variant <name> <VAR=value> [flags...]: the tiny parity cases and the bf16 step timing / profile with one switch
# set, into $LOGS/cuda_model_check_<name>.jsonl
bf16_variant() {
  local name=$1 setting=$2
  shift 2
  : > "$LOGS/cuda_model_check_$name.jsonl"
  [ "$BUILD_OK" = 1 ] || return 0
  phase "cuda_model_check with $setting $*"
  env "$setting" timeout 150 stdbuf -oL "$BUILD/cuda_model_check" --bench --bench-dtype bf16 --profile --reps 5 \
    --quick --config tiny "$@" > "$LOGS/cuda_model_check_$name.jsonl" 2> "$LOGS/cuda_model_check_$name.err"
  echo "$name exit $?" >&2
  grep -E '"bench/stage2_step"|summary' "$LOGS/cuda_model_check_$name.jsonl" | cut -c1-300 >&2
}
# 2b'. the direct fp32 convolution kernel for bf16 weights (the default since it was measured is the tensor-core
# GEMM path)
bf16_variant conv_direct ST2V_CUDA_CONV=direct
# 2b''. the fused online-softmax kernel for every attention (the default sends the long self-attentions and heads
# wider than 256 through the cuBLASLt GEMM path)
bf16_variant attn_fused ST2V_CUDA_ATTN=fused
# 2b (bf16 attention). the GEMM attention path on bf16 operands (ST2V_CUDA_ATTN_BF16=1, opt-in, meant for bf16 weights
# only: the parity cases in bf16 only)
bf16_variant attn_bf16 ST2V_CUDA_ATTN_BF16=1 --dtype bf16

# ---- 2c. a whole 2-chunk generation (engine::Engine, built-in model, f32 weights) with the denoisers on cuda vs
# cpu, 24 frames, 5 steps ----
run_check cuda_engine_check 120 --frames 24 --steps 5
ENGINE_RC=$CHECK_RC

# ---- 3. the PyTorch peer, same GPU, same run ----
: > "$LOGS/torch_bf16.jsonl"
: > "$LOGS/torch_fp32.jsonl"
if [ "${ST2V_GPU_SKIP_TORCH:-0}" != 1 ] && [ -f scripts/torch_anchor.py ]; then
  phase "torch anchor bf16 (stage-2 + enhancer-sized step)"
  timeout 150 python3 scripts/torch_anchor.py --modes bf16 --enh --reps 10 > "$LOGS/torch_bf16.jsonl" 2> "$LOGS/torch_bf16.err" \
    || echo "gpu-check: torch anchor bf16 exited $?" >&2
  phase "torch anchor fp32 (stage-2 step)"
  timeout 90 python3 scripts/torch_anchor.py --modes fp32 --reps 5 > "$LOGS/torch_fp32.jsonl" 2> "$LOGS/torch_fp32.err" \
    || echo "gpu-check: torch anchor fp32 exited $?" >&2
fi

# ---- 3b. our enhancer step on the device (about 40 s of random weights on the host, then the steps), when time
# is left ----
: > "$LOGS/cuda_model_check_enh.jsonl"
if [ "$BUILD_OK" = 1 ] && [ "${ST2V_GPU_SKIP_ENH:-0}" != 1 ]; then
  if [ $((SECONDS - T0)) -lt 270 ]; then
    phase "cuda_model_check --bench-enh"
    timeout 180 stdbuf -oL "$BUILD/cuda_model_check" --bench-enh --profile --attn-bf16-ab --reps 2 --config none \
      > "$LOGS/cuda_model_check_enh.jsonl" 2> "$LOGS/cuda_model_check_enh.err"
    echo "bench-enh exit $?" >&2
    grep -E '"bench/enh_step"' "$LOGS/cuda_model_check_enh.jsonl" | cut -c1-300 >&2
  else
    echo "gpu-check: bench-enh skipped (time)" >&2
  fi
fi

# ---- 3c. compute-sanitizer memcheck over the quick op check, when time is left (racecheck too with
# ST2V_GPU_RACECHECK=1: it did not finish in 60 s on the H100) ----
: > "$LOGS/sanitizer.txt"
if [ "$BUILD_OK" = 1 ] && [ "${ST2V_GPU_SKIP_SANITIZER:-0}" != 1 ] && command -v compute-sanitizer >/dev/null 2>&1; then
  TOOLS="memcheck"
  [ "${ST2V_GPU_RACECHECK:-0}" = 1 ] && TOOLS="memcheck racecheck"
  for tool in $TOOLS; do
    if [ $((SECONDS - T0)) -lt 300 ]; then
      phase "compute-sanitizer --tool $tool cuda_check --quick"
      timeout 60 compute-sanitizer --tool "$tool" --print-limit 20 "$BUILD/cuda_check" --quick > "$LOGS/sanitizer_$tool.log" 2>&1
      echo "$tool exit $?: $(grep -E "ERROR SUMMARY|RACECHECK SUMMARY|HAZARD" "$LOGS/sanitizer_$tool.log" | tail -3 | tr '\n' ' ')" \
        | tee -a "$LOGS/sanitizer.txt" >&2
    else
      echo "$tool: skipped (time)" >> "$LOGS/sanitizer.txt"
    fi
  done
fi

# ---- 4. one JSON result ----
phase "result"
python3 - "$LOGS" "$RESULT" "$STAMP" "$BUILD_OK" "$OPS_RC" "$((SECONDS - T0))" "$MODEL_RC" "$ENGINE_RC" <<'PY'
import json, os, sys
logs, out, stamp, build_ok, ops_rc, secs, model_rc, engine_rc = sys.argv[1:9]

def jsonl(path):
    rows = []
    try:
        for line in open(path):
            line = line.strip()
            if line.startswith("{"):
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    pass
    except OSError:
        pass
    return rows

def text(path):
    try:
        return open(path).read().strip()
    except OSError:
        return None

smi = (text(f"{logs}/nvidia-smi.txt") or "").split("\n")[0].split(",")
ops = jsonl(f"{logs}/cuda_check.jsonl")
dev = next((r for r in ops if "device" in r), {})
summary = next((r for r in ops if r.get("summary")), {})
op_rows = [r for r in ops if "op" in r]
torch_rows = jsonl(f"{logs}/torch_bf16.jsonl") + jsonl(f"{logs}/torch_fp32.jsonl")
model = jsonl(f"{logs}/cuda_model_check.jsonl")
model_summary = next((r for r in model if r.get("summary")), {})
model_cases = [r for r in model if "case" in r and not str(r["case"]).startswith("bench/")]
model_bench = [r for r in model if str(r.get("case", "")).startswith("bench/")]

conv_direct = jsonl(f"{logs}/cuda_model_check_conv_direct.jsonl")
enh = jsonl(f"{logs}/cuda_model_check_enh.jsonl")

def enh_row(dtype):
    return next((r for r in enh if r.get("case") == "bench/enh_step" and r.get("dtype") == dtype and "ms_median" in r), {})
attn_fused = jsonl(f"{logs}/cuda_model_check_attn_fused.jsonl")
attn_bf16 = jsonl(f"{logs}/cuda_model_check_attn_bf16.jsonl")
attn_bf16_step = next((r for r in attn_bf16 if r.get("case") == "bench/stage2_step" and r.get("dtype") == "bf16"
                       and "ms_median" in r), {})
enh_attn_bf16 = next((r for r in enh if r.get("case") == "bench/enh_step_attn_bf16" and "ms_median" in r), {})
attn_fused_step = next((r for r in attn_fused if r.get("case") == "bench/stage2_step" and r.get("dtype") == "bf16"
                        and "ms_median" in r), {})
conv_direct_step = next((r for r in conv_direct if r.get("case") == "bench/stage2_step" and r.get("dtype") == "bf16"
                         and "ms_median" in r), {})

def profile(dtype):
    return next((r for r in model_bench if r.get("case") == "bench/stage2_profile" and r.get("dtype") == dtype), None)

def bench_row(dtype):
    return next((r for r in model_bench if r.get("case") == "bench/stage2_step" and r.get("dtype") == dtype
                 and "ms_median" in r), {})

def worst(dtype, key):
    vals = [r[key] for r in model_cases if r.get("dtype") == dtype and isinstance(r.get(key), (int, float))]
    return max(vals) if vals else None
env = next((r for r in torch_rows if r.get("event") == "env"), {})

def torch_ms(case_prefix, mode):
    for r in torch_rows:
        if str(r.get("case", "")).startswith(case_prefix) and r.get("mode") == mode:
            return r.get("ms_median")
    return None

def host_cpu():
    """3b: the machine's own CPU (model name, our kernels' ISA), the C++ unit tests and the ops bench cases."""
    model = None
    try:
        model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), None)
    except OSError:
        pass
    tests = None
    try:
        g = json.load(open(f"{logs}/cpu_tests.json"))
        failed = [f"{s['name']}.{t['name']}" for s in g.get("testsuites", []) for t in s.get("testsuite", [])
                  if t.get("failures")]
        tests = {"tests": g.get("tests"), "failures": g.get("failures"), "disabled": g.get("disabled"),
                 "errors": g.get("errors"), "seconds": g.get("time"), "failed": failed}
    except (OSError, ValueError):
        tests = {"log_tail": (text(f"{logs}/cpu_tests.log") or "")[-1500:] or None}
    rows = jsonl(f"{logs}/cpu_bench.jsonl")
    cpu = next((r["cpu"] for r in rows if "cpu" in r), None)
    bench = [r for r in rows if "name" in r]
    peak = max((r.get("gflops") or 0 for r in bench if str(r["name"]).startswith("fma_peak")), default=0) or None
    for r in bench:
        if peak and r.get("gflops") and not str(r["name"]).startswith("fma_peak"):
            r["ratio_to_peak"] = round(r["gflops"] / peak, 4)
    return {"model": model, "nproc": os.cpu_count(), "kernels": cpu, "unit_tests": tests, "ops_bench_threads": 2,
            "peak_gflops": peak, "ops_bench": bench}

nvcc = text(f"{logs}/nvcc.txt") or ""
result = {
    "date": stamp,
    "gpu": dev.get("device") or (smi[0].strip() if smi and smi[0] else None),
    "versions": {
        "driver": smi[1].strip() if len(smi) > 1 else None,
        "cuda_driver_api": dev.get("driver"),
        "cuda_runtime": dev.get("runtime"),
        "cublaslt": dev.get("cublaslt"),
        "cublaslt_path": dev.get("cublaslt_path"),
        "nvcc": nvcc.splitlines()[-1] if nvcc else None,
        "build": dev.get("build"),
        "torch": env.get("torch"),
    },
    # ours_*: every temporary freed for real; ours_*_buffer_cache: with the backend's opt-in buffer cache
    "stage2_step_ms": {"ours_bf16": bench_row("bf16").get("ms_median"), "ours_fp32": bench_row("f32").get("ms_median"),
                       "ours_bf16_buffer_cache": bench_row("bf16").get("ms_median_buffer_cache"),
                       "ours_fp32_buffer_cache": bench_row("f32").get("ms_median_buffer_cache"),
                       # ours_bf16: bf16 convolutions as tensor-core GEMMs (the default); _conv_direct: the fp32
                       # direct kernel (ST2V_CUDA_CONV=direct)
                       "ours_bf16_conv_direct": conv_direct_step.get("ms_median"),
                       # _attn_fused: every attention through the fused online-softmax kernel (ST2V_CUDA_ATTN=fused)
                       # instead of the default's cuBLASLt GEMM path for long self-attention
                       "ours_bf16_attn_fused": attn_fused_step.get("ms_median"),
                       # _attn_bf16: the GEMM attention path on bf16 operands (ST2V_CUDA_ATTN_BF16=1)
                       "ours_bf16_attn_bf16": attn_bf16_step.get("ms_median"),
                       "torch_bf16_eager": torch_ms("st2v_step", "bf16"), "torch_fp32": torch_ms("st2v_step", "fp32")},
    # ours: the MS-Vid2Vid-XL denoiser (DeviceVid2VidUNet) at 24 x 90 x 160, two forwards + CFG (enhance runs f32);
    # torch: torch_anchor's enhancer-sized step, a UNet3D of the same size class (a proxy, not the same network)
    "enh_step_ms": {"ours_f32": enh_row("f32").get("ms_median"), "ours_bf16": enh_row("bf16").get("ms_median"),
                    "ours_bf16_attn_bf16": enh_attn_bf16.get("ms_median"),
                    "torch_bf16_eager": torch_ms("enh_step", "bf16")},
    # the bf16 step with ST2V_CUDA_ATTN_BF16=1 against the default bf16 step's output (CFG-combined v): max_abs / max|v|
    "enh_attn_bf16_vs_default_rel": enh_attn_bf16.get("vs_default_rel"),
    "enh_step_peak_gib": {"ours_f32": enh_row("f32").get("peak_gib"), "ours_bf16": enh_row("bf16").get("peak_gib")},
    # cuda_model_check: worst over the tiny / mid cases (CAM residuals, UNet eps, one stage-2 step) against the CPU
    # fp32 models; bf16: max_abs / max|ref| of the bf16-weight run against the same fp32 reference
    "parity_fp32_worst_max_abs": worst("f32", "max_abs"),
    "bf16_vs_fp32_rel": worst("bf16", "rel"),
    # live DeviceBuffer bytes (weights + activations) at the bf16 step's peak; cuBLASLt workspace not included
    "stage2_peak_gib_bf16": bench_row("bf16").get("peak_gib"),
    # one extra step per dtype with every device op synchronised and timed on its own (cuda_model_check --profile)
    "stage2_profile": {"bf16": profile("bf16"), "f32": profile("f32")},
    "enh_profile": {dt: next((r for r in enh if r.get("case") == "bench/enh_profile" and r.get("dtype") == dt), None)
                    for dt in ("bf16", "f32")},
    "torch_stage2_peak_gib_bf16": next((r.get("peak_gib") for r in torch_rows
                                        if str(r.get("case", "")).startswith("st2v_step") and r.get("mode") == "bf16"), None),
    "ops": {
        "build_ok": build_ok == "1",
        "exit_code": int(ops_rc),
        "available": summary.get("available"),
        "message": summary.get("message"),
        "passed": summary.get("passed"),
        "failed": summary.get("failed"),
        "worst_fp32_rel": summary.get("worst_fp32_rel"),
        "cases": op_rows,
    },
    "model": {
        "exit_code": int(model_rc),
        "passed": model_summary.get("passed"),
        "failed": model_summary.get("failed"),
        "available": model_summary.get("available"),
        "cases": model_cases,
        "bench": model_bench,
    },
    # cuda_engine_check: 2 chunks (24 frames) through engine::Engine on cuda vs cpu, uint8 frames compared
    "generation_2chunk": {"exit_code": int(engine_rc), "rows": jsonl(f"{logs}/cuda_engine_check.jsonl")},
    # the bf16 convolutions with the direct fp32 kernel (ST2V_CUDA_CONV=direct): tiny-config parity rows, step, profile
    "conv_direct": conv_direct or None,
    # every attention through the fused kernel (ST2V_CUDA_ATTN=fused): tiny-config parity rows, bf16 step, profile
    "attn_fused": attn_fused or None,
    # the GEMM attention path on bf16 operands (ST2V_CUDA_ATTN_BF16=1): tiny-config bf16 parity rows, bf16 step, profile
    "attn_bf16": attn_bf16 or None,
    "torch_anchor": [r for r in torch_rows if "case" in r or r.get("event") == "sdpa_check"],
    "host_cpu": host_cpu(),
    # compute-sanitizer over cuda_check --quick: "<tool> exit <rc>: <summary lines>" per tool
    "sanitizer": (text(f"{logs}/sanitizer.txt") or "").splitlines() or None,
    "seconds": int(secs),
}
json.dump(result, open(out, "w"), indent=1)
print(json.dumps({k: result[k] for k in ("gpu", "stage2_step_ms", "enh_step_ms")}))
print(f"ops: {summary.get('passed')} passed, {summary.get('failed')} failed, worst fp32 rel {summary.get('worst_fp32_rel')}")
print(f"model: {model_summary.get('passed')} passed, {model_summary.get('failed')} failed, parity fp32 worst max_abs "
      f"{result['parity_fp32_worst_max_abs']}, bf16 rel {result['bf16_vs_fp32_rel']}, peak bf16 {result['stage2_peak_gib_bf16']} GiB")
PY
if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then
  mkdir -p "$OUT/bench/results"
  cp "$RESULT" "$OUT/bench/results/"
  tar -czf "$OUT/gpu-logs.tgz" -C "$LOGS" . 2>/dev/null || true
fi
phase "done: $RESULT"
[ "$BUILD_OK" = 1 ] && [ "$OPS_RC" = 0 ] && [ "$MODEL_RC" = 0 ] && [ "$ENGINE_RC" = 0 ]
