/**
 * Evaluation metrics of the StreamingT2V paper, computed by the native engine (docs/metrics.md):
 *
 * - SCuts: PySceneDetect AdaptiveDetector with default parameters, bit-exact per version (0.6.2 — the
 *   version the paper used, default — 0.6.3, current) with SceneManager's auto-downscale on or off.
 * - OFS / warp error / MAWE: as the official mawe.py (frames resized to 720x720 bilinear, forward splat
 *   with round-half-to-even, per-pair ratio warp / (c * motion), c = 9.5), or the paper-text variant
 *   (W / OFS of video means, squared magnitudes). The flow is the engine's classical dense estimator,
 *   not RAFT, so absolute values differ from RAFT-based numbers.
 * - CLIP score: mean over frames of 100 x cos(text features, image features) with OpenCLIP towers given as a model
 *   folder (`clipModel`). The paper pins neither the CLIP model, nor its preprocessing, nor the frame subsampling
 *   (docs/metrics.md §4); we use open_clip 2.24.0's inference path exactly: encode_text over the FULL text tower
 *   (all blocks, ln_final, end-token features @ text_projection) and encode_image after open_clip's own image
 *   transform (Resize shortest side to 224 bicubic as Pillow, CenterCrop 224, CLIP mean/std; not the kornia resize
 *   of the APM path), every frame, the RAW mean (negative cosines are not clamped to 0, unlike CLIPScore's
 *   max(cos, 0); the paper says nothing about it). Intended model: OpenCLIP ViT-H-14 laion2b_s32b_b79k (the
 *   model StreamingT2V uses for its APM), converted with `st2v convert` from open_clip's weights (the
 *   StreamingT2V checkpoint lacks the last text block, so it is not enough).
 *
 * Validation happens here (TypeError / RangeError naming the option); compute happens in C++ on the
 * engine's thread pool, chunk by chunk, so memory stays bounded by one chunk.
 */
import fs from 'node:fs';
import { St2vError, callNative, callNativeSync } from '../errors.js';
import { SCENECUT_VERSIONS, evalNative } from './native.js';
import type { FlowOptions, ProcessingSize, ScenecutVersion } from './native.js';
import { decodeFrames, probeVideo } from './video.js';
import { type ClipScoreResult, clipCosine, clipEncodeFramesRaw, clipTextFeatures, validateClip } from './clip.js';
import type { VideoInfo } from './video.js';

export type { FlowOptions, ProcessingSize, ScenecutVersion } from './native.js';
export type { ClipScoreResult } from './clip.js';
export { clipScoreFrames, clipEncodeText, findClipTokenizer } from './clip.js';
export { SCENECUT_VERSIONS } from './native.js';
export { probeVideo, decodeFrames, hasFfmpeg } from './video.js';

export type MetricName = 'scuts' | 'ofs' | 'mawe' | 'clip';
export const METRIC_NAMES: readonly MetricName[] = ['scuts', 'ofs', 'mawe', 'clip'];
export type MaweVariant = 'code' | 'paper';

export interface EvalProgress {
  stage: 'scuts' | 'flow' | 'clip';
  /** Frames (scuts, clip) or frame pairs (flow) done so far. */
  done: number;
  /** Total when the container states the frame count, else undefined. */
  total: number | undefined;
}

export interface EvalOptions {
  /** Default scuts, ofs, mawe. 'clip' needs `prompt` and `clipModel`. */
  metrics?: MetricName[];
  /** The video's prompt, for the CLIP score (tokenized with open_clip's tokenizer, 77 tokens). */
  prompt?: string;
  scutsVersion?: ScenecutVersion;
  /** SceneManager auto-downscale (default true, like PySceneDetect). */
  downscale?: boolean;
  maweVariant?: MaweVariant;
  /** MAWE constant of the official code (default 9.5). */
  maweC?: number;
  /** Side of the square frames the flow metrics work on (default 720, as the paper); 0 = native size. */
  flowSize?: number;
  /** Classical estimator settings (ignored with raftWeights). */
  flow?: Omit<FlowOptions, 'raft' | 'raftUpdates'>;
  /**
   * RAFT weights (safetensors with torchvision's raft_large state_dict names, e.g. converted from
   * raft_large_C_T_SKHT_V2 with `st2v convert`): the flow metrics then use RAFT, the official mawe.py choice.
   */
  raftWeights?: string;
  /** RAFT flow updates (default 12, as torchvision). */
  raftUpdates?: number;
  /**
   * OpenCLIP towers for the CLIP score: a model folder written by `st2v convert` from open_clip weights (components
   * image_encoder, text_encoder and text_last_block), or such an open_clip safetensors file.
   */
  clipModel?: string;
  /**
   * open_clip's BPE vocabulary (bpe_simple_vocab_16e6.txt.gz) or a folder holding it (or vocab.json + merges.txt).
   * Default: looked for in clipModel's folder and its tokenizer/ subfolder.
   */
  clipTokenizer?: string;
  /** Include per-frame / per-pair arrays in the result. */
  perFrame?: boolean;
  /** Frames per native call (memory bound). Default 32 for SCuts, 8 for flow. */
  chunkFrames?: number;
  onProgress?: (p: EvalProgress) => void;
  signal?: AbortSignal;
}

