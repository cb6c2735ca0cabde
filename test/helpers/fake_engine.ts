/**
 * A fake NativeEngine implementing the binding contract of lib/native/binding.ts with timers instead of compute,
 * so that the TypeScript Engine (validation, streaming, queueing, cancellation, dispose) is tested without the
 * native pipeline. Pixels are a deterministic function of (seed, frame index, byte offset) so a test can tell
 * whether two generations got mixed up.
 */
import type {
  NativeChunk,
  NativeEngine,
  NativeGenerateOptions,
  NativeGenerateSummary,
  NativeModelInfo,
  NativeProgress,
  NativeStageTimings,
} from '../../lib/native/binding.js';

export interface FakeOptions {
  stepMs?: number;
  width?: number;
  height?: number;
  firstChunkFrames?: number;
  chunkFrames?: number;
  defaultSteps?: number;
  loadError?: { code: string; message: string };
}

export interface FakeStats {
  /** Generate calls that started. */
  started: number;
  /** Maximum number of generate() calls running at the same time. */
  maxConcurrent: number;
  /** Denoising steps executed after cancel() was requested, per generation. */
  stepsAfterCancel: number[];
  /** Prompts in the order their generation started. */
  order: string[];
  disposed: boolean;
  cancels: number;
  /** Arguments of each load() call. */
  loads: Array<[string | null, unknown]>;
}

export function pixel(seed: number, frame: number, offset: number): number {
  return (seed * 31 + frame * 7 + offset) & 255;
}

const zeroTimings = (): NativeStageTimings => ({ textEncoder: 0, imageEncoder: 0, unet: 0, cam: 0, vaeDecode: 0, total: 0 });

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function createFakeEngine(opts: FakeOptions = {}): { engine: NativeEngine; stats: FakeStats } {
  const stepMs = opts.stepMs ?? 5;
  const width = opts.width ?? 8;
  const height = opts.height ?? 6;
  const first = opts.firstChunkFrames ?? 4;
  const ext = opts.chunkFrames ?? 3;
  const stats: FakeStats = { started: 0, maxConcurrent: 0, stepsAfterCancel: [], order: [], disposed: false, cancels: 0, loads: [] };
  let running = 0;
  let cancelRequested = false;
  let loaded = false;

  const info: NativeModelInfo = {
    name: 'fake',
    untrained: true,
    modelDir: null,
    width,
    height,
    firstChunkFrames: first,
    chunkFrames: ext,
    overlapFrames: 2,
    defaultSteps: opts.defaultSteps ?? 3,
    components: ['unet', 'cam', 'vae'],
    dtype: 'f32',
  };

  const engine: NativeEngine = {
    async load(dir, o) {
      stats.loads.push([dir, o]);
      await sleep(1);
      if (opts.loadError) throw Object.assign(new Error(opts.loadError.message), { code: opts.loadError.code });
      loaded = true;
      return info;
    },
    async generate(g: NativeGenerateOptions, onChunk: (c: NativeChunk) => void, onProgress: (p: NativeProgress) => void): Promise<NativeGenerateSummary> {
      if (stats.disposed) throw Object.assign(new Error('engine disposed'), { code: 'ERR_DISPOSED' });
      if (!loaded) throw Object.assign(new Error('no model'), { code: 'ERR_INVALID_ARG' });
      if (running > 0) throw Object.assign(new Error('busy'), { code: 'ERR_BUSY' });
      running++;
      stats.started++;
      stats.order.push(g.prompt);
      stats.maxConcurrent = Math.max(stats.maxConcurrent, running);
      cancelRequested = false;
      let afterCancel = 0;
      const chunks = g.frames <= first ? 1 : 1 + Math.ceil((g.frames - first) / ext);
      try {
        let index = 0;
        for (let c = 0; c < chunks; c++) {
          for (let s = 1; s <= g.steps; s++) {
            if (cancelRequested) throw Object.assign(new Error('generation cancelled'), { code: 'ERR_CANCELLED' });
            await sleep(stepMs);
            if (cancelRequested) afterCancel++;
            onProgress({ stage: c === 0 ? 'stage1' : 'extend', chunk: c, chunks, step: s, steps: g.steps });
          }
          if (cancelRequested) throw Object.assign(new Error('generation cancelled'), { code: 'ERR_CANCELLED' });
          const frames = Math.min(c === 0 ? first : ext, g.frames - index);
          const data = new Uint8Array(frames * width * height * 3);
          const per = width * height * 3;
          for (let f = 0; f < frames; f++) for (let i = 0; i < per; i++) data[f * per + i] = pixel(g.seed, index + f, i);
          onChunk({ data, index, frames, width, height, timings: { ...zeroTimings(), unet: stepMs * g.steps, total: stepMs * g.steps } });
          index += frames;
        }
        return { frames: index, chunks, timings: zeroTimings() };
      } finally {
        stats.stepsAfterCancel.push(afterCancel);
        running--;
      }
    },
    cancel() {
      stats.cancels++;
      if (running > 0) cancelRequested = true;
    },
    async dispose() {
      stats.disposed = true;
    },
  };
  return { engine, stats };
}
