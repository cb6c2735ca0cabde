/**
 * The only typed description of the native addon's surface, and its loader. Nothing else imports the
 * `.node` file. Binaries are looked up by node-gyp-build: `build/Release` (a local build) first, then
 * `prebuilds/<platform>-<arch>/`.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { St2vError } from '../errors.js';

export type NativeDType = 'f32' | 'f16' | 'bf16' | 'f64' | 'i64' | 'i32' | 'i16' | 'i8' | 'u8' | 'bool';

/** A tensor crossing the boundary: data is copied on the way in and freshly allocated (JS-owned) on the way out. */
export interface NativeTensor {
  data: Float32Array | Uint16Array | Float64Array | Int32Array | BigInt64Array | Int16Array | Int8Array | Uint8Array;
  shape: number[];
  dtype?: NativeDType;
}

export interface NativeSystemInfo {
  version: string;
  backend: 'cpu' | 'cuda';
  cpu: string;
  isa: 'portable' | 'avx2' | 'avx512';
  maxIsa: 'portable' | 'avx2' | 'avx512';
  cpuFeatures: string[];
  threads: number;
  hardwareThreads: number;
  cuda: { compiled: boolean; available: boolean; message: string };
}

/** cudaStatus(): "not built", "built, no device: <why>", or the GPU in `message`; `device` only when available. */
export interface NativeCudaStatus {
  compiled: boolean;
  available: boolean;
  message: string;
  /** The libstreamingt2v_cuda.so that was loaded or looked for. */
  library: string;
  device?: {
    name: string;
    computeCapability: string;
    multiprocessors: number;
    totalMemory: number;
    driverVersion: number;
    runtimeVersion: number;
    cublasLtVersion: number;
    cublasLtPath: string;
    build: string;
  };
}

/** One native bench measurement (native/bench/bench.h). gflops/gbps are 0 when not applicable. */
export interface NativeBenchResult {
  name: string;
  gflops: number;
  gbps: number;
  /** Median seconds per repetition. */
  seconds: number;
  /** FLOPs (or bytes for bandwidth cases) per repetition. */
  flops: number;
  note: string;
  /** Median process CPU seconds per repetition (0 when the case does not measure it). */
  cpuSeconds: number;
  /** Wall seconds of the fastest repetition (0 or absent when the case does not report it). */
  bestSeconds?: number;
  /** Further named figures of a case (e.g. gemm_2048_paired's per-operand ratios). */
  extra?: Record<string, number>;
}

/**
 * Engine binding contract (docs/native.md §"Engine binding"). One NativeEngine owns one loaded model and runs at
 * most one generate() at a time (a second concurrent call rejects with ERR_BUSY; the TS Engine queues instead).
 */
export interface NativeEngineOptions {
  /** Compute threads for this engine (0 or absent = the shared pool's size). */
  threads?: number;
}

/** Options of NativeEngine.load. All optional; TS validates them. */
export interface NativeLoadOptions {
  /** Weight dtype to compute with ('auto' = as stored). */
  dtype?: 'auto' | 'f32' | 'f16' | 'bf16';
  /** Folder where the built-in default model's seeded weights are cached (only used when modelDir is null). */
  cacheDir?: string;
  /** Where the denoisers (UNet3D + CAM) run: 'cpu' (default) or 'cuda' (ERR_NO_CUDA without a usable GPU). */
  backend?: 'cpu' | 'cuda';
  /** Resident weight dtype on the CUDA backend: 'f32' (parity with the CPU, default) or 'bf16'. */
  cudaDtype?: 'f32' | 'bf16';
}

