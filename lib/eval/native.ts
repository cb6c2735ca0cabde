/**
 * Typed view of the evaluation functions of the native addon (native/napi/eval_binding.cpp).
 * Arguments are validated by the callers in lib/eval before they get here.
 */
import { loadNative } from '../native/binding.js';

export type ScenecutVersion = '0.6.2' | '0.6.3' | 'current';
export const SCENECUT_VERSIONS: readonly ScenecutVersion[] = ['0.6.2', '0.6.3', 'current'];

export interface ProcessingSize {
  width: number;
  height: number;
  /** SceneManager's downscale factor (1 = none; an integer up to 0.6.4, a float from 0.6.5). */
  factor: number;
  resized: boolean;
}

export interface FlowOptions {
  /** Smoothness weight (0..255 intensity scale). Default 50. */
  alpha?: number;
  /** Over-relaxation factor in (0, 2). Default 1.9. */
  omega?: number;
  /** Re-linearisations per pyramid level. Default 3. */
  warps?: number;
  /** Relaxation sweeps per warp at the finest level. Default 15. */
  iterations?: number;
  /** RAFT weights (safetensors, torchvision names): use RAFT instead of the classical estimator. */
  raft?: string;
  /** RAFT flow updates (torchvision default 12). */
  raftUpdates?: number;
}

export interface PairMetrics {
  motion: number;
  motionSq: number;
  warpErr: number;
  hits: number;
}

export interface PairArrays {
  motion: Float64Array;
  motionSq: Float64Array;
  warpErr: Float64Array;
  hits: Float64Array;
}

export interface EvalNative {
  evalProcessingSize(width: number, height: number, version: ScenecutVersion, downscale: boolean): ProcessingSize;
  evalScenecutDeltas(
    frames: Uint8Array,
    n: number,
    width: number,
    height: number,
    opts: { version: ScenecutVersion; downscale: boolean },
  ): Promise<{ hue: Float64Array; sat: Float64Array; lum: Float64Array; content: Float64Array; size: ProcessingSize }>;
  evalScenecutDetect(content: Float64Array, version: ScenecutVersion): { cuts: number[]; adaptiveRatio: Float64Array };
  evalFlow(frame0: Uint8Array, frame1: Uint8Array, width: number, height: number, opts?: FlowOptions): Promise<Float32Array>;
  evalWarpMetrics(frame0: Uint8Array, frame1: Uint8Array, flow: Float32Array, width: number, height: number): PairMetrics;
  evalMawePairs(
    frames: Uint8Array,
    n: number,
    width: number,
    height: number,
    opts: FlowOptions & { size: number },
  ): Promise<PairArrays>;
  evalMaweSummary(
    motion: Float64Array,
    motionSq: Float64Array,
    warpErr: Float64Array,
    variant: 'code' | 'paper',
    c: number,
  ): { mawe: number; ofs: number; warpError: number };
}

export function evalNative(): EvalNative {
  return loadNative() as unknown as EvalNative;
}
