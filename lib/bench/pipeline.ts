/**
 * `npm run bench -- pipeline [--json] [--save] [--models default,mid] [--frames N] [--steps N] [--mid-steps N]
 * [--threads N] [--seed N] [--backend cpu|cuda]`: frames per second per stage of the whole job, for the embedded
 * default model and for a mid-size random model. `--backend cuda` loads the engines with backend 'cuda' (the
 * denoisers and the VAE decode on the GPU, the rest on the CPU: docs/cuda.md) and rejects with ERR_NO_CUDA
 * before any work when there is no usable GPU; the report names the device.
 *
 * One generation per model through the public Engine, streamed into writeVideo (MP4 via ffmpeg, each frame fitted
 * and padded to 1280x720 in the piscina pool, encoding of chunk k overlapping the generation of chunk k+1): that
 * is the end-to-end figure. The engine's per-chunk timings split it into text encoding, the stage-1 chunk, the
 * extension chunks' UNet and CAM time, the APM image encoder and VAE decoding. Afterwards, on the frames it
 * produced: post-processing alone (float -> uint8 and the 1280x720 resize/pad, in the pool) and encoding alone
 * (ffmpeg libx264 yuv420p of the already resized frames).
 *
 * Frames per second: stage 1 = its 16 frames / its time; extension UNet / CAM = the new frames of the extension
 * chunks / that time; VAE decode = decoded frames (16 per chunk) / time; text encoding happens once per video, so
 * its figure is the video's frames / the encoding time. Denoising figures scale with the step count: ms/step is
 * given too. The mid model runs with fewer steps than the default 50 (2 cores); the output says so.
 *
 * The mid model (native/bench/pipeline_bench.h): t2v::St2vConfig::mid() UNet3D + CAM + resampler, f16 weights,
 * CLIP text 1024 x 4 layers, OpenCLIP visual 512 x 4 layers, VAE 128 channels; seeded random weights, written
 * once under the OS temp folder and reused. Both models are untrained (byte-level tokenizer).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Engine, type FrameChunk } from '../engine.js';
import { round, saveReport } from './common.js';
import { St2vError, callNative } from '../errors.js';
import { loadNative, type NativeStageTimings } from '../native/binding.js';
import { writeVideo, type RgbChunk } from '../postprocess/encode.js';
import { closePool, processFrames } from '../postprocess/pool.js';

const OUT_W = 1280;
const OUT_H = 720;
const PROMPT = 'A cat wearing sunglasses and working as a lifeguard at a pool.';

interface Options {
  json: boolean;
  save: boolean;
  models: string[];
  frames: number;
  steps: number | undefined;
  midSteps: number;
  threads: number;
  seed: number;
  backend: 'cpu' | 'cuda';
}

function parseArgs(argv: string[]): Options {
  const o: Options = { json: false, save: false, models: ['default', 'mid'], frames: 24, steps: undefined, midSteps: 2, threads: 0, seed: 33, backend: 'cpu' };
  const int = (name: string, v: string | undefined, min: number, max: number): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new RangeError(`${name} must be an integer in [${min}, ${max}]`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--json') o.json = true;
    else if (a === '--save') o.save = true;
    else if (a === '--models') {
      o.models = (argv[++i] ?? '').split(',').filter((s) => s.length > 0);
      for (const m of o.models) if (m !== 'default' && m !== 'mid') throw new RangeError(`--models: unknown model '${m}' (default, mid)`);
      if (o.models.length === 0) throw new RangeError('--models needs default and/or mid');
    } else if (a === '--frames') o.frames = int('--frames', argv[++i], 17, 1000);
    else if (a === '--steps') o.steps = int('--steps', argv[++i], 1, 1000);
    else if (a === '--mid-steps') o.midSteps = int('--mid-steps', argv[++i], 1, 1000);
    else if (a === '--threads') o.threads = int('--threads', argv[++i], 1, 1024);
    else if (a === '--seed') o.seed = int('--seed', argv[++i], 0, 2 ** 31);
    else if (a === '--backend') {
      const b = argv[++i];
      if (b !== 'cpu' && b !== 'cuda') throw new RangeError(`--backend must be cpu or cuda, got '${b ?? ''}'`);
      o.backend = b;
    }
    else
      throw new RangeError(
        `pipeline bench: unknown option '${a}' (options: --json, --save, --models default,mid, --frames N, --steps N, --mid-steps N, --threads N, --seed N, --backend cpu|cuda)`,
      );
  }
  return o;
}

const fps = (frames: number, ms: number): number => (ms > 0 ? round((frames * 1000) / ms, 3) : 0);

interface StageRow {
  stage: string;
  ms: number;
  frames: number;
  fps: number;
  ms_per_step?: number;
  note?: string;
}

interface ModelReport {
  model: string;
  description: string;
  config?: string;
  params?: number;
  weight_bytes?: number;
  frames: number;
  steps: number;
  chunks: number;
  size: string;
  note: string;
  stages: StageRow[];
  end_to_end: { ms: number; fps: number; output: string };
}

/** The mid model folder (made once per seed, reused). */
async function midModelDir(log: (s: string) => void): Promise<{ dir: string; config: string; params: number; bytes: number }> {
  const native = loadNative();
  if (typeof native.writeRandomModel !== 'function') throw new Error('this addon build has no writeRandomModel; rebuild it');
  const dir = path.join(os.tmpdir(), 'st2v-bench-mid-f16-seed1');
  const stamp = path.join(dir, 'bench-info.json');
  if (fs.existsSync(stamp) && fs.existsSync(path.join(dir, 'model.safetensors'))) {
    const info = JSON.parse(fs.readFileSync(stamp, 'utf8')) as { config: string; params: number; bytes: number };
    log(`mid model: reusing ${dir}`);
    return { dir, ...info };
  }
  log(`mid model: writing random f16 weights to ${dir} ...`);
  const r = await callNative(() => native.writeRandomModel!(dir, { preset: 'mid', seed: 1, dtype: 'f16' }));
  log(`mid model: ${round(r.params / 1e6, 1)} M parameters, ${round(r.bytes / 2 ** 20, 0)} MiB, made in ${round(r.seconds, 1)} s`);
  fs.writeFileSync(stamp, JSON.stringify({ config: r.config, params: r.params, bytes: r.bytes }));
  return { dir, config: r.config, params: r.params, bytes: r.bytes };
}

