/**
 * The public Engine: loads a model once, then streams generated frames chunk by chunk. All compute runs in the
 * native addon off the JS thread; this file validates, queues, converts errors and adapts callbacks to an
 * AsyncIterable.
 */
import fs from 'node:fs';
import path from 'node:path';
import { St2vError, callNativeSync, fromNative } from './errors.js';
import {
  loadNative,
  type NativeChunk,
  type NativeEngine,
  type NativeEngineOptions,
  type NativeGenerateSummary,
  type NativeModelInfo,
  type NativeProgress,
  type NativeStageTimings,
} from './native/binding.js';
import {
  type GenerateEnhanceOptions,
  type GenerateOptions,
  type LoadOptions,
  checkModelDir,
  resolveEnhanceOption,
  resolveEnhanceSettings,
  resolveGenerateOptions,
  resolveLoadOptions,
} from './options.js';
import { ProgressTracker } from './progress.js';
import { ClipTokenizer } from './tokenizer/clip.js';

/** Per-stage milliseconds of one chunk (0 for stages that did not run in it). */
export type StageTimings = NativeStageTimings;

/** A loaded model's description. */
export type ModelInfo = NativeModelInfo;

/** One chunk of generated frames, as soon as it is decoded. */
export interface FrameChunk {
  /** RGB uint8 pixels, row-major (frames, height, width, 3). Owned by the caller (transferable). */
  data: Uint8Array;
  /** Video index of the first frame of this chunk. */
  index: number;
  /** Number of frames in this chunk. */
  frames: number;
  width: number;
  height: number;
  /** Milliseconds per stage spent on this chunk. */
  timings: StageTimings;
}

/** The iterable returned by {@link Engine.generate}; `summary` is set once iteration completed. */
export interface Generation extends AsyncIterable<FrameChunk> {
  /** Totals over all chunks, available after the last chunk was consumed. */
  readonly summary: NativeGenerateSummary | undefined;
}

type Factory = (opts: NativeEngineOptions) => NativeEngine;

function nativeFactory(): Factory {
  const create = loadNative().createEngine;
  if (typeof create !== 'function') {
    throw new St2vError(
      'this build of the native addon has no generation engine (createEngine is missing); rebuild it with `npx cmake-js compile`',
      'ERR_UNSUPPORTED',
    );
  }
  return create;
}

let factoryOverride: Factory | undefined;

/**
 * Test seam: replaces the native engine factory used by {@link Engine.load} (undefined restores the addon's).
 * Not part of the public API.
 */
export function setNativeEngineFactoryForTesting(factory: Factory | undefined): void {
  factoryOverride = factory;
}

/** A FIFO mutex: one generation runs at a time per engine. */
class Queue {
  private tail: Promise<void> = Promise.resolve();
  /** Resolves (with a release function) when every earlier acquirer has released. */
  acquire(): Promise<() => void> {
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const ready = this.tail.then(() => release);
    this.tail = this.tail.then(() => mine);
    return ready;
  }
  /** Resolves when everything queued so far has finished. */
  drain(): Promise<void> {
    return this.tail;
  }
}

/**
 * The CLIP tokenizer of a converted model folder: `tokenizer/vocab.json` + `tokenizer/merges.txt` (written by
 * `st2v convert` from the text-to-video-ms-1.7b tokenizer; also looked up under `base/tokenizer/`, where a
 * converted ModelScope folder for stage 1 keeps its copy). HF CLIPTokenizer conventions (max_length padding with
 * the end token, 77 ids), as the ModelScope text encoder was used (architecture.md §6).
 */
