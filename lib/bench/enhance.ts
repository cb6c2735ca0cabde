/**
 * `npm run bench -- enhance [--json] [--save] [--threads N] [--no-step]`: stage 3.
 *
 * Runs the native 'enhance' cases (native/bench/blend_bench.cpp, native/models/enhancer/enhancer_bench.cpp):
 *   - blend_merge_24f_90x160 / blend_memcpy_24f_90x160: the fused randomized-blending merge of 3 chunks
 *     (L = 56, C = 24, O = 8, 1x4x90x160 latents) against a plain multithreaded memcpy of the same bytes, both in
 *     this run; the figure is blend GB/s / memcpy GB/s (target >= 0.8). The merge case also times memcpy
 *     interleaved with itself and reports that paired ratio in its note.
 *   - enh_step_mid_90x160: seconds per solver step (2 UNet forwards + CFG/rescale + blend) of a mid-size random
 *     enhancer (widths 64*[1,2,4,4], f16 weights) at 90x160 latents, 24 frames. One repetition; minutes on 2
 *     cores (--no-step skips it).
 * Prints a summary (or one JSON object with --json); --save writes it to bench/results/enhance-<cpu>-<isa>-<date>.json.
 */
import os from 'node:os';
import { openBench, round, parseThreads, saveReport } from './common.js';
import { callNative } from '../errors.js';
import type { NativeBenchResult } from '../native/binding.js';

interface Args {
  json: boolean;
  save: boolean;
  step: boolean;
  threads?: number;
}

function parseArgs(argv: string[]): Args {
  const out: Args = { json: false, save: false, step: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--json') out.json = true;
    else if (a === '--save') out.save = true;
    else if (a === '--no-step') out.step = false;
    else if (a === '--threads') out.threads = parseThreads(argv[++i]);
    else throw new RangeError(`enhance bench: unknown option '${a}' (options: --json, --save, --threads N, --no-step)`);
  }
  return out;
}

export async function run(argv: string[]): Promise<void> {
  const opts = parseArgs(argv);
  const { core, info, log } = openBench(opts);
  const listed = core.benchList('enhance');
  const results: NativeBenchResult[] = [];
  for (const name of listed) {
    if (!opts.step && name.startsWith('enh_step')) continue;
    if (name.startsWith('enh_step')) log(`running ${name} (one repetition; minutes on a few cores) ...`);
    results.push(await callNative(() => core.benchRun(name)));
  }
  const by = (n: string) => results.find((r) => r.name === n);
  const blend = by('blend_merge_24f_90x160'), copy = by('blend_memcpy_24f_90x160'), step = by('enh_step_mid_90x160');
  const mem = by('enh_memory_mid_42x80');
  const paired = blend ? /blend\/memcpy ([0-9.]+)/.exec(blend.note)?.[1] : undefined;
  const report = {
    blend_gbps: blend ? round(blend.gbps, 2) : null,
    memcpy_gbps: copy ? round(copy.gbps, 2) : null,
    /** blend GB/s over the memcpy case's GB/s, both in this run (target >= 0.8). */
    blend_over_memcpy: blend && copy && copy.gbps > 0 ? round(blend.gbps / copy.gbps, 3) : null,
    /** The same ratio with memcpy timed inside the merge case, interleaved with it. */
    blend_over_memcpy_paired: paired !== undefined ? Number(paired) : null,
    seconds_per_step: step ? round(step.seconds, 2) : null,
    /** Process CPU seconds of that step (wall x cores it actually got; the machine may be shared). */
    cpu_seconds_per_step: step && step.cpuSeconds > 0 ? round(step.cpuSeconds, 2) : null,
    step_note: step?.note ?? null,
    /** Peak tensor bytes of the step (MB), when it ran. */
    step_peak_tensor_mb: step?.extra?.peak_tensor_mb !== undefined ? round(step.extra.peak_tensor_mb, 1) : null,
    /**
     * One forward at 42x80 latents: peak tensor MB with the pipeline's token tiling (FF + temporal transformers)
     * vs FF slices only, and the largest output difference between the two (expected 0).
     */
    memory: mem?.extra
      ? {
          peak_tensor_mb_tiled: round(mem.extra.peak_tensor_mb_tiled ?? 0, 1),
          peak_tensor_mb_ff_only: round(mem.extra.peak_tensor_mb_ff_only ?? 0, 1),
          tiled_over_ff_only: round(mem.extra.tiled_over_ff_only ?? 0, 3),
          max_abs_diff: mem.extra.max_abs_diff ?? null,
        }
      : null,
    threads: info.threads,
    isa: info.isa,
    cpu: info.cpu,
    load_avg: os.loadavg().map((x) => round(x, 2)),
    date: new Date().toISOString(),
    results: results.map((r) => ({ name: r.name, seconds: r.seconds, gbps: round(r.gbps, 3), cpuSeconds: r.cpuSeconds, note: r.note })),
  };
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(report)}\n`);
  } else {
    console.log(`enhance bench on ${info.cpu} (${info.isa}, ${info.threads} threads, load ${report.load_avg.join(' ')})`);
    if (blend && copy) {
      console.log(
        `  randomized blend merge: ${report.blend_gbps} GB/s, memcpy of the same bytes ${report.memcpy_gbps} GB/s -> ` +
          `blend/memcpy ${report.blend_over_memcpy} (paired in-case ${report.blend_over_memcpy_paired ?? 'n/a'}; target >= 0.8)`,
      );
    }
    if (report.memory) {
      const m = report.memory;
      console.log(
        `  enhancer forward memory (mid-size random, 42x80 latents, 24 frames): peak ${m.peak_tensor_mb_tiled} MB with ` +
          `temporal-transformer tiles vs ${m.peak_tensor_mb_ff_only} MB FF slices only (x${m.tiled_over_ff_only}), max |diff| ${m.max_abs_diff}`,
      );
    }
    if (step) {
      const cpu = report.cpu_seconds_per_step !== null ? ` (${report.cpu_seconds_per_step} process CPU-s)` : '';
      console.log(`  enhancer solver step (mid-size random, 90x160 latents, 24 frames): ${report.seconds_per_step} s/step${cpu}\n    ${step.note}`);
    }
    else if (!opts.step) console.log('  enhancer solver step: skipped (--no-step)');
  }
  if (opts.save) {
    log(`saved ${saveReport('enhance', `${info.cpu}-${info.isa}`, report.date, report)}`);
  }
}
