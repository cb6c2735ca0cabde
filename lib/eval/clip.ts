/**
 * CLIP score: mean over frames of 100 x cos(text features, image features), computed by the native engine
 * (native/models/clip/clip_score.h, native/napi/clip_score_binding.cpp).
 *
 * What the paper does not pin (docs/metrics.md §4: "The CLIP model, preprocessing and frame subsampling are NOT
 * specified anywhere (paper or repo)") and what we chose:
 * - model: OpenCLIP towers from a model folder written by `st2v convert` from open_clip weights — intended is
 *   ViT-H-14 laion2b_s32b_b79k, the CLIP that StreamingT2V itself uses for its APM. The folder needs
 *   image_encoder.safetensors, text_encoder.safetensors and text_last_block.safetensors (the StreamingT2V
 *   checkpoint has no last text block: it only uses the penultimate layer);
 * - text: open_clip 2.24.0 encode_text: all text blocks, ln_final, features at the end-of-text token
 *   (argmax of the ids), @ text_projection; the prompt tokenized by open_clip's SimpleTokenizer (lib/tokenizer);
 * - image: open_clip 2.24.0's inference transform: Resize(224, bicubic) of the shortest side as Pillow does it,
 *   CenterCrop(224), /255, CLIP mean/std; then ln_post(class token) @ proj. (The APM path of the generator
 *   uses kornia's resize of a [-1, 1] tensor instead: a different preprocessing, not used here.);
 * - every decoded frame (no subsampling), rgb24 from ffmpeg;
 * - the RAW mean: negative cosines are kept (standard CLIPScore uses 2.5 * max(cos, 0); the paper states no
 *   clamp). `clamped: false` in the result says so.
 */
import fs from 'node:fs';
import path from 'node:path';
import { St2vError, callNative, callNativeSync } from '../errors.js';
import { loadNative } from '../native/binding.js';
import { ClipTokenizer } from '../tokenizer/clip.js';

export interface ClipScoreResult {
  /** Mean over frames of 100 x cos (raw, not clamped). */
  score: number;
  frames: number;
  /** The model folder / file used. */
  model: string;
  prompt: string;
  /** The prompt's token ids (with start/end tokens, without padding). */
  tokens: number[];
  /** Always false: negative cosines are not clamped to 0. */
  clamped: false;
  /** 100 x cos of each frame (with perFrame). */
  perFrame?: number[];
}

interface ClipNative {
  clipModelInfo(model: string): Promise<{ imageSize: number; embedDim: number; contextLength: number }>;
  clipEncodeText(model: string, ids: Int32Array, rows: number): Promise<Float32Array>;
  clipEncodeFrames(model: string, frames: Uint8Array, n: number, width: number, height: number): Promise<Float32Array>;
  clipCosine(text: Float32Array, images: Float32Array): Float64Array;
}

const native = (): ClipNative => loadNative() as unknown as ClipNative;

/** Throws for unusable CLIP options (called by evaluateVideo's validation when metric 'clip' is asked for). */
export function validateClip(opts: { prompt?: unknown; clipModel?: unknown; clipTokenizer?: unknown }): void {
  if (opts.prompt === undefined || opts.prompt === null || (typeof opts.prompt === 'string' && opts.prompt.trim() === '')) {
    throw new St2vError('the CLIP score needs the prompt (--prompt / prompt)', 'ERR_INVALID_ARG');
  }
  if (typeof opts.prompt !== 'string') throw new TypeError('prompt must be a string');
  if (opts.clipModel === undefined) {
    throw new St2vError(
      'the CLIP score needs OpenCLIP towers (--clip-model / clipModel): a folder written by `st2v convert` from open_clip weights',
      'ERR_INVALID_ARG',
    );
  }
  if (typeof opts.clipModel !== 'string' || opts.clipModel.length === 0) throw new TypeError('clipModel must be a path');
  if (!fs.existsSync(opts.clipModel)) throw new St2vError(`CLIP model not found: ${opts.clipModel}`, 'ERR_NOT_FOUND');
  if (opts.clipTokenizer !== undefined) {
    if (typeof opts.clipTokenizer !== 'string' || opts.clipTokenizer.length === 0) throw new TypeError('clipTokenizer must be a path');
    if (!fs.existsSync(opts.clipTokenizer)) throw new St2vError(`CLIP tokenizer not found: ${opts.clipTokenizer}`, 'ERR_NOT_FOUND');
  }
}

