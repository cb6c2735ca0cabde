/**
 * Stage 3: the MS-Vid2Vid-XL enhancer with randomized blending (native/models/enhancer/pipeline.h).
 *
 * ```ts
 * const r = await enhance({ data: rgb, frames: 56, width: 256, height: 256 }, { model: 'models/st2v', prompt: 'a cat' });
 * // r.data: RGB uint8 (r.frames, 720, 1280, 3)
 * ```
 *
 * Frames are fitted into width x height (default 1280 x 720) with Pillow's bicubic filter and padded black, as
 * the official pre-processing does; only whole chunks are enhanced (L' = n(C - O) + O of the input's L frames,
 * the official trimming). `window` (chunks) bounds memory for long videos: results equal the whole-video
 * algorithm when the window covers the video; shorter windows randomise the seams between windows once on the
 * final latents instead of at every solver step (see pipeline.h).
 */
import fs from 'node:fs';
import path from 'node:path';
import { callNative, callNativeSync, St2vError } from './errors.js';
import { loadModelTokenizer } from './engine.js';
import { enhanceInteger as int, resolveEnhanceSettings, type GenerateEnhanceOptions } from './options.js';
import { loadNative, type NativeEnhanceFrames, type NativeEnhanceProgress, type NativeTensor } from './native/binding.js';

/** Input video: rgb24 frames (frames, height, width, 3) or [-1, 1] floats [frames, 3, height, width]. */
export type EnhanceInput =
  | { data: Uint8Array; frames: number; width: number; height: number }
  | { data: Float32Array; shape: [number, number, number, number] };

export interface EnhanceOptions extends GenerateEnhanceOptions {
  /**
   * Model folder with the enhancer (enhancer.*), its VAE and text encoder, converted by `st2v convert`. null (with
   * `untrained: true`) selects the built-in tiny enhancer whose weights are seeded random numbers (UNTRAINED: its
   * output is noise-like, for plumbing tests); null without it rejects with ERR_WEIGHTS_MISSING.
   */
  model: string | null;
  /** Opt in to the untrained built-in enhancer (model null only). Defaults to `false`. */
  untrained?: boolean;
  /**
   * Where the enhancer's denoiser and the VAE run: 'cpu', 'cuda' (the CUDA backend, f32 weights; the text encoder,
   * solver and blending stay on the CPU; rejects with St2vError ERR_NO_CUDA, before loading the model, without a usable
   * GPU), or 'auto' (currently always the CPU: the CUDA denoiser is checked against the CPU under a CPU emulation of
   * CUDA but has not yet run on a GPU, see docs/cuda.md). Defaults to `'auto'`.
   */
  backend?: 'auto' | 'cpu' | 'cuda';
  prompt: string;
  signal?: AbortSignal;
  /** Receives frames as they become final; when given, the result holds no data (streaming). */
  onFrames?: (f: NativeEnhanceFrames) => void;
}

export interface EnhanceResult {
  frames: number;
  width: number;
  height: number;
  /** RGB uint8 (frames, height, width, 3); absent when onFrames was given. */
  data?: Uint8Array;
  /** Peak bytes of native tensors while enhancing (activations; weights excluded). */
  peakTensorBytes: number;
  /** True when the untrained built-in enhancer ran. */
  untrained: boolean;
  /** Where the denoiser ran. */
  backend: 'cpu' | 'cuda';
}

/** One stage-3 progress line: "window 1: step 2/30, chunk 3/4 (48 frames done)" or "window 1: encode (0 frames done)". */
export function enhanceProgressLine(p: NativeEnhanceProgress): string {
  return p.stage === 'denoise'
    ? `window ${p.window + 1}: step ${p.step}/${p.steps}, chunk ${p.chunk}/${p.chunks} (${p.framesDone} frames done)`
    : `window ${p.window + 1}: ${p.stage} (${p.framesDone} frames done)`;
}

/** open_clip.tokenize ids of a text: the HF tokenization with the padding after the end token set to 0. */
export function openClipIds(ids: Int32Array, endId: number): Int32Array {
  const out = Int32Array.from(ids);
  const end = out.indexOf(endId);
  if (end >= 0) out.fill(0, end + 1);
  return out;
}

function toNativeFrames(input: EnhanceInput): NativeTensor {
  if (input === null || typeof input !== 'object') throw new TypeError('enhance: input must be an object');
  if ('shape' in input) {
    if (!(input.data instanceof Float32Array)) throw new TypeError('enhance: input.data must be a Float32Array with a shape');
    const s = input.shape;
    if (!Array.isArray(s) || s.length !== 4 || s[1] !== 3) throw new RangeError('enhance: input.shape must be [frames, 3, height, width]');
    if (s.reduce((a, b) => a * b, 1) !== input.data.length) throw new RangeError('enhance: input.shape does not match input.data');
    return { data: input.data, shape: [...s], dtype: 'f32' };
  }
  if (!(input.data instanceof Uint8Array)) throw new TypeError('enhance: input.data must be a Uint8Array (rgb24) or a Float32Array');
  const f = int('input.frames', input.frames, 1, 1 << 24);
  const w = int('input.width', input.width, 1, 1 << 16);
  const h = int('input.height', input.height, 1, 1 << 16);
  if (input.data.length !== f * w * h * 3) throw new RangeError('enhance: input.data must hold frames * height * width * 3 bytes');
  return { data: input.data, shape: [f, h, w, 3], dtype: 'u8' };
}