export function loadModelTokenizer(modelDir: string): ClipTokenizer {
  const candidates = [path.join(modelDir, 'tokenizer'), path.join(modelDir, 'base', 'tokenizer')];
  for (const dir of candidates) {
    const vocab = path.join(dir, 'vocab.json');
    const merges = path.join(dir, 'merges.txt');
    const hasVocab = fs.existsSync(vocab);
    const hasMerges = fs.existsSync(merges);
    if (hasVocab && hasMerges) {
      try {
        return ClipTokenizer.fromHfFiles(vocab, merges, 77);
      } catch (err) {
        if (err instanceof St2vError) throw err;
        throw new St2vError(`tokenizer: cannot read ${vocab} / ${merges}: ${(err as Error).message}`, 'ERR_FORMAT', { cause: err });
      }
    }
    if (hasVocab !== hasMerges)
      throw new St2vError(`tokenizer: ${hasVocab ? merges : vocab} is missing (the model folder has only half of the CLIP tokenizer)`, 'ERR_NOT_FOUND');
  }
  throw new St2vError(
    `tokenizer: ${path.join(candidates[0]!, 'vocab.json')} is missing: this model's text encoder needs its CLIP tokenizer ` +
      '(vocab.json + merges.txt). Convert with `st2v convert <text-to-video-ms-1.7b folder or a folder holding vocab.json + merges.txt> -o <model>`',
    'ERR_NOT_FOUND',
  );
}

function cancelledError(signal: AbortSignal | undefined): St2vError {
  const reason = signal?.reason as unknown;
  return new St2vError('generation cancelled', 'ERR_CANCELLED', reason === undefined ? undefined : { cause: reason });
}

export class Engine implements AsyncDisposable {
  private readonly queue = new Queue();
  private disposed = false;
  private disposing: Promise<void> | undefined;

  private constructor(
    private readonly native: NativeEngine,
    /** What was loaded. */
    readonly model: ModelInfo,
    /** The model folder's CLIP tokenizer (HF conventions); undefined for untrained models (built-in byte tokenizer). */
    private readonly tokenizer: ClipTokenizer | undefined,
    /** Where the denoisers run ('cuda' only when asked for): generate({enhance}) runs the enhancer's there too. */
    private readonly backend: 'cpu' | 'cuda' = 'cpu',
  ) {}

  /**
   * Loads a model folder written by `st2v convert`, or without one the built-in default tiny model (same
   * architecture, small config, deterministic seeded weights: untrained, its videos are noise-like).
   */
  static async load(modelDir?: string | null, options?: LoadOptions): Promise<Engine> {
    const dir = checkModelDir(modelDir);
    const o = resolveLoadOptions(options);
    const stack = new Error().stack;
    if (o.backend === 'cuda') {
      // ERR_NO_CUDA (naming what is missing) on a machine without a usable GPU or without the CUDA build.
      callNativeSync(() => loadNative().resolveBackend('cuda'));
    }
    const native = (factoryOverride ?? nativeFactory())({ threads: o.threads });
    try {
      const abs = dir === null ? null : path.resolve(dir);
      // 'auto' stays on the CPU until the CUDA path has been verified on a GPU (docs/cuda.md)
      const backend = o.backend === 'cuda' ? 'cuda' : 'cpu';
      const info = await native.load(abs, { dtype: o.dtype, cacheDir: o.cacheDir, backend });
      const tokenizer = abs !== null && !info.untrained ? loadModelTokenizer(abs) : undefined;
      return new Engine(native, info, tokenizer, backend);
    } catch (err) {
      await native.dispose().catch(() => undefined);
      throw fromNative(err, stack);
    }
  }