/** What a loaded model is (from model.json, or the built-in default). */
export interface NativeModelInfo {
  /** 'default-tiny' for the built-in model, else the model folder's name/kind from model.json. */
  name: string;
  /** True for the built-in default model, whose weights are seeded random numbers (untrained). */
  untrained: boolean;
  /** Resolved model folder, or null for the built-in default when nothing is cached on disk. */
  modelDir: string | null;
  /** Output frame size of stage 2 (pixels). */
  width: number;
  height: number;
  /** Frames produced by the first (stage-1) chunk. */
  firstChunkFrames: number;
  /** New frames produced by each extension chunk. */
  chunkFrames: number;
  /** Conditioning frames an extension chunk overlaps with the previous one. */
  overlapFrames: number;
  /** Default number of denoising steps. */
  defaultSteps: number;
  /** Components present (unet, cam, resampler, text_encoder, image_encoder, vae, enhancer). */
  components: string[];
  /** Dtype the weights are computed in. */
  dtype: string;
}

/** Arguments of NativeEngine.generate; validated by lib/options.ts before they cross. */
export interface NativeGenerateOptions {
  prompt: string;
  negativePrompt: string;
  /** Total frames to produce (>= 1). The engine rounds nothing: it delivers exactly this many frames. */
  frames: number;
  /** Seed of the PyTorch-compatible generator (0 <= seed < 2^53). */
  seed: number;
  steps: number;
  guidanceScale: number;
  /** CLIP token ids (77) of the prompt, from the model folder's tokenizer; absent = the model's built-in tokenizer. */
  promptIds?: Int32Array;
  /** CLIP token ids (77) of the negative prompt, as promptIds. */
  negativeIds?: Int32Array;
  /** CLIP token ids (77) of "" (the uncond of a separate stage-1 model, which gets no negative prompt), as promptIds. */
  emptyIds?: Int32Array;
}

/** Milliseconds spent per stage for one chunk. Stages that did not run in that chunk are 0. */
export interface NativeStageTimings {
  textEncoder: number;
  imageEncoder: number;
  unet: number;
  cam: number;
  vaeDecode: number;
  total: number;
}

/**
 * One finished chunk: RGB uint8 frames, row-major (frames, height, width, 3). `data` is a fresh JS-owned buffer
 * (transferable), `index` the video index of its first frame. Chunks arrive in order, without overlap, and
 * sum to exactly `frames`.
 */
export interface NativeChunk {
  data: Uint8Array;
  index: number;
  frames: number;
  width: number;
  height: number;
  timings: NativeStageTimings;
}

/** Progress of the running generate(): `step` of `steps` denoising steps of chunk `chunk` (0-based) of `chunks`. */
export interface NativeProgress {
  stage: 'text' | 'stage1' | 'extend' | 'decode';
  chunk: number;
  chunks: number;
  step: number;
  steps: number;
}

export interface NativeGenerateSummary {
  frames: number;
  chunks: number;
  /** Summed per-stage milliseconds over all chunks. */
  timings: NativeStageTimings;
  /** Milliseconds of the stage-1 denoiser (chunk 0; included in timings.unet). */
  stage1Ms?: number;
  /** The token ids the text encoder saw for the prompt / negative prompt (given, or the built-in tokenizer's). */
  promptIds?: Int32Array;
  negativeIds?: Int32Array;
}

/** What writeRandomModel made (native/bench/pipeline_bench.h). */
export interface NativeRandomModelInfo {
  config: string;
  params: number;
  bytes: number;
  seconds: number;
}

export interface NativeEngine {
  /** Loads a model folder (from `st2v convert`), or the built-in default tiny model when modelDir is null. */
  load(modelDir: string | null, opts: NativeLoadOptions): Promise<NativeModelInfo>;
  /**
   * Generates; onChunk is called on the JS thread (thread-safe function) as each chunk finishes, before the next
   * chunk starts computing; onProgress after each denoising step. Resolves after the last onChunk call. Rejects
   * with ERR_CANCELLED (checked at least once per denoising step) after cancel(), ERR_BUSY if already running,
   * ERR_DISPOSED after dispose(). Activation memory is released before the promise settles.
   */
  generate(
    opts: NativeGenerateOptions,
    onChunk: (chunk: NativeChunk) => void,
    onProgress: (p: NativeProgress) => void,
  ): Promise<NativeGenerateSummary>;
  /** Requests cancellation of the running generate() (no-op when idle). Returns at once. */
  cancel(): void;
  /** Cancels any running work, waits for it, frees the weights. Idempotent. */
  dispose(): Promise<void>;
}