/** Enhances a video (stage 3). Rejects with St2vError ERR_WEIGHTS_MISSING when the model folder has no enhancer. */
export async function enhance(input: EnhanceInput, opts: EnhanceOptions): Promise<EnhanceResult> {
  if (opts === null || typeof opts !== 'object') throw new TypeError('enhance: options must be an object');
  if (typeof opts.prompt !== 'string') throw new TypeError('enhance: prompt must be a string');
  if (opts.model !== null && typeof opts.model !== 'string') throw new TypeError('enhance: model must be a folder path or null');
  const { negativePrompt: negative, steps, seed, window, chunk, overlap, width, height, guidanceScale } = resolveEnhanceSettings(opts);
  if (opts.onProgress !== undefined && typeof opts.onProgress !== 'function') throw new TypeError('enhance: onProgress must be a function');
  if (opts.onFrames !== undefined && typeof opts.onFrames !== 'function') throw new TypeError('enhance: onFrames must be a function');
  const frames = toNativeFrames(input);
  const nFrames = frames.shape[0]!;
  if (nFrames < chunk) throw new RangeError(`enhance: the video has ${nFrames} frames, fewer than one chunk (${chunk})`);
  const backendOpt = opts.backend ?? 'auto';
  if (backendOpt !== 'auto' && backendOpt !== 'cpu' && backendOpt !== 'cuda') {
    throw new RangeError(`enhance: backend must be one of auto, cpu, cuda, got ${String(backendOpt)}`);
  }
  const untrained = opts.untrained ?? false;
  if (typeof untrained !== 'boolean') throw new TypeError('enhance: untrained must be a boolean');
  if (untrained && opts.model !== null && opts.model !== undefined) throw new TypeError('enhance: untrained needs model: null (the built-in enhancer)');
  if (!untrained && (opts.model === null || opts.model === undefined)) {
    throw new St2vError(
      'enhance: no enhancer: the built-in default model has none. Pass `model`, a folder converted with `st2v convert` that ' +
        "holds the MS-Vid2Vid-XL enhancer (component 'enhancer', from non_ema_0035000.pth) with its VAE and text encoder",
      'ERR_WEIGHTS_MISSING',
    );
  }
  if (opts.signal?.aborted) throw new St2vError('enhance: cancelled', 'ERR_CANCELLED');
  const native = loadNative();
  if (typeof native.enhanceVideo !== 'function') throw new St2vError('enhance: this native build has no enhancer binding', 'ERR_UNSUPPORTED');
  // 'cuda' without a usable GPU: ERR_NO_CUDA naming what is missing, before the model or its tokenizer is read
  const backend = callNativeSync(() => native.resolveBackend(backendOpt));
  let text: { promptIds: Int32Array; negativeIds: Int32Array } | { untrained: true; prompt: string; negativePrompt: string };
  if (untrained || opts.model === null || opts.model === undefined) {
    text = { untrained: true, prompt: opts.prompt, negativePrompt: negative };
  } else {
    // model.json (st2v convert) lists the components: say what is missing before asking for a tokenizer
    const mj = path.join(opts.model, 'model.json');
    if (fs.existsSync(mj)) {
      let comps: Record<string, unknown> | undefined;
      try {
        comps = (JSON.parse(fs.readFileSync(mj, 'utf8')) as { components?: Record<string, unknown> }).components;
      } catch {
        comps = undefined; // unreadable: the native loader reports the weights themselves
      }
      if (comps && !Object.hasOwn(comps, 'enhancer')) {
        throw new St2vError(
          `enhance: model folder ${opts.model} has no enhancer (component 'enhancer': MS-Vid2Vid-XL non_ema_0035000.pth; ` +
            `add it with \`st2v convert\`); it has ${Object.keys(comps).join(', ') || 'no components'}`,
          'ERR_WEIGHTS_MISSING',
        );
      }
    }
    // the enhancer's OpenCLIP text tower was run on open_clip.tokenize("<prompt>, ") (enhancer.md §4)
    const tok = loadModelTokenizer(opts.model);
    text = { promptIds: openClipIds(tok.tokenize(`${opts.prompt}, `), tok.endId), negativeIds: openClipIds(tok.tokenize(negative), tok.endId) };
  }

  const parts: NativeEnhanceFrames[] = [];
  let outW = width, outH = height;
  const job = native.enhanceVideo(
    untrained ? null : (opts.model ?? null),
    frames,
    { ...text, steps, seed, window, chunk, overlap, width, height, guidanceScale, backend },
    (f) => {
      outW = f.width;
      outH = f.height;
      if (opts.onFrames) opts.onFrames(f);
      else parts.push(f);
    },
    (p) => opts.onProgress?.(p),
  );
  const onAbort = () => job.cancel();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const s = await callNative(() => job.promise);
    const result: EnhanceResult = { frames: s.frames, width: outW, height: outH, peakTensorBytes: s.peakTensorBytes, untrained: s.untrained, backend: s.backend };
    if (!opts.onFrames) {
      const data = new Uint8Array(s.frames * outW * outH * 3);
      for (const p of parts) data.set(p.data, p.index * outW * outH * 3);
      result.data = data;
    }
    return result;
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
  }
}
