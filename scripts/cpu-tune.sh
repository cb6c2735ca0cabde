#!/usr/bin/env bash
# The GEMM blocking sweep of this CPU's widest level (AVX-512: ours often lack it, the GPU machines' hosts have it;
# AVX2): the GEMM unit tests (every tunable blocking against the double reference), then the `tuning` bench cases
# gemm_avx512_sweep / gemm_avx2_sweep (the one that is not this CPU's level skips) and gemm_2048_paired on 2
# threads, nothing else running.
#   bash scripts/cpu-tune.sh [bin dir (default gpu-prebuilt, from scripts/gpu-prebuild.sh; or build-cpp)]
# ST2V_GEMM_SWEEP="rows,KC,MC,NC,a_outer;..." / ST2V_GEMM_SWEEP_AVX2="KC,MC,NC;..." pick the variants (ops_bench.cpp). Writes cpu-tune-<date>.json
# under bench/results (and $OUT when set): {"cpu", "tests", "sweep", "paired"}.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN="${1:-gpu-prebuilt}"
STAMP="$(date -u +%Y-%m-%dT%H%M%SZ)"
LOG="$(mktemp -d)"
echo "[cpu-tune] $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), $(nproc) cpus" >&2
timeout 120 "$BIN/st2v_tests" --gtest_filter='GemmConv.*' --gtest_brief=1 > "$LOG/tests.txt" 2>&1
echo "tests exit $?" >> "$LOG/tests.txt"
tail -3 "$LOG/tests.txt" >&2
timeout 240 "$BIN/attn_bench" --threads 2 --json gemm_avx512_sweep gemm_avx2_sweep gemm_2048_paired > "$LOG/bench.jsonl" 2> "$LOG/bench.err"
cat "$LOG/bench.jsonl" "$LOG/bench.err" >&2
mkdir -p bench/results
OUTF="bench/results/cpu-tune-$STAMP.json"
python3 - "$LOG" "$OUTF" <<'PY'
import json, sys
log, out = sys.argv[1:3]
rows = [json.loads(l) for l in open(f"{log}/bench.jsonl") if l.startswith("{")]
model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), None)
res = {"cpu_model": model, "kernels": next((r["cpu"] for r in rows if "cpu" in r), None),
       "tests": open(f"{log}/tests.txt").read()[-600:],
       "sweep": next((r for r in rows if str(r.get("name", "")).endswith("_sweep") and r.get("extra")), None),
       "paired": next((r for r in rows if r.get("name") == "gemm_2048_paired"), None)}
json.dump(res, open(out, "w"), indent=1)
sw = res["sweep"] or {}
ratios = sorted(((v, k[:-6]) for k, v in (sw.get("extra") or {}).items() if k.endswith("_ratio")), reverse=True)
for v, k in ratios:
    print(f"{k:32s} {v:.3f}")
print(sw.get("note"))
PY
if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then mkdir -p "$OUT/bench/results"; cp "$OUTF" "$OUT/bench/results/"; fi