export interface ScutsResult {
  version: ScenecutVersion;
  downscale: boolean;
  processingSize: ProcessingSize;
  /** First frame of each new scene. */
  cuts: number[];
  /** Number of cuts (the SCuts value of one video). */
  count: number;
  /** [start, end) frame ranges, [] when there is no cut (PySceneDetect's get_scene_list). */
  scenes: Array<[number, number]>;
  perFrame?: {
    content: number[];
    deltaHue: number[];
    deltaSat: number[];
    deltaLum: number[];
    /** null where the detector produces no ratio. */
    adaptiveRatio: Array<number | null>;
  };
}

export interface FlowMetricsResult {
  /** Flow estimator used: the engine's classical one or RAFT from the given weights. */
  flow: 'classical' | 'raft';
  variant: MaweVariant;
  c: number;
  size: number;
  pairs: number;
  /** OFS: mean |flow| (code) or mean |flow|^2 (paper). */
  ofs: number;
  /** Mean warp error over pairs. */
  warpError: number;
  /** MAWE; Infinity when a pair has zero motion (code variant). */
  mawe: number;
  perPair?: { motion: number[]; motionSq: number[]; warpError: number[]; hits: number[] };
}

export interface EvalResult {
  video: string;
  width: number;
  height: number;
  fps: number;
  frames: number;
  scuts?: ScutsResult;
  /** Flow estimator behind ofs / mawe. */
  flowEstimator?: 'classical' | 'raft';
  ofs?: number;
  mawe?: FlowMetricsResult;
  clip?: ClipScoreResult;
}