  /**
   * Generates a video; frames arrive chunk by chunk as soon as each is decoded. Options are validated now
   * (TypeError / RangeError); the work starts when iteration starts. Generations on one engine run one at a
   * time, in the order their iteration started. Breaking out of the loop cancels the rest.
   */
  generate(options: GenerateOptions): Generation {
    const enh = resolveEnhanceOption((options as { enhance?: unknown } | null | undefined)?.enhance);
    if (enh) return this.generateEnhanced(options, enh);
    const o = resolveGenerateOptions(options);
    if (this.disposed) throw new St2vError('the engine was disposed', 'ERR_DISPOSED');
    const frames = o.frames ?? this.model.firstChunkFrames;
    const steps = o.steps ?? this.model.defaultSteps;
    const native = this.native;
    let summary: NativeGenerateSummary | undefined;
    const stack = new Error().stack;
    const self = this;

    async function* run(): AsyncGenerator<FrameChunk, void, undefined> {
      if (o.signal?.aborted) throw cancelledError(o.signal);
      if (self.disposed) throw new St2vError('the engine was disposed', 'ERR_DISPOSED');
      // Wait for our turn, giving up early on abort.
      let onAbortWait: (() => void) | undefined;
      const turn = self.queue.acquire();
      const release = await new Promise<() => void>((resolve, reject) => {
        onAbortWait = () => {
          void turn.then((r) => r());
          reject(cancelledError(o.signal));
        };
        o.signal?.addEventListener('abort', onAbortWait, { once: true });
        void turn.then(resolve);
      }).finally(() => o.signal?.removeEventListener('abort', onAbortWait!));

      const pending: FrameChunk[] = [];
      let wake: (() => void) | undefined;
      let settled = false;
      let failure: unknown;
      const notify = () => {
        const w = wake;
        wake = undefined;
        w?.();
      };
      const tracker = new ProgressTracker(frames);
      const onAbort = () => native.cancel();
      let job: Promise<void> | undefined;
      try {
        if (self.disposed) throw new St2vError('the engine was disposed', 'ERR_DISPOSED');
        if (o.signal?.aborted) throw cancelledError(o.signal);
        o.signal?.addEventListener('abort', onAbort, { once: true });
        job = native
          .generate(
            {
              prompt: o.prompt,
              negativePrompt: o.negativePrompt,
              frames,
              seed: o.seed,
              steps,
              guidanceScale: o.guidanceScale,
              ...(self.tokenizer
                ? {
                    promptIds: self.tokenizer.tokenize(o.prompt),
                    negativeIds: self.tokenizer.tokenize(o.negativePrompt),
                    emptyIds: self.tokenizer.tokenize(''),
                  }
                : {}),
            },
            (c: NativeChunk) => {
              tracker.framesDone += c.frames;
              pending.push({ data: c.data, index: c.index, frames: c.frames, width: c.width, height: c.height, timings: c.timings });
              notify();
            },
            (p: NativeProgress) => {
              // After an abort or a failed callback, events still in flight from the native thread are dropped.
              if (!o.onProgress || o.signal?.aborted || failure !== undefined) return;
              try {
                o.onProgress(tracker.update(p));
              } catch (err) {
                // A throwing callback cancels the generation and surfaces its error.
                failure ??= err;
                native.cancel();
              }
            },
          )
          .then(
            (s) => {
              summary = s;
            },
            (err: unknown) => {
              const e = o.signal?.aborted && (err as { code?: string })?.code === 'ERR_CANCELLED' ? cancelledError(o.signal) : fromNative(err, stack);
              failure ??= e;
            },
          )
          .finally(() => {
            settled = true;
            notify();
          });
        for (;;) {
          if (o.signal?.aborted) {
            // Abort wins over chunks not yet consumed: wait for the native side to stop, then reject.
            native.cancel();
            await job;
            throw cancelledError(o.signal);
          }
          const next = pending.shift();
          if (next) {
            yield next;
            continue;
          }
          if (settled) break;
          await new Promise<void>((r) => (wake = r));
        }
        if (failure !== undefined) throw failure;
      } finally {
        o.signal?.removeEventListener('abort', onAbort);
        if (!settled) {
          // The consumer stopped early (break / throw): cancel and wait until native work has stopped.
          native.cancel();
          await job;
        }
        release();
      }
    }

    const iterable: Generation = {
      [Symbol.asyncIterator]: () => run(),
      get summary() {
        return summary;
      },
    };
    return iterable;
  }

