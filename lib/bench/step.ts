/**
 * `npm run bench -- step`: one StreamingT2V denoising step (CAM over the 8 conditioning frames + the base
 * UNet3D with the 13 CAM mergers and APM, CFG batch 2, 16 frames) at the mid-size config (block_out_channels
 * 128/256/512/512, head size 64, 32x32 latents, 1024-d context, 93 tokens) with random weights from a seed,
 * for f32 and f16 weights. Reports seconds per step, GFLOP/s (FLOPs counted analytically: convolutions,
 * linear layers and attention products) and the peak RSS. Each dtype runs in its own child process so the
 * peak RSS figures do not mix; the step itself runs on a native worker thread.
 * Options: --dtypes f32,f16 (default), --seed N, --frames N, --cond-frames N, --latent N, --threads N,
 * --preset mid|tiny, --json.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { callNative } from '../errors.js';
import { loadNative } from '../native/binding.js';

export interface StepBenchResult {
  dtype: string;
  config: string;
  params: number;
  weightBytes: number;
  buildSeconds: number;
  seconds: number;
  flops: number;
  gflops: number;
  peakRssBytes: number;
}

interface StepOptions {
  dtype: string;
  seed: number;
  preset: string;
  frames: number;
  condFrames: number;
  latent: number;
}

interface StepNative {
  benchStep(o: StepOptions): Promise<Omit<StepBenchResult, 'dtype'>>;
}

function parse(argv: string[]) {
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
  return {
    dtypes,
    preset,
    seed: int('--seed', 1, 0, 2 ** 31),
    frames,
    condFrames: int('--cond-frames', Math.min(8, frames), 1, frames),
    latent: int('--latent', 32, 1, 128),
    threads: arg('--threads'),
    json: argv.includes('--json'),
  };
}

async function runOne(o: StepOptions, threads: string | undefined): Promise<StepBenchResult> {
  const core = loadNative();
  if (threads !== undefined) core.setThreads(Number(threads));
  const native = core as unknown as StepNative;
  const r = await callNative(() => native.benchStep(o));
  return { dtype: o.dtype, ...r };
}

export async function run(argv: string[]): Promise<void> {
  const a = parse(argv);
  const self = fileURLToPath(import.meta.url);
  const rows: StepBenchResult[] = [];
  for (const dtype of a.dtypes) {
    const childArgs = [self, '--child', dtype, '--seed', String(a.seed), '--preset', a.preset, '--frames', String(a.frames),
      '--cond-frames', String(a.condFrames), '--latent', String(a.latent), ...(a.threads !== undefined ? ['--threads', a.threads] : [])];
    const execArgv = self.endsWith('.ts') ? ['--import', 'tsx'] : [];
    const out = execFileSync(process.execPath, [...execArgv, ...childArgs], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    rows.push(JSON.parse(out.trim().split('\n').pop() ?? '{}') as StepBenchResult);
  }
  if (a.json) {
    process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
    return;
  }
  const first = rows[0];
  if (first) {
    process.stdout.write(
      `step: CAM (${a.condFrames} frames) + UNet3D (${a.frames} frames), CFG batch 2, ${a.latent}x${a.latent} latents, ` +
        `${(first.params / 1e6).toFixed(1)}M params, ${(first.flops / 1e9).toFixed(1)} GFLOP per step\n  ${first.config}\n`,
    );
  }
  for (const r of rows) {
    process.stdout.write(
      `  ${r.dtype.padEnd(5)} ${r.seconds.toFixed(2).padStart(8)} s/step  ${r.gflops.toFixed(1).padStart(7)} GFLOP/s  ` +
        `peak RSS ${(r.peakRssBytes / 2 ** 30).toFixed(2)} GiB  (weights ${(r.weightBytes / 2 ** 30).toFixed(2)} GiB, built in ${r.buildSeconds.toFixed(1)} s)\n`,
    );
  }
}

// Child mode: one dtype, one JSON line on stdout.
if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === '--child') {
  const argv = process.argv.slice(2);
  const dtype = argv[1] ?? 'f32';
  const a = parse(argv.slice(2));
  runOne({ dtype, seed: a.seed, preset: a.preset, frames: a.frames, condFrames: a.condFrames, latent: a.latent }, a.threads)
    .then((r) => process.stdout.write(JSON.stringify(r) + '\n'))
    .catch((err: unknown) => {
      console.error(`bench step (${dtype}): ${(err as Error).message}`);
      process.exitCode = 1;
    });
}
