/**
 * `npm run bench -- step`: the StreamingT2V denoising step (CAM over the 8 conditioning frames + the base
 * UNet3D with the 13 CAM mergers and APM, CFG batch 2, 16 frames) at the mid-size config (block_out_channels
 * 128/256/512/512, head size 64, 32x32 latents, 1024-d context, 93 tokens) with random weights from a seed,
 * for f32 and f16 weights. Reports the median seconds per step over --reps steps after --warmup steps (the first,
 * cold step separately), GFLOP/s (FLOPs counted analytically: convolutions, linear layers and attention products)
 * and the peak RSS. Each dtype runs in its own child process so the peak RSS figures do not mix; the steps run on
 * a native worker thread, activations from one arena as in the engine.
 *
 * --anchor: then runs the PyTorch peer (scripts/torch_anchor.py, a copy of ../shared/tools/torch_anchor.py: the
 * same step in plain PyTorch, same widths, same thread count, fp32) on the same machine, right after, and reports
 * torch's median / ours for each dtype. It needs a Python with torch (--anchor-python, else $ST2V_ANCHOR_PYTHON,
 * else python3); PyTorch is a bench tool only, never a dependency of the package.
 * Options: --dtypes f32,f16 (default), --seed N, --frames N, --cond-frames N, --latent N, --threads N,
 * --preset mid|tiny, --reps N (3), --warmup N (1), --anchor, --anchor-python PATH, --save, --json.
 *
 * --profile: after the timed steps, one more first step with the CPU op profile on (native/core/profile.h): the
 * time of every op kind (convolutions by kind, linear, the three kinds of attention, norms, element-wise ops, layout
 * copies) in that step, its share of the step, its GFLOP/s or GB/s, and its ratio to the FMA peak probed right
 * after in the same process ("outside ops" is the rest: model code between ops). Then a later step of the same chunk
 * (E_cond from the cache, as every step of a chunk but the first) is profiled apart. The report gets `profile` and
 * `profileLater` rows.
 *
 * --ab context|stem [--ab-rounds N (8)]: after the timed steps, N rounds of two later steps of one chunk (E_cond
 * cached), one with an engine switch on (its default) and one with it off, in ABBA order; the report's `ab` gives
 * each round's off / on time, their median and quartiles. The switches change no value, only the work done:
 *   context: the cross-attention context per sample (APM mix and K / V projections once per sample, K / V repeated
 *            per frame) against the context repeated for every frame first, as the reference holds it;
 *   stem:    conv_in + transformer_in once for the CFG pair's shared latents against once per sample.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openBench, parseThreads, round, saveReport } from './common.js';
import { callNative } from '../errors.js';
import { packageRoot, type NativeProfileRow } from '../native/binding.js';
import { profileTable as opProfileTable } from '../profile.js';

export interface StepBenchResult {
  dtype: string;
  config: string;
  params: number;
  weightBytes: number;
  buildSeconds: number;
  /** Median of the timed steps (each a chunk's first step: E_cond computed, as the PyTorch peer does every step). */
  seconds: number;
  secondsMin: number;
  stepSeconds: number[];
  /** Median of the steps run right after each timed one with E_cond from the cache (a chunk's later steps). */
  secondsCachedECond?: number;
  cachedStepSeconds?: number[];
  warmupSeconds: number[];
  flops: number;
  gflops: number;
  peakRssBytes: number;
  /** With --profile: the op rows of one profiled first step, its seconds, and the FMA peak probed after it. */
  profile?: ProfileRow[];
  profileStepSeconds?: number;
  /** With --profile: the same for a later step of that chunk (E_cond from the cache). */
  profileLater?: ProfileRow[];
  profileLaterStepSeconds?: number;
  peakGflops?: number;
  /** With --ab: the A/B steps' seconds, the switch on and off, in round order. */
  ab?: AbSeconds;
}

/** One row of the CPU op profile (native/core/profile.h): an op kind's total over the profiled step. */
export type ProfileRow = NativeProfileRow;

interface StepOptions {
  dtype: string;
  seed: number;
  preset: string;
  frames: number;
  condFrames: number;
  latent: number;
  warmup: number;
  reps: number;
  profile: boolean;
  abSwitch: string;
  abRounds: number;
}

/** The engine switches `--ab` can flip (benchStep's abSwitch). */
export const AB_SWITCHES = ['context', 'stem'] as const;
export interface AbSeconds {
  switch: string;
  onSeconds: number[];
  offSeconds: number[];
}

interface StepNative {
  benchStep(o: StepOptions): Promise<Omit<StepBenchResult, 'dtype'>>;
}

