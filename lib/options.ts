/**
 * Public option types of the Engine and their validation. Every check throws a TypeError (wrong type) or a
 * RangeError (right type, out of range) whose message names the option, sharp-style:
 * "Expected <what> for <name> but received <value>".
 */
import os from 'node:os';
import path from 'node:path';
import type { NativeEnhanceProgress } from './native/binding.js';
import type { GenerateProgress } from './progress.js';

/** Options of {@link Engine.load}. */
export interface LoadOptions {
  /** Compute threads of this engine; 0 uses every hardware thread. Defaults to `0`. */
  threads?: number;
  /** Dtype the weights are computed in; 'auto' keeps the stored dtype. Defaults to `'auto'`. */
  dtype?: 'auto' | 'f32' | 'f16' | 'bf16';
  /**
   * Folder caching the built-in default model's seeded weights (only used without a model folder).
   * Defaults to `$XDG_CACHE_HOME/streamingt2v` (or `~/.cache/streamingt2v`).
   */
  cacheDir?: string;
  /**
   * Compute backend: 'cpu', 'cuda' (an NVIDIA GPU through the CUDA backend library: the stage-1 and stage-2
   * denoisers (UNet3D, CAM), generate({enhance})'s enhancer denoiser and the VAE run there with fp32 weights, text / image encoders and samplers on the CPU; fails with
   * St2vError ERR_NO_CUDA naming what is missing when there is no usable GPU, driver, cuBLASLt or CUDA build), or
   * 'auto' (currently always the CPU: the CUDA path is checked against the CPU under a CPU emulation of CUDA but
   * has not yet run on a GPU, see docs/cuda.md). Defaults to `'auto'`.
   */
  backend?: 'auto' | 'cpu' | 'cuda';
}

/** Options of {@link Engine.generate}. */
export interface GenerateOptions {
  /** The text describing the video (at most 77 CLIP tokens are used). Required. */
  prompt: string;
  /** What the video should not show (the unconditional branch of classifier-free guidance). Defaults to `''`. */
  negativePrompt?: string;
  /** Number of frames to produce, 1 to 100000. Defaults to `the model's first chunk length (16 for StreamingT2V)`. */
  frames?: number;
  /** Seed of the PyTorch-compatible random generator, an integer 0 to 2^53-1. Defaults to `33`. */
  seed?: number;
  /** Denoising steps per chunk, 1 to 1000. Defaults to `the model's default (50 for StreamingT2V)`. */
  steps?: number;
  /** Classifier-free guidance scale, 0 to 100 (1 disables the unconditional branch's effect). Defaults to `7.5`. */
  guidanceScale?: number;
  /** Aborting it rejects the iteration with St2vError ERR_CANCELLED within one denoising step. Defaults to `undefined`. */
  signal?: AbortSignal;
  /** Called after each denoising step (on the JS thread). Defaults to `undefined`. */
  onProgress?: (progress: GenerateProgress) => void;
  /**
   * Stage 3: run the enhancer (lib/enhance.ts) on the generated video, `true` or its options; frames then come
   * out at the enhancer's size (1280x720) once stage 2 is done, trimmed to whole chunks (chunk 24 / overlap 8).
   * Needs a model folder with the enhancer; the built-in default model uses the built-in UNTRAINED enhancer.
   * Defaults to `undefined` (no enhancement).
   */
  enhance?: boolean | GenerateEnhanceOptions;
}

/** Options of the enhancer (stage 3), for {@link GenerateOptions.enhance} and `enhance()` (lib/enhance.ts). */
export interface GenerateEnhanceOptions {
  /** Defaults to `''` (StreamingT2V's --negative_prompt_enhancer default). */
  negativePrompt?: string;
  /** Solver steps. Defaults to `30`. */
  steps?: number;
  /** Seed of the noise generator and of the blending split indices. Defaults to `0`. */
  seed?: number;
  /** Chunks per window, 0 = whole video. Defaults to `0`. */
  window?: number;
  /** Blending chunk in frames. Defaults to `24`. */
  chunk?: number;
  /** Blending overlap in frames. Defaults to `8`. */
  overlap?: number;
  /** Output width. Defaults to `1280`. */
  width?: number;
  /** Output height. Defaults to `720`. */
  height?: number;
  /** Defaults to `7.5`. */
  guidanceScale?: number;
  /** Stage-3 progress: per encoded / decoded batch and per denoised chunk of each solver step. Defaults to `undefined`. */
  onProgress?: (p: NativeEnhanceProgress) => void;
}

/** Fully validated generate options (defaults applied where the model does not decide them). */
export interface ResolvedGenerateOptions {
  prompt: string;
  negativePrompt: string;
  frames: number | undefined;
  seed: number;
  steps: number | undefined;
  guidanceScale: number;
  signal: AbortSignal | undefined;
  onProgress: ((progress: GenerateProgress) => void) | undefined;
}