  /**
   * generate({enhance}): stage 2 as usual (collected: it is small at 256x256), then the enhancer (lib/enhance.ts) on
   * the whole video, whose frames are yielded as they become final (1280x720 by default, trimmed to whole chunks).
   * The enhancer runs from this engine's model folder; the untrained built-in model uses the untrained built-in
   * enhancer. Its denoiser runs on this engine's backend. The generation's onProgress covers stage 2, enhance.onProgress stage 3; timings of enhanced chunks are 0.
   */
  private generateEnhanced(options: GenerateOptions, e: GenerateEnhanceOptions): Generation {
    const { enhance: _enhance, ...base } = options;
    void _enhance;
    const o = resolveGenerateOptions(base);
    // Stage 3 enhances whole chunks: fewer frames than one chunk is refused now, not after the whole of stage 2.
    const { chunk } = resolveEnhanceSettings(e);
    const frames = o.frames ?? this.model.firstChunkFrames;
    if (frames < chunk) {
      throw new RangeError(`Expected at least ${chunk} frames (one enhancer chunk) for frames with enhance but received ${frames}`);
    }
    const inner = this.generate(base);
    const model = this.model;
    const backend = this.backend;
    let summary: NativeGenerateSummary | undefined;
    async function* run(): AsyncGenerator<FrameChunk, void, undefined> {
      const parts: FrameChunk[] = [];
      let n = 0;
      for await (const c of inner) {
        parts.push(c);
        n += c.frames;
      }
      summary = inner.summary;
      const first = parts[0];
      if (!first) return;
      const data = new Uint8Array(n * first.width * first.height * 3);
      let off = 0;
      for (const p of parts) {
        data.set(p.data, off);
        off += p.data.length;
      }
      const { enhance } = await import('./enhance.js');
      const ac = new AbortController();
      const onAbort = () => ac.abort(o.signal?.reason);
      o.signal?.addEventListener('abort', onAbort, { once: true });
      const zero: StageTimings = { textEncoder: 0, imageEncoder: 0, unet: 0, cam: 0, vaeDecode: 0, total: 0 };
      const pending: FrameChunk[] = [];
      let wake: (() => void) | undefined;
      let done = false;
      let failure: unknown;
      const notify = () => {
        const w = wake;
        wake = undefined;
        w?.();
      };
      const job = enhance(
        { data, frames: n, width: first.width, height: first.height },
        {
          model: model.untrained ? null : model.modelDir,
          untrained: model.untrained,
          backend,
          prompt: o.prompt,
          negativePrompt: e.negativePrompt ?? o.negativePrompt, // --negative_prompt_enhancer defaults to --negative_prompt
          seed: e.seed ?? o.seed,
          ...(e.steps !== undefined ? { steps: e.steps } : {}),
          ...(e.window !== undefined ? { window: e.window } : {}),
          ...(e.chunk !== undefined ? { chunk: e.chunk } : {}),
          ...(e.overlap !== undefined ? { overlap: e.overlap } : {}),
          ...(e.width !== undefined ? { width: e.width } : {}),
          ...(e.height !== undefined ? { height: e.height } : {}),
          ...(e.guidanceScale !== undefined ? { guidanceScale: e.guidanceScale } : {}),
          ...(e.onProgress !== undefined ? { onProgress: e.onProgress } : {}),
          signal: ac.signal,
          onFrames: (f) => {
            pending.push({ data: f.data, index: f.index, frames: f.frames, width: f.width, height: f.height, timings: zero });
            notify();
          },
        },
      ).then(
        () => undefined,
        (err: unknown) => {
          failure = o.signal?.aborted ? cancelledError(o.signal) : err;
        },
      ).finally(() => {
        done = true;
        notify();
      });
      try {
        for (;;) {
          const next = pending.shift();
          if (next) {
            yield next;
            continue;
          }
          if (done) break;
          await new Promise<void>((r) => (wake = r));
        }
        if (failure !== undefined) throw failure;
      } finally {
        o.signal?.removeEventListener('abort', onAbort);
        if (!done) {
          ac.abort();
          await job;
        }
      }
    }
    return {
      [Symbol.asyncIterator]: () => run(),
      get summary() {
        return summary;
      },
    };
  }

  /** Cancels running and queued generations, waits for them, and frees the model. Idempotent. */
  dispose(): Promise<void> {
    if (!this.disposing) {
      this.disposed = true;
      this.native.cancel();
      this.disposing = (async () => {
        await this.queue.drain();
        await this.native.dispose().catch((err: unknown) => {
          throw fromNative(err);
        });
      })();
    }
    return this.disposing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }
}