function validate(opts: EvalOptions): Required<Pick<EvalOptions, 'metrics' | 'scutsVersion' | 'downscale' | 'maweVariant' | 'maweC' | 'flowSize'>> {
  const metrics = opts.metrics ?? ['scuts', 'ofs', 'mawe'];
  if (!Array.isArray(metrics) || metrics.length === 0) throw new TypeError('metrics must be a non-empty array');
  for (const m of metrics) {
    if (!METRIC_NAMES.includes(m)) throw new RangeError(`metrics: unknown metric '${String(m)}' (known: ${METRIC_NAMES.join(', ')})`);
  }
  const scutsVersion = opts.scutsVersion ?? '0.6.2';
  if (!SCENECUT_VERSIONS.includes(scutsVersion)) {
    throw new RangeError(`scutsVersion must be one of ${SCENECUT_VERSIONS.join(', ')} (got '${String(scutsVersion)}')`);
  }
  const downscale = opts.downscale ?? true;
  if (typeof downscale !== 'boolean') throw new TypeError('downscale must be a boolean');
  const maweVariant = opts.maweVariant ?? 'code';
  if (maweVariant !== 'code' && maweVariant !== 'paper') throw new RangeError(`maweVariant must be 'code' or 'paper'`);
  const maweC = opts.maweC ?? 9.5;
  if (typeof maweC !== 'number' || !Number.isFinite(maweC) || maweC <= 0) throw new RangeError('maweC must be a positive number');
  const flowSize = opts.flowSize ?? 720;
  if (!Number.isInteger(flowSize) || flowSize < 0 || flowSize > 8192) throw new RangeError('flowSize must be an integer in 0..8192');
  if (opts.chunkFrames !== undefined && (!Number.isInteger(opts.chunkFrames) || opts.chunkFrames < 2 || opts.chunkFrames > 4096)) {
    throw new RangeError('chunkFrames must be an integer in 2..4096');
  }
  const f = opts.flow ?? {};
  for (const [k, lo, hi] of [['alpha', 0, 1e6], ['omega', 0, 2], ['warps', 1, 50], ['iterations', 1, 10000]] as const) {
    const v = f[k];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v > hi || (k === 'omega' && (v <= 0 || v >= 2)) || (k === 'alpha' && v <= 0)) {
      throw new RangeError(`flow.${k} is out of range`);
    }
    if ((k === 'warps' || k === 'iterations') && !Number.isInteger(v)) throw new RangeError(`flow.${k} must be an integer`);
  }
  if (opts.raftWeights !== undefined) {
    if (typeof opts.raftWeights !== 'string' || opts.raftWeights.length === 0) throw new TypeError('raftWeights must be a path');
    if (!fs.existsSync(opts.raftWeights)) {
      throw new St2vError(`RAFT weights not found: ${opts.raftWeights}`, 'ERR_WEIGHTS_MISSING');
    }
    if (flowSize !== 0 && (flowSize % 8 !== 0 || flowSize < 128)) {
      throw new RangeError('flowSize must be a multiple of 8 and >= 128 with RAFT');
    }
  }
  if (opts.raftUpdates !== undefined && (!Number.isInteger(opts.raftUpdates) || opts.raftUpdates < 1 || opts.raftUpdates > 100)) {
    throw new RangeError('raftUpdates must be an integer in 1..100');
  }
  if (metrics.includes('clip')) validateClip(opts);
  return { metrics, scutsVersion, downscale, maweVariant, maweC, flowSize };
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/** SceneManager's processing size for a video size and version. */
export function scenecutProcessingSize(width: number, height: number, version: ScenecutVersion = '0.6.2', downscale = true): ProcessingSize {
  if (!Number.isInteger(width) || width < 1 || !Number.isInteger(height) || height < 1) throw new RangeError('width and height must be positive integers');
  if (!SCENECUT_VERSIONS.includes(version)) throw new RangeError(`version must be one of ${SCENECUT_VERSIONS.join(', ')}`);
  return callNativeSync(() => evalNative().evalProcessingSize(width, height, version, downscale));
}

/** AdaptiveDetector's cut decision on per-frame content values (content[0] = 0). */
export function scenecutDetect(content: ArrayLike<number>, version: ScenecutVersion = '0.6.2'): { cuts: number[]; adaptiveRatio: Array<number | null> } {
  if (!SCENECUT_VERSIONS.includes(version)) throw new RangeError(`version must be one of ${SCENECUT_VERSIONS.join(', ')}`);
  const r = callNativeSync(() => evalNative().evalScenecutDetect(Float64Array.from(content), version));
  return { cuts: r.cuts, adaptiveRatio: Array.from(r.adaptiveRatio, (x) => (Number.isNaN(x) ? null : x)) };
}

/** Evaluates one video file. */
export async function evaluateVideo(file: string, opts: EvalOptions = {}): Promise<EvalResult> {
  if (typeof file !== 'string' || file.length === 0) throw new TypeError('video must be a non-empty path');
  const v = validate(opts);
  const info = probeVideo(file);
  const result: EvalResult = { video: file, width: info.width, height: info.height, fps: info.fps, frames: 0 };
  const wantScuts = v.metrics.includes('scuts');
  const wantFlow = v.metrics.includes('ofs') || v.metrics.includes('mawe');
  if (wantScuts) {
    const s = await runScuts(file, info, [{ version: v.scutsVersion, downscale: v.downscale }], opts);
    result.frames = s.frames;
    result.scuts = s.results[0]!;
  }
  if (wantFlow) {
    const f = await runFlow(file, info, v.maweVariant, v.maweC, v.flowSize, opts);
    result.frames = f.frames;
    result.flowEstimator = f.result.flow;
    if (v.metrics.includes('ofs')) result.ofs = f.result.ofs;
    if (v.metrics.includes('mawe')) result.mawe = f.result;
  }
  if (v.metrics.includes('clip')) {
    const c = await runClip(file, info, opts);
    result.frames = c.frames;
    result.clip = c;
  }
  return result;
}