async function benchModel(
  name: string,
  dir: string | null,
  steps: number | undefined,
  o: Options,
  tmp: string,
  log: (s: string) => void,
): Promise<ModelReport> {
  const engine = await Engine.load(dir, { threads: o.threads, backend: o.backend });
  try {
    const m = engine.model;
    const useSteps = steps ?? m.defaultSteps;
    log(`${name}: ${m.width}x${m.height}, ${o.frames} frames, ${useSteps} steps per chunk ...`);
    const chunks: Array<{ index: number; frames: number; width: number; height: number; copy: Uint8Array; timings: NativeStageTimings }> = [];
    const gen = engine.generate({ prompt: PROMPT, frames: o.frames, steps: useSteps, seed: o.seed });
    async function* tap(): AsyncGenerator<RgbChunk> {
      for await (const c of gen as AsyncIterable<FrameChunk>) {
        chunks.push({ index: c.index, frames: c.frames, width: c.width, height: c.height, copy: c.data.slice(), timings: c.timings });
        log(`  chunk at frame ${c.index}: ${c.frames} frames, ${round(c.timings.total / 1000, 1)} s`);
        yield c;
      }
    }
    const e2eFile = path.join(tmp, `${name}-e2e.mp4`);
    const t0 = performance.now();
    const written = await writeVideo(tap(), { output: e2eFile, resize: { width: OUT_W, height: OUT_H } });
    const e2eMs = performance.now() - t0;
    if (written.frames !== o.frames) throw new Error(`${name}: wrote ${written.frames} frames, expected ${o.frames}`);
    const summary = gen.summary!;

    // Per-stage figures from the engine's own timings.
    const F = m.firstChunkFrames;
    const first = chunks[0]!;
    const ext = chunks.slice(1);
    const extFrames = ext.reduce((a, c) => a + c.frames, 0);
    const extSteps = ext.length * useSteps;
    const sum = (f: (t: NativeStageTimings) => number) => ext.reduce((a, c) => a + f(c.timings), 0);
    const extUnet = sum((t) => t.unet);
    const extCam = sum((t) => t.cam);
    const decodeMs = summary.timings.vaeDecode;
    const decoded = chunks.length * F;
    const stages: StageRow[] = [
      { stage: 'text encoding', ms: summary.timings.textEncoder, frames: o.frames, fps: fps(o.frames, summary.timings.textEncoder), note: 'prompt + negative, once per video' },
      { stage: 'stage-1 chunk (denoiser)', ms: first.timings.unet, frames: F, fps: fps(F, first.timings.unet), ms_per_step: round(first.timings.unet / useSteps, 1) },
      { stage: 'extension chunk: UNet', ms: extUnet, frames: extFrames, fps: fps(extFrames, extUnet), ms_per_step: extSteps ? round(extUnet / extSteps, 1) : 0 },
      { stage: 'extension chunk: CAM', ms: extCam, frames: extFrames, fps: fps(extFrames, extCam), ms_per_step: extSteps ? round(extCam / extSteps, 1) : 0 },
      { stage: 'extension chunk: UNet + CAM', ms: extUnet + extCam, frames: extFrames, fps: fps(extFrames, extUnet + extCam) },
      { stage: 'APM image encoder', ms: summary.timings.imageEncoder, frames: o.frames, fps: fps(o.frames, summary.timings.imageEncoder), note: 'anchor + zero image, once per video' },
      { stage: 'VAE decode', ms: decodeMs, frames: decoded, fps: fps(decoded, decodeMs), note: `${F} frames per chunk` },
    ];

    // Post-processing alone: [-1, 1] floats -> uint8, fit + pad to 1280x720, in the piscina pool.
    const resized: RgbChunk[] = [];
    let ppMs = 0;
    for (const c of chunks) {
      const f32 = new Float32Array(c.copy.length);
      for (let i = 0; i < f32.length; i++) f32[i] = c.copy[i]! / 127.5 - 1;
      const a = performance.now();
      const data = await processFrames({ data: f32, frames: c.frames, width: c.width, height: c.height, resize: { width: OUT_W, height: OUT_H } });
      ppMs += performance.now() - a;
      resized.push({ data, index: c.index, frames: c.frames, width: OUT_W, height: OUT_H });
    }
    stages.push({ stage: `post-processing (float->uint8, fit+pad ${OUT_W}x${OUT_H})`, ms: round(ppMs, 1), frames: o.frames, fps: fps(o.frames, ppMs) });

    // Encoding alone: the resized frames through ffmpeg (libx264, yuv420p).
    const encFile = path.join(tmp, `${name}-encode.mp4`);
    async function* feed(): AsyncGenerator<RgbChunk> {
      for (const r of resized) yield r;
    }
    const b = performance.now();
    await writeVideo(feed(), { output: encFile, resize: null });
    const encMs = performance.now() - b;
    stages.push({ stage: `encoding (MP4 h264 yuv420p, ${OUT_W}x${OUT_H})`, ms: round(encMs, 1), frames: o.frames, fps: fps(o.frames, encMs) });

    for (const s of stages) s.ms = round(s.ms, 1);
    return {
      model: name,
      description: m.name + (m.untrained ? ' (untrained random weights)' : ''),
      frames: o.frames,
      steps: useSteps,
      chunks: chunks.length,
      size: `${first.width}x${first.height} -> ${OUT_W}x${OUT_H}`,
      note: '',
      stages,
      end_to_end: { ms: round(e2eMs, 1), fps: fps(o.frames, e2eMs), output: 'mp4 1280x720 (generation + post-processing + encoding, overlapped)' },
    };
  } finally {
    await engine.dispose();
  }
}