/**
 * CPU seconds (user + system) of this process's finished, waited-for children (Linux /proc/self/stat cutime + cstime,
 * in USER_HZ = 100 ticks); undefined elsewhere. The difference around one execFileSync is that child's CPU time.
 */
export function childrenCpuSeconds(statText?: string): number | undefined {
  let text = statText;
  if (text === undefined) {
    try {
      text = fs.readFileSync('/proc/self/stat', 'utf8');
    } catch {
      return undefined;
    }
  }
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');  // fields 3.. (the name may hold spaces or parens)
  const cutime = Number(rest[13]), cstime = Number(rest[14]);
  return Number.isFinite(cutime) && Number.isFinite(cstime) ? (cutime + cstime) / 100 : undefined;
}

/** One JSON line of scripts/torch_anchor.py with a measurement. */
export interface AnchorRow {
  case: string;
  mode: string;
  params: number;
  ms_median: number;
  ms_min: number;
}

function abSwitch(s: string | undefined): string {
  if (s === undefined) return '';
  if (!(AB_SWITCHES as readonly string[]).includes(s)) throw new RangeError(`--ab: unknown switch '${s}' (${AB_SWITCHES.join(', ')})`);
  return s;
}

export function parseStepArgs(argv: string[]) {
  const known = new Set(['--dtypes', '--seed', '--preset', '--frames', '--cond-frames', '--latent', '--threads', '--reps',
    '--warmup', '--anchor-python', '--ab', '--ab-rounds']);
  const flags = new Set(['--json', '--save', '--anchor', '--profile']);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (known.has(a)) i++;
    else if (!flags.has(a)) throw new RangeError(`step bench: unknown option '${a}'`);
  }
  const arg = (name: string): string | undefined => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const int = (name: string, def: number, lo: number, hi: number): number => {
    const s = arg(name);
    const v = s === undefined ? def : Number(s);
    if (!Number.isInteger(v) || v < lo || v > hi) throw new RangeError(`${name} must be an integer in [${lo}, ${hi}]`);
    return v;
  };
  const dtypes = (arg('--dtypes') ?? 'f32,f16').split(',').filter((s) => s.length > 0);
  for (const d of dtypes) if (!['f32', 'f16', 'bf16'].includes(d)) throw new RangeError(`--dtypes: unknown dtype '${d}' (f32, f16, bf16)`);
  const preset = arg('--preset') ?? 'mid';
  if (preset !== 'mid' && preset !== 'tiny') throw new RangeError("--preset must be 'mid' or 'tiny'");
  const frames = int('--frames', 16, 1, 64);
  const threadsArg = arg('--threads');
  const threads = threadsArg === undefined ? undefined : parseThreads(threadsArg);
  const anchor = argv.includes('--anchor');
  const latent = int('--latent', 32, 1, 128);
  const condFrames = int('--cond-frames', Math.min(8, frames), 1, frames);
  if (anchor && (preset !== 'mid' || frames !== 16 || condFrames !== 8 || latent !== 32))
    throw new RangeError('--anchor: the PyTorch peer runs the mid preset at 16 frames, 8 conditioning frames, 32x32 latents only');
  return {
    dtypes,
    preset,
    seed: int('--seed', 1, 0, 2 ** 31),
    frames,
    condFrames,
    latent,
    threads,
    reps: int('--reps', 3, 1, 100),
    warmup: int('--warmup', 1, 0, 100),
    anchor,
    profile: argv.includes('--profile'),
    abSwitch: abSwitch(arg('--ab')),
    abRounds: int('--ab-rounds', 8, 1, 100),
    anchorPython: arg('--anchor-python') ?? process.env.ST2V_ANCHOR_PYTHON ?? 'python3',
    json: argv.includes('--json'),
    save: argv.includes('--save'),
  };
}

async function runOne(o: StepOptions, threads: number | undefined): Promise<StepBenchResult> {
  const { core } = openBench({ json: true, threads });
  const native = core as unknown as StepNative;
  const r = await callNative(() => native.benchStep(o));
  if (!o.profile) return { dtype: o.dtype, ...r };
  // the FMA peak of this CPU's widest level, probed in this process right after the profiled step
  let peak = 0;
  for (const name of core.benchList('peak')) {
    const p = await callNative(() => core.benchRun(name));
    if (typeof p.gflops === 'number' && p.gflops > peak) peak = p.gflops;
  }
  return { dtype: o.dtype, ...r, ...(peak > 0 ? { peakGflops: peak } : {}) };
}

/** The measurement lines of torch_anchor.py's stdout (one JSON object per line; other lines are ignored). */
export function parseAnchorOutput(stdout: string): { env?: Record<string, unknown>; rows: AnchorRow[] } {
  const rows: AnchorRow[] = [];
  let env: Record<string, unknown> | undefined;
  for (const line of stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue;
    }
    if (o.event === 'env') env = o;
    else if (typeof o.case === 'string' && typeof o.ms_median === 'number') rows.push(o as unknown as AnchorRow);
  }
  return { env, rows };
}