/**
 * Stage-3 enhancer binding (native/napi/enhance_binding.cpp). Options of enhanceVideo; validated by lib/enhance.ts.
 * Token ids are 77 CLIP ids with open_clip padding (0) of "<prompt>, " and of the negative prompt.
 */
export interface NativeEnhanceOptions {
  /** Required for a model folder. */
  promptIds?: Int32Array;
  negativeIds?: Int32Array;
  /**
   * modelDir null only: use the built-in tiny enhancer with seeded random, UNTRAINED weights (plumbing tests and
   * demos); its prompts are tokenised natively from `prompt` / `negativePrompt`.
   */
  untrained?: boolean;
  prompt?: string;
  negativePrompt?: string;
  /** Output frame size (fit + black pad target). Defaults 1280 x 720. */
  width?: number;
  height?: number;
  /** Solver steps (30), SDEdit start timestep (599), CFG scale (7.5) and guide-rescale (0.2). */
  steps?: number;
  tStart?: number;
  guidanceScale?: number;
  guideRescale?: number;
  /** Randomized-blending chunk and overlap in frames (24 / 8). */
  chunk?: number;
  overlap?: number;
  /** Chunks per window (0 = the whole video at once; memory bounded by the window otherwise). */
  window?: number;
  seed?: number;
  /** VAE latent tile edge (tiled encode/decode only for larger frames; 0 = never tile). Default 64. */
  vaeTile?: number;
  /**
   * Token tile of the enhancer (0 = untiled): the feed-forward of its transformer blocks in slices of this many
   * tokens, and its temporal transformers in tiles of this many tokens of whole frame sequences. Same result;
   * bounds the wide intermediates. Default 16384.
   */
  ffTokenChunk?: number;
  /** 'cuda': the denoiser on the CUDA backend (f32 weights; ERR_NO_CUDA without a usable one). Default 'cpu'. */
  backend?: 'cpu' | 'cuda';
}

/** Enhanced frames as they become final: RGB uint8 (frames, height, width, 3), `index` = first frame's video index. */
export interface NativeEnhanceFrames {
  data: Uint8Array;
  index: number;
  frames: number;
  width: number;
  height: number;
}

/** Progress of enhanceVideo: per encoded/decoded batch and per denoised chunk of each solver step. */
export interface NativeEnhanceProgress {
  stage: 'encode' | 'denoise' | 'decode';
  window: number;
  step: number;
  steps: number;
  chunk: number;
  chunks: number;
  framesDone: number;
}

export interface NativeEnhanceJob {
  /** Resolves after the last onFrames call; rejects with ERR_CANCELLED after cancel(), ERR_WEIGHTS_MISSING without an enhancer. */
  promise: Promise<{ frames: number; peakTensorBytes: number; untrained: boolean; backend: 'cpu' | 'cuda' }>;
  cancel(): void;
}

/** One row of the CPU op profile: an op kind's totals (outermost ops of each thread; see native/core/profile.h). */
export interface NativeProfileRow {
  name: string;
  calls: number;
  seconds: number;
  flop: number;
  bytes: number;
}