/** Yields the generator's items while already fetching the next one (decode overlaps native compute). */
async function* prefetch<T>(gen: AsyncGenerator<T>): AsyncGenerator<T> {
  let p = gen.next();
  try {
    for (;;) {
      const r = await p;
      if (r.done) return;
      p = gen.next();
      yield r.value;
    }
  } finally {
    // Settle the pending read (an early exit must not leave ffmpeg running or a rejection unhandled).
    await p.catch(() => undefined);
    await gen.return(undefined);
  }
}

export interface ScutsConfig {
  version: ScenecutVersion;
  downscale: boolean;
}

/**
 * SCuts of one video under several version rules / downscale modes at once: one decode, one native pass
 * per distinct processing size, the cut rule of each version on top. Results in the order of `configs`.
 */
export async function scenecutVideo(
  file: string,
  configs: ScutsConfig[],
  opts: Pick<EvalOptions, 'perFrame' | 'chunkFrames' | 'onProgress' | 'signal'> = {},
): Promise<{ frames: number; info: VideoInfo; results: ScutsResult[] }> {
  if (typeof file !== 'string' || file.length === 0) throw new TypeError('video must be a non-empty path');
  if (!Array.isArray(configs) || configs.length === 0) throw new TypeError('configs must be a non-empty array');
  for (const c of configs) {
    if (!SCENECUT_VERSIONS.includes(c.version)) throw new RangeError(`version must be one of ${SCENECUT_VERSIONS.join(', ')}`);
    if (typeof c.downscale !== 'boolean') throw new TypeError('downscale must be a boolean');
  }
  if (opts.chunkFrames !== undefined && (!Number.isInteger(opts.chunkFrames) || opts.chunkFrames < 2 || opts.chunkFrames > 4096)) {
    throw new RangeError('chunkFrames must be an integer in 2..4096');
  }
  const info = probeVideo(file);
  return { ...(await runScuts(file, info, configs, opts)), info };
}

async function runScuts(
  file: string,
  info: VideoInfo,
  configs: ScutsConfig[],
  opts: Pick<EvalOptions, 'perFrame' | 'chunkFrames' | 'onProgress' | 'signal'>,
): Promise<{ frames: number; results: ScutsResult[] }> {
  const native = evalNative();
  const frameBytes = info.width * info.height * 3;
  // One accumulator per distinct processing size.
  interface Acc { cfg: ScutsConfig; size: ProcessingSize; content: number[]; hue: number[]; sat: number[]; lum: number[] }
  const accs = new Map<string, Acc>();
  const keyOf = configs.map((c) => {
    const size = scenecutProcessingSize(info.width, info.height, c.version, c.downscale);
    const key = `${size.width}x${size.height}`;
    if (!accs.has(key)) accs.set(key, { cfg: c, size, content: [0], hue: [0], sat: [0], lum: [0] });
    return key;
  });
  let prev: Uint8Array | undefined;
  let frames = 0;
  for await (const chunk of prefetch(decodeFrames(file, info, opts.chunkFrames ?? 32, opts.signal))) {
    let data = chunk.data;
    let n = chunk.frames;
    if (prev) {
      data = concat(prev, chunk.data);
      n += 1;
    }
    frames += chunk.frames;
    if (n >= 2) {
      for (const acc of accs.values()) {
        const d = await callNative(() =>
          native.evalScenecutDeltas(data, n, info.width, info.height, { version: acc.cfg.version, downscale: acc.cfg.downscale }),
        );
        for (let i = 0; i < d.content.length; i++) {
          acc.content.push(d.content[i]!);
          acc.hue.push(d.hue[i]!);
          acc.sat.push(d.sat[i]!);
          acc.lum.push(d.lum[i]!);
        }
      }
    }
    prev = data.slice(data.length - frameBytes);
    opts.onProgress?.({ stage: 'scuts', done: frames, total: info.frames });
  }
  if (opts.signal?.aborted) throw new St2vError('evaluation cancelled', 'ERR_CANCELLED');
  if (frames === 0) throw new St2vError(`${file}: no frames decoded`, 'ERR_FORMAT');
  const results = configs.map((cfg, i) => {
    const acc = accs.get(keyOf[i]!)!;
    const content = acc.content.slice(0, frames);
    const det = scenecutDetect(content, cfg.version);
    const bounds = [0, ...det.cuts, frames];
    const scenes: Array<[number, number]> =
      det.cuts.length === 0 ? [] : bounds.slice(0, -1).map((s, j) => [s, bounds[j + 1]!] as [number, number]);
    const result: ScutsResult = {
      version: cfg.version,
      downscale: cfg.downscale,
      processingSize: acc.size,
      cuts: det.cuts,
      count: det.cuts.length,
      scenes,
    };
    if (opts.perFrame) {
      result.perFrame = {
        content,
        deltaHue: acc.hue.slice(0, frames),
        deltaSat: acc.sat.slice(0, frames),
        deltaLum: acc.lum.slice(0, frames),
        adaptiveRatio: det.adaptiveRatio,
      };
    }
    return result;
  });
  return { frames, results };
}