export const MAX_FRAMES = 100_000;
export const MAX_STEPS = 1000;
export const DEFAULT_SEED = 33;
export const DEFAULT_GUIDANCE = 7.5;

/** Renders a received value for an error message (short, never throws). */
export function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'function') return 'a function';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  return String(value);
}

export function invalidType(what: string, name: string, value: unknown): TypeError {
  return new TypeError(`Expected ${what} for ${name} but received ${describe(value)}`);
}

export function invalidRange(what: string, name: string, value: unknown): RangeError {
  return new RangeError(`Expected ${what} for ${name} but received ${describe(value)}`);
}

/** An integer in [min, max]. */
export function checkInteger(value: unknown, name: string, min: number, max: number): number {
  const what = `an integer between ${min} and ${max}`;
  if (typeof value !== 'number' || Number.isNaN(value)) throw invalidType(what, name, value);
  if (!Number.isInteger(value) || value < min || value > max) throw invalidRange(what, name, value);
  return value;
}

/** A finite number in [min, max]. */
export function checkNumber(value: unknown, name: string, min: number, max: number): number {
  const what = `a number between ${min} and ${max}`;
  if (typeof value !== 'number' || Number.isNaN(value)) throw invalidType(what, name, value);
  if (!Number.isFinite(value) || value < min || value > max) throw invalidRange(what, name, value);
  return value;
}

export function checkString(value: unknown, name: string, { nonEmpty = false } = {}): string {
  const what = nonEmpty ? 'a non-empty string' : 'a string';
  if (typeof value !== 'string') throw invalidType(what, name, value);
  if (nonEmpty && value.trim().length === 0) throw invalidRange(what, name, value);
  if (value.includes('\0')) throw invalidRange(`${what} without NUL characters`, name, value);
  return value;
}

function checkObject(value: unknown, name: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalidType('an object', name, value);
  return value as Record<string, unknown>;
}

function checkKnownKeys(obj: Record<string, unknown>, known: readonly string[], name: string): void {
  for (const k of Object.keys(obj)) {
    if (!known.includes(k)) throw invalidRange(`one of ${known.join(', ')}`, `a key of ${name}`, k);
  }
}

const LOAD_KEYS = ['threads', 'dtype', 'cacheDir', 'backend'] as const;
export const BACKENDS = ['auto', 'cpu', 'cuda'] as const;
const DTYPES = ['auto', 'f32', 'f16', 'bf16'] as const;

export interface ResolvedLoadOptions {
  threads: number;
  dtype: (typeof DTYPES)[number];
  cacheDir: string;
  backend: (typeof BACKENDS)[number];
}

/** `$XDG_CACHE_HOME/streamingt2v`, else `~/.cache/streamingt2v`. */
export function defaultCacheDir(): string {
  const xdg = process.env.XDG_CACHE_HOME;
  return xdg && path.isAbsolute(xdg) ? path.join(xdg, 'streamingt2v') : path.join(os.homedir(), '.cache', 'streamingt2v');
}

export function resolveLoadOptions(options: unknown): ResolvedLoadOptions {
  if (options === undefined) return { threads: 0, dtype: 'auto', cacheDir: defaultCacheDir(), backend: 'auto' };
  const o = checkObject(options, 'options');
  checkKnownKeys(o, LOAD_KEYS, 'options');
  const threads = o.threads === undefined ? 0 : checkInteger(o.threads, 'threads', 0, 1024);
  let dtype: ResolvedLoadOptions['dtype'] = 'auto';
  if (o.dtype !== undefined) {
    if (typeof o.dtype !== 'string') throw invalidType(`one of ${DTYPES.join(', ')}`, 'dtype', o.dtype);
    if (!(DTYPES as readonly string[]).includes(o.dtype)) throw invalidRange(`one of ${DTYPES.join(', ')}`, 'dtype', o.dtype);
    dtype = o.dtype as ResolvedLoadOptions['dtype'];
  }
  const cacheDir = o.cacheDir === undefined ? defaultCacheDir() : path.resolve(checkString(o.cacheDir, 'cacheDir', { nonEmpty: true }));
  let backend: ResolvedLoadOptions['backend'] = 'auto';
  if (o.backend !== undefined) {
    if (typeof o.backend !== 'string') throw invalidType(`one of ${BACKENDS.join(', ')}`, 'backend', o.backend);
    if (!(BACKENDS as readonly string[]).includes(o.backend)) throw invalidRange(`one of ${BACKENDS.join(', ')}`, 'backend', o.backend);
    backend = o.backend as ResolvedLoadOptions['backend'];
  }
  return { threads, dtype, cacheDir, backend };
}