export interface NativeModule {
  systemInfo(): NativeSystemInfo;
  /** The CUDA backend's state (native/backend/backend.h); never throws. */
  cudaStatus(): NativeCudaStatus;
  /** 'auto' -> 'cpu'; 'cpu' -> 'cpu'; 'cuda' -> 'cuda' when usable, else throws code ERR_NO_CUDA naming what is missing. */
  resolveBackend(name: 'auto' | 'cpu' | 'cuda'): 'cpu' | 'cuda';
  errorCodes(): string[];
  /** Resizes the compute pool (0 = hardware threads). Returns the new size. */
  setThreads(n: number): number;
  /** Lowers the kernel ISA level (for tests); false if the CPU lacks it. */
  setIsa(isa: 'portable' | 'avx2' | 'avx512'): boolean;
  /** Runs one op (tests, benches): see native/napi/ops_binding.cpp for names and params. */
  runOp(name: string, inputs: Array<NativeTensor | null | undefined>, params?: Record<string, unknown>): Promise<NativeTensor>;
  /** Turns the process-wide CPU op profile on (clearing it) or off (native/core/profile.h). */
  setCpuProfile(on: boolean): void;
  /** The CPU op profile's rows so far, by time (each op kind's calls, seconds, FLOPs and bytes). */
  cpuProfile(): NativeProfileRow[];
  /** Names of the registered native bench cases of a suite ('peak', 'ops', ...), in registration order. */
  benchList(suite: string): string[];
  /** Runs one native bench case on the current pool (medians of a few repetitions). */
  benchRun(name: string): Promise<NativeBenchResult>;
  /**
   * Writes a random-weight model folder (model.safetensors + model.json) loadable by NativeEngine.load: preset 'tiny'
   * (the built-in model's architecture) or 'mid' (St2vConfig::mid() with mid-size encoders). For benches and tests.
   */
  writeRandomModel?: (
    dir: string,
    opts: { preset?: 'tiny' | 'mid'; seed?: number; dtype?: 'f32' | 'f16' | 'bf16'; vocab?: number; untrained?: boolean },
  ) => Promise<NativeRandomModelInfo>;
  /** Creates an engine (see NativeEngine). Absent until the native pipeline is built in. */
  createEngine?: (opts: NativeEngineOptions) => NativeEngine;
  /**
   * Stage 3 on a model folder holding enhancer.*, vae.* and text_encoder.* (null: ERR_WEIGHTS_MISSING, there is no
   * built-in enhancer). frames: f32 [F, 3, H, W] in [-1, 1] or u8 [F, H, W, 3] (rgb24). Returns at once.
   */
  enhanceVideo?: (
    modelDir: string | null,
    frames: NativeTensor,
    opts: NativeEnhanceOptions,
    onFrames: (f: NativeEnhanceFrames) => void,
    onProgress: (p: NativeEnhanceProgress) => void,
  ) => NativeEnhanceJob;
  /**
   * CLIP score (native/napi/clip_score_binding.cpp; used by lib/eval/clip.ts). `model`: a folder from `st2v convert`
   * of open_clip weights (image_encoder + text_encoder + text_last_block) or an open_clip safetensors file, loaded
   * once per path on a worker thread (ERR_NOT_FOUND / ERR_WEIGHTS_MISSING naming what is missing).
   */
  clipModelInfo?: (model: string) => Promise<{ imageSize: number; embedDim: number; contextLength: number }>;
  /** open_clip encode_text of `rows` rows of token ids (not normalised): Float32Array(rows * embedDim). */
  clipEncodeText?: (model: string, ids: Int32Array, rows: number) => Promise<Float32Array>;
  /** open_clip inference transform + encode_image of n rgb24 frames (read in place until settled): Float32Array(n * embedDim). */
  clipEncodeFrames?: (model: string, frames: Uint8Array, n: number, width: number, height: number) => Promise<Float32Array>;
  /** 100 x cos(text, each image row), raw (no clamping). */
  clipCosine?: (text: Float32Array, images: Float32Array) => Float64Array;
  [key: string]: unknown;
}

let cached: NativeModule | undefined;

/** The package root (the folder holding package.json), from dist/native or lib/native. */
export const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export function loadNative(): NativeModule {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  try {
    const nodeGypBuild = require('node-gyp-build') as (dir: string) => NativeModule;
    cached = nodeGypBuild(packageRoot);
  } catch (err) {
    throw new St2vError(
      `streamingt2v: no usable native binary for ${process.platform}-${process.arch} (node ${process.version}). ` +
        `Tried build/Release and prebuilds/. Build one with \`npx cmake-js compile\` in ${packageRoot} ` +
        `(needs a C++17 compiler and cmake >= 3.18). Cause: ${(err as Error).message}`,
      'ERR_NO_BINARY',
      { cause: err },
    );
  }
  return cached;
}