export async function run(argv: string[]): Promise<void> {
  const a = parseStepArgs(argv);
  const self = fileURLToPath(import.meta.url);
  const rows: StepBenchResult[] = [];
  const { info, log } = openBench(a);
  const loadBefore = os.loadavg();
  for (const dtype of a.dtypes) {
    const childArgs = [self, '--child', dtype, '--seed', String(a.seed), '--preset', a.preset, '--frames', String(a.frames),
      '--cond-frames', String(a.condFrames), '--latent', String(a.latent), '--reps', String(a.reps), '--warmup', String(a.warmup),
      ...(a.threads !== undefined ? ['--threads', String(a.threads)] : []), ...(a.profile ? ['--profile'] : []),
      ...(a.abSwitch ? ['--ab', a.abSwitch, '--ab-rounds', String(a.abRounds)] : [])];
    const execArgv = self.endsWith('.ts') ? ['--import', 'tsx'] : [];
    const out = execFileSync(process.execPath, [...execArgv, ...childArgs], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    rows.push(JSON.parse(out.trim().split('\n').pop() ?? '{}') as StepBenchResult);
  }
  let anchor: { env?: Record<string, unknown>; rows: AnchorRow[]; python: string; error?: string; threads?: number;
    wall_s?: number; cpu_per_wall?: number } | undefined;
  if (a.anchor) {
    const script = path.join(packageRoot, 'scripts', 'torch_anchor.py');
    const args = [script, '--width', 'mid', '--device', 'cpu', '--threads', String(info.threads), '--modes', 'fp32',
      '--reps', String(a.reps)];
    log(`running the PyTorch peer: ${a.anchorPython} ${args.join(' ')}`);
    const cpu0 = childrenCpuSeconds();
    const t0 = performance.now();
    try {
      const out = execFileSync(a.anchorPython, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
      // the peer's CPU seconds over its wall seconds: ~threads when torch used every thread it was given
      const wall = (performance.now() - t0) / 1e3;
      const cpu1 = childrenCpuSeconds();
      anchor = { ...parseAnchorOutput(out), python: a.anchorPython, threads: info.threads, wall_s: round(wall, 1),
        ...(cpu0 !== undefined && cpu1 !== undefined ? { cpu_per_wall: round((cpu1 - cpu0) / wall, 2) } : {}) };
    } catch (err) {
      anchor = { rows: [], python: a.anchorPython, error: (err as Error).message.split('\n')[0] };
    }
  }
  const torchMs = anchor?.rows.find((r) => r.mode === 'fp32')?.ms_median;
  const report = {
    suite: 'step',
    cpu: info.cpu,
    isa: info.isa,
    threads: info.threads,
    date: new Date().toISOString(),
    load_avg_before: loadBefore.map((x) => round(x, 2)),
    load_avg_after: os.loadavg().map((x) => round(x, 2)),
    options: { preset: a.preset, frames: a.frames, condFrames: a.condFrames, latent: a.latent, seed: a.seed, warmup: a.warmup, reps: a.reps },
    results: rows.map((r) => ({
      ...r,
      ...(torchMs !== undefined ? { torch_fp32_over_ours: round(torchMs / 1e3 / r.seconds, 3) } : {}),
      ...(r.ab ? { ab_summary: abSummary(r.ab) } : {}),
    })),
    ...(anchor ? { torch_anchor: anchor } : {}),
  };
  if (a.save) log(`saved ${saveReport('step', `${info.cpu}-${info.isa}`, report.date, report)}`);
  if (a.json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return;
  }
  const first = rows[0];
  if (first) {
    log(
      `step: CAM (${a.condFrames} frames) + UNet3D (${a.frames} frames), CFG batch 2, ${a.latent}x${a.latent} latents, ` +
        `${(first.params / 1e6).toFixed(1)}M params, ${(first.flops / 1e9).toFixed(1)} GFLOP per step; ` +
        `${info.cpu} ${info.isa}, ${info.threads} threads; median of ${a.reps} after ${a.warmup} warm-up\n  ${first.config}`,
    );
  }
  for (const r of report.results) {
    const cold = r.warmupSeconds[0] ?? r.stepSeconds[0] ?? NaN;
    log(
      `  ${r.dtype.padEnd(5)} ${r.seconds.toFixed(2).padStart(8)} s/step (min ${r.secondsMin.toFixed(2)}, first ${cold.toFixed(2)})  ` +
        `${r.gflops.toFixed(1).padStart(7)} GFLOP/s  peak RSS ${(r.peakRssBytes / 2 ** 30).toFixed(2)} GiB  ` +
        `(weights ${(r.weightBytes / 2 ** 30).toFixed(2)} GiB, built in ${r.buildSeconds.toFixed(1)} s)` +
        (r.secondsCachedECond !== undefined ? `; later steps of a chunk (E_cond reused) ${r.secondsCachedECond.toFixed(2)} s` : '') +
        ('torch_fp32_over_ours' in r ? `  PyTorch fp32 / ours ${r.torch_fp32_over_ours}` : ''),
    );
  }
  for (const r of report.results) {
    const ab = r.ab_summary;
    if (ab)
      log(`  ${r.dtype}: switch '${ab.switch}' off / on (later steps, ${ab.rounds} ABBA rounds): ${ab.ratio_median} ` +
        `(q1 ${ab.ratio_q1}, q3 ${ab.ratio_q3}; medians ${ab.off_median_s} vs ${ab.on_median_s} s)`);
  }
  for (const r of report.results) if (r.profile && r.profileStepSeconds !== undefined) printProfile(r, log);
  if (anchor) {
    if (anchor.error) log(`  PyTorch peer failed (${anchor.python}): ${anchor.error}`);
    for (const r of anchor.rows)
      log(`  PyTorch ${String(anchor.env?.torch ?? '?')} ${r.mode}: ${(r.ms_median / 1e3).toFixed(2)} s/step (min ` +
        `${(r.ms_min / 1e3).toFixed(2)}), ${(r.params / 1e6).toFixed(1)}M params, ${anchor.threads} threads` +
        (anchor.cpu_per_wall !== undefined ? ` (whole run: cpu/wall ${anchor.cpu_per_wall})` : ''));
  }
}

/** Quantile q of v (nearest rank on the sorted copy). */
function quantile(v: number[], q: number): number {
  const s = [...v].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.max(0, Math.round(q * (s.length - 1))))] ?? NaN;
}