export function checkModelDir(modelDir: unknown): string | null {
  if (modelDir === undefined || modelDir === null) return null;
  return checkString(modelDir, 'modelDir', { nonEmpty: true });
}

const GENERATE_KEYS = ['prompt', 'negativePrompt', 'frames', 'seed', 'steps', 'guidanceScale', 'signal', 'onProgress', 'enhance'] as const;
export const GENERATE_ENHANCE_KEYS = ['negativePrompt', 'steps', 'seed', 'window', 'chunk', 'overlap', 'width', 'height', 'guidanceScale', 'onProgress'] as const;

/** An integer option of the enhancer: TypeError "enhance: <name> must be an integer", RangeError "... must be in [lo, hi]". */
export function enhanceInteger(name: string, v: unknown, lo: number, hi: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new TypeError(`enhance: ${name} must be an integer`);
  if (v < lo || v > hi) throw new RangeError(`enhance: ${name} must be in [${lo}, ${hi}], got ${v}`);
  return v;
}

/** The enhancer's settings with their defaults, validated (enhance() runs on them; generate({enhance}) checks them first). */
export function resolveEnhanceSettings(o: GenerateEnhanceOptions) {
  const negativePrompt = o.negativePrompt ?? '';
  if (typeof negativePrompt !== 'string') throw new TypeError('enhance: negativePrompt must be a string');
  const steps = enhanceInteger('steps', o.steps ?? 30, 1, 1000);
  const seed = enhanceInteger('seed', o.seed ?? 0, 0, Number.MAX_SAFE_INTEGER);
  const window = enhanceInteger('window', o.window ?? 0, 0, 1 << 20);
  const chunk = enhanceInteger('chunk', o.chunk ?? 24, 2, 1024);
  const overlap = enhanceInteger('overlap', o.overlap ?? 8, 1, chunk - 1);
  const width = enhanceInteger('width', o.width ?? 1280, 8, 8192);
  const height = enhanceInteger('height', o.height ?? 720, 8, 8192);
  const guidanceScale = o.guidanceScale ?? 7.5;
  if (typeof guidanceScale !== 'number' || !Number.isFinite(guidanceScale)) throw new TypeError('enhance: guidanceScale must be a finite number');
  return { negativePrompt, steps, seed, window, chunk, overlap, width, height, guidanceScale };
}

/**
 * Validates GenerateOptions.enhance: undefined/false -> undefined, true -> {}, an object -> itself (known keys only,
 * its settings checked as enhance() checks them, so a bad one fails when generate is called, not after stage 2).
 */
export function resolveEnhanceOption(value: unknown): GenerateEnhanceOptions | undefined {
  if (value === undefined || value === false) return undefined;
  if (value === true) return {};
  const o = checkObject(value, 'enhance');
  checkKnownKeys(o, GENERATE_ENHANCE_KEYS, 'enhance');
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') throw invalidType('a function', 'enhance.onProgress', o.onProgress);
  resolveEnhanceSettings(o as GenerateEnhanceOptions);
  return o as GenerateEnhanceOptions;
}

export function resolveGenerateOptions(options: unknown): ResolvedGenerateOptions {
  const o = checkObject(options, 'options');
  checkKnownKeys(o, GENERATE_KEYS, 'options');
  const prompt = checkString(o.prompt, 'prompt', { nonEmpty: true });
  const negativePrompt = o.negativePrompt === undefined ? '' : checkString(o.negativePrompt, 'negativePrompt');
  const frames = o.frames === undefined ? undefined : checkInteger(o.frames, 'frames', 1, MAX_FRAMES);
  const seed = o.seed === undefined ? DEFAULT_SEED : checkInteger(o.seed, 'seed', 0, Number.MAX_SAFE_INTEGER);
  const steps = o.steps === undefined ? undefined : checkInteger(o.steps, 'steps', 1, MAX_STEPS);
  const guidanceScale = o.guidanceScale === undefined ? DEFAULT_GUIDANCE : checkNumber(o.guidanceScale, 'guidanceScale', 0, 100);
  let signal: AbortSignal | undefined;
  if (o.signal !== undefined) {
    if (!(o.signal instanceof AbortSignal)) throw invalidType('an AbortSignal', 'signal', o.signal);
    signal = o.signal;
  }
  let onProgress: ResolvedGenerateOptions['onProgress'];
  if (o.onProgress !== undefined) {
    if (typeof o.onProgress !== 'function') throw invalidType('a function', 'onProgress', o.onProgress);
    onProgress = o.onProgress as ResolvedGenerateOptions['onProgress'];
  }
  return { prompt, negativePrompt, frames, seed, steps, guidanceScale, signal, onProgress };
}