async function runClip(file: string, info: VideoInfo, opts: EvalOptions): Promise<ClipScoreResult & { frames: number }> {
  const model = opts.clipModel!;
  const prompt = opts.prompt!;
  const text = await clipTextFeatures(model, prompt, opts.clipTokenizer);
  const perFrame: number[] = [];
  for await (const chunk of prefetch(decodeFrames(file, info, opts.chunkFrames ?? 8, opts.signal))) {
    const feats = await clipEncodeFramesRaw(model, chunk.data, chunk.frames, info.width, info.height);
    perFrame.push(...clipCosine(text.features, feats));
    opts.onProgress?.({ stage: 'clip', done: perFrame.length, total: info.frames });
  }
  if (opts.signal?.aborted) throw new St2vError('evaluation cancelled', 'ERR_CANCELLED');
  if (perFrame.length === 0) throw new St2vError(`${file}: no frames decoded`, 'ERR_FORMAT');
  const score = perFrame.reduce((a, b) => a + b, 0) / perFrame.length;
  const r: ClipScoreResult & { frames: number } = {
    score,
    frames: perFrame.length,
    model,
    prompt,
    tokens: text.tokens,
    clamped: false,
  };
  if (opts.perFrame) r.perFrame = perFrame;
  return r;
}

async function runFlow(
  file: string,
  info: VideoInfo,
  variant: MaweVariant,
  c: number,
  flowSize: number,
  opts: EvalOptions,
): Promise<{ frames: number; result: FlowMetricsResult }> {
  const native = evalNative();
  const frameBytes = info.width * info.height * 3;
  const motion: number[] = [];
  const motionSq: number[] = [];
  const warp: number[] = [];
  const hits: number[] = [];
  let prev: Uint8Array | undefined;
  let frames = 0;
  const total = info.frames !== undefined ? Math.max(0, info.frames - 1) : undefined;
  const flowOpts: FlowOptions = opts.raftWeights
    ? { raft: opts.raftWeights, ...(opts.raftUpdates !== undefined ? { raftUpdates: opts.raftUpdates } : {}) }
    : { ...(opts.flow ?? {}) };
  for await (const chunk of prefetch(decodeFrames(file, info, opts.chunkFrames ?? 8, opts.signal))) {
    const data = prev ? concat(prev, chunk.data) : chunk.data;
    const n = chunk.frames + (prev ? 1 : 0);
    frames += chunk.frames;
    if (n >= 2) {
      const r = await callNative(() => native.evalMawePairs(data, n, info.width, info.height, { size: flowSize, ...flowOpts }));
      motion.push(...r.motion);
      motionSq.push(...r.motionSq);
      warp.push(...r.warpErr);
      hits.push(...r.hits);
    }
    prev = data.slice(data.length - frameBytes);
    opts.onProgress?.({ stage: 'flow', done: motion.length, total });
  }
  if (opts.signal?.aborted) throw new St2vError('evaluation cancelled', 'ERR_CANCELLED');
  if (frames < 2) throw new St2vError(`${file}: the flow metrics need at least 2 frames (got ${frames})`, 'ERR_INVALID_ARG');
  const s = callNativeSync(() =>
    native.evalMaweSummary(Float64Array.from(motion), Float64Array.from(motionSq), Float64Array.from(warp), variant, c),
  );
  const result: FlowMetricsResult = {
    flow: opts.raftWeights ? 'raft' : 'classical',
    variant,
    c,
    size: flowSize,
    pairs: motion.length,
    ofs: s.ofs,
    warpError: s.warpError,
    mawe: s.mawe,
  };
  if (opts.perFrame) result.perPair = { motion, motionSq, warpError: warp, hits };
  return { frames, result };
}
