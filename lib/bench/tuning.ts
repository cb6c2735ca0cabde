/**
 * `npm run bench -- tuning [--json] [--save] [--threads N]`: the GEMM blocking sweeps of native suite 'tuning'
 * (gemm_avx512_sweep, gemm_avx2_sweep: the one for this CPU's widest level runs, the other reports itself
 * skipped). Each variant of the level's blocking (microkernel rows, KC, MC, NC, loop order) multiplies 2048^3 f32
 * and is rated against the mean of the FMA peak probes run just before and after it, over 7 rotating rounds;
 * the table lists the variants by median ratio (quartiles beside). Variants: the native defaults, or
 * ST2V_GEMM_SWEEP / ST2V_GEMM_SWEEP_AVX2 (native/bench/ops_bench.cpp). This is how the default blocking of each
 * level was chosen; it changes nothing by itself.
 */
import { hostLine, openBench, round, parseBasicOptions, saveReport } from './common.js';
import { callNative } from '../errors.js';
import type { NativeBenchResult } from '../native/binding.js';

interface Variant {
  variant: string;
  ratio: number;
  q1: number;
  q3: number;
  gflops: number;
}

/** The per-variant figures of a sweep result's `extra` ({label}_ratio, _q1, _q3, _gflops), best first. */
export function variantsOf(extra: Record<string, number> | undefined): Variant[] {
  if (!extra) return [];
  const out: Variant[] = [];
  for (const [k, v] of Object.entries(extra)) {
    if (!k.endsWith('_ratio')) continue;
    const label = k.slice(0, -'_ratio'.length);
    out.push({
      variant: label,
      ratio: round(v, 3),
      q1: round(extra[`${label}_q1`] ?? NaN, 3),
      q3: round(extra[`${label}_q3`] ?? NaN, 3),
      gflops: round(extra[`${label}_gflops`] ?? NaN, 1),
    });
  }
  return out.sort((a, b) => b.ratio - a.ratio);
}

export async function run(argv: string[]): Promise<void> {
  const opts = parseBasicOptions('tuning', argv);
  const { core, info, log } = openBench(opts);
  log(hostLine(info));
  const sweeps: Array<{ name: string; note: string; variants: Variant[] }> = [];
  for (const name of core.benchList('tuning')) {
    const r: NativeBenchResult = await callNative(() => core.benchRun(name));
    sweeps.push({ name: r.name, note: r.note, variants: variantsOf(r.extra) });
  }
  const report = { cpu: info.cpu, isa: info.isa, threads: info.threads, date: new Date().toISOString(), sweeps };
  if (opts.json) process.stdout.write(`${JSON.stringify(report)}\n`);
  else {
    for (const s of sweeps) {
      console.log(`${s.name}: ${s.note}`);
      if (s.variants.length > 0) console.table(s.variants);
    }
  }
  if (opts.save) log(`saved ${saveReport('tuning', `${info.cpu}-${info.isa}`, report.date, report)}`);
}