const BPE = 'bpe_simple_vocab_16e6.txt.gz';

/**
 * The tokenizer for a CLIP model: `tokenizer` (a bpe .gz file, or a folder with it or with vocab.json + merges.txt),
 * else the model's folder and its tokenizer/ subfolder. ERR_NOT_FOUND when none is there.
 */
export function findClipTokenizer(model: string, tokenizer?: string, contextLength = 77): ClipTokenizer {
  const dirs: string[] = [];
  if (tokenizer !== undefined) {
    if (fs.statSync(tokenizer).isFile()) return ClipTokenizer.fromOpenClipBpe(tokenizer, contextLength);
    dirs.push(tokenizer);
  } else {
    const base = fs.statSync(model).isDirectory() ? model : path.dirname(model);
    dirs.push(base, path.join(base, 'tokenizer'));
  }
  for (const d of dirs) {
    if (fs.existsSync(path.join(d, BPE))) return ClipTokenizer.fromOpenClipBpe(path.join(d, BPE), contextLength);
  }
  for (const d of dirs) {
    if (fs.existsSync(path.join(d, 'vocab.json')) && fs.existsSync(path.join(d, 'merges.txt'))) {
      return ClipTokenizer.fromFolder(d, 'hf', contextLength);
    }
  }
  throw new St2vError(
    `no CLIP tokenizer found in ${dirs.join(' or ')}: put open_clip's ${BPE} there or pass --clip-tokenizer / clipTokenizer`,
    'ERR_NOT_FOUND',
  );
}

/** open_clip encode_text of a prompt (not normalised) and its ids (start + BPE + end). */
export async function clipTextFeatures(
  model: string,
  prompt: string,
  tokenizer?: string,
): Promise<{ features: Float32Array; tokens: number[] }> {
  const info = await callNative(() => native().clipModelInfo(model));
  const tok = findClipTokenizer(model, tokenizer, info.contextLength);
  const ids = tok.tokenize(prompt);
  const features = await callNative(() => native().clipEncodeText(model, ids, 1));
  const end = ids.indexOf(tok.endId);
  return { features, tokens: Array.from(ids.subarray(0, end < 0 ? ids.length : end + 1)) };
}

/** open_clip encode_text of token-id rows (each `contextLength` or fewer ids; argmax = end token). */
export async function clipEncodeText(model: string, ids: Int32Array, rows: number): Promise<Float32Array> {
  if (typeof model !== 'string' || model.length === 0) throw new TypeError('model must be a path');
  if (!(ids instanceof Int32Array)) throw new TypeError('ids must be an Int32Array');
  if (!Number.isInteger(rows) || rows < 1 || ids.length % rows !== 0) throw new RangeError('rows must divide ids.length');
  return callNative(() => native().clipEncodeText(model, ids, rows));
}

/** open_clip preprocessing + encode_image of n rgb24 frames (not normalised): Float32Array(n * embed). */
export async function clipEncodeFramesRaw(model: string, frames: Uint8Array, n: number, width: number, height: number): Promise<Float32Array> {
  return callNative(() => native().clipEncodeFrames(model, frames, n, width, height));
}

/** 100 x cos(text, each image row), raw. */
export function clipCosine(text: Float32Array, images: Float32Array): number[] {
  return Array.from(callNativeSync(() => native().clipCosine(text, images)));
}

/**
 * CLIP score of frames already in memory (rgb24, n x height x width x 3): per-frame 100 x cos and their mean.
 * Same model / tokenizer rules as evaluateVideo's 'clip' metric.
 */
export async function clipScoreFrames(
  frames: Uint8Array,
  n: number,
  width: number,
  height: number,
  opts: { prompt: string; clipModel: string; clipTokenizer?: string },
): Promise<{ score: number; perFrame: number[] }> {
  validateClip(opts);
  if (!(frames instanceof Uint8Array)) throw new TypeError('frames must be a Uint8Array');
  for (const [k, v] of [['n', n], ['width', width], ['height', height]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`${k} must be a positive integer`);
  }
  if (frames.length !== n * width * height * 3) throw new RangeError(`frames must hold n * height * width * 3 = ${n * width * height * 3} bytes`);
  const text = await clipTextFeatures(opts.clipModel, opts.prompt, opts.clipTokenizer);
  const perFrame = clipCosine(text.features, await clipEncodeFramesRaw(opts.clipModel, frames, n, width, height));
  return { score: perFrame.reduce((a, b) => a + b, 0) / perFrame.length, perFrame };
}