export async function run(argv: string[]): Promise<void> {
  const o = parseArgs(argv);
  const core = loadNative();
  const info = core.systemInfo();
  const log = (s: string): void => {
    if (!o.json) console.log(s);
    else process.stderr.write(`${s}\n`);
  };
  const procLoad = (): string => {
    try {
      return fs.readFileSync('/proc/loadavg', 'utf8').trim();
    } catch {
      return os.loadavg().map((x) => x.toFixed(2)).join(' ');
    }
  };
  const loadBefore = procLoad();
  log(`cpu: ${info.cpu}  isa: ${info.isa}  threads: ${o.threads || info.hardwareThreads}  /proc/loadavg: ${loadBefore}`);
  let device: string | null = null;
  if (o.backend === 'cuda') {
    // ERR_NO_CUDA (naming what is missing) before any model is made or loaded
    const st = core.cudaStatus();
    if (!st.available) throw new St2vError(`pipeline bench --backend cuda: ${st.message}`, 'ERR_NO_CUDA');
    device = st.device?.name ?? null;
    log(`backend: cuda on ${device ?? '?'} (the denoisers and the VAE decode; text / image encoders and samplers on the CPU)`);
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'st2v-bench-pipeline-'));
  const reports: ModelReport[] = [];
  try {
    for (const name of o.models) {
      if (name === 'default') {
        const r = await benchModel('default', null, o.steps, o, tmp, log);
        r.note = `the embedded default model, ${r.steps} steps per chunk${o.steps === undefined ? ' (its default)' : ''}`;
        reports.push(r);
      } else {
        const mid = await midModelDir(log);
        const r = await benchModel('mid', mid.dir, o.midSteps, o, tmp, log);
        r.config = mid.config;
        r.params = mid.params;
        r.weight_bytes = mid.bytes;
        r.note =
          `REDUCED: ${r.steps} denoising steps per chunk instead of the official 50 (2 shared cores); ` +
          'denoising ms/step is the figure to scale (x50/steps for a full run)';
        reports.push(r);
      }
    }
  } finally {
    await closePool();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  const report = {
    suite: 'pipeline',
    cpu: info.cpu,
    isa: info.isa,
    threads: o.threads || info.hardwareThreads,
    backend: o.backend,
    device,
    proc_loadavg_before: loadBefore,
    proc_loadavg_after: procLoad(),
    note: 'machine load from /proc/loadavg (1, 5, 15 min; running/total; last pid): above the core count the figures are slowed by other processes',
    date: new Date().toISOString(),
    models: reports,
  };
  if (o.json) process.stdout.write(`${JSON.stringify(report)}\n`);
  else {
    for (const r of reports) {
      console.log(`\n${r.model}: ${r.description}; ${r.frames} frames, ${r.chunks} chunks, ${r.steps} steps/chunk, ${r.size}`);
      if (r.config) console.log(`  ${r.config}`);
      console.log(`  ${r.note}`);
      console.table(
        [
          ...r.stages.map((s) => ({ stage: s.stage, ms: s.ms, frames: s.frames, 'frames/s': s.fps, 'ms/step': s.ms_per_step ?? '', note: s.note ?? '' })),
          { stage: 'END TO END', ms: r.end_to_end.ms, frames: r.frames, 'frames/s': r.end_to_end.fps, 'ms/step': '', note: r.end_to_end.output },
        ],
      );
    }
    console.log(`/proc/loadavg after: ${report.proc_loadavg_after}`);
  }
  if (o.save) {
    const [suite, machine] = o.backend === 'cuda' ? ['pipeline-cuda', device ?? 'gpu'] : ['pipeline', info.cpu];
    log(`saved ${saveReport(suite, machine, report.date, report)}`);
  }
}