/** --ab's summary: each round's off / on seconds (the two steps of a round are neighbours). */
export function abSummary(ab: AbSeconds) {
  const n = Math.min(ab.onSeconds.length, ab.offSeconds.length);
  const ratios: number[] = [];
  for (let i = 0; i < n; i++) ratios.push((ab.offSeconds[i] as number) / (ab.onSeconds[i] as number));
  return {
    switch: ab.switch,
    rounds: n,
    ratio_median: round(quantile(ratios, 0.5), 3),
    ratio_q1: round(quantile(ratios, 0.25), 3),
    ratio_q3: round(quantile(ratios, 0.75), 3),
    on_median_s: round(quantile(ab.onSeconds, 0.5), 3),
    off_median_s: round(quantile(ab.offSeconds, 0.5), 3),
    ratios: ratios.map((x) => round(x, 3)),
  };
}

/** The profile as table rows: op kinds by time, then the time outside ops; shares of the profiled step. */
export function profileTable(r: Pick<StepBenchResult, 'profile' | 'profileStepSeconds' | 'peakGflops'>) {
  return opProfileTable(r.profile ?? [], r.profileStepSeconds ?? 0, r.peakGflops);
}

function printProfile(r: StepBenchResult, log: (s: string) => void): void {
  log(`profile (${r.dtype}): one first step, ${(r.profileStepSeconds ?? 0).toFixed(2)} s` +
    (r.peakGflops ? `; FMA peak ${r.peakGflops.toFixed(1)} GFLOP/s probed after it` : ''));
  console.table(profileTable(r));
  if (r.profileLater && r.profileLaterStepSeconds !== undefined) {
    log(`profile (${r.dtype}): a later step of the chunk (E_cond reused), ${r.profileLaterStepSeconds.toFixed(2)} s`);
    console.table(profileTable({ profile: r.profileLater, profileStepSeconds: r.profileLaterStepSeconds, peakGflops: r.peakGflops }));
  }
}

// Child mode: one dtype, one JSON line on stdout.
if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === '--child') {
  const argv = process.argv.slice(2);
  const dtype = argv[1] ?? 'f32';
  const a = parseStepArgs(argv.slice(2));
  runOne({ dtype, seed: a.seed, preset: a.preset, frames: a.frames, condFrames: a.condFrames, latent: a.latent, warmup: a.warmup,
    reps: a.reps, profile: a.profile, abSwitch: a.abSwitch, abRounds: a.abRounds }, a.threads)
    .then((r) => process.stdout.write(JSON.stringify(r) + '\n'))
    .catch((err: unknown) => {
      console.error(`bench step (${dtype}): ${(err as Error).message}`);
      process.exitCode = 1;
    });
}
