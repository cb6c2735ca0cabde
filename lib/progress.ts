/** Progress events of {@link Engine.generate} and the ETA / rate arithmetic shared by the API and the CLI. */
import type { NativeProgress } from './native/binding.js';

/** One progress event, emitted after each denoising step. */
export interface GenerateProgress {
  /** What is running: prompt encoding, the first chunk, an extension chunk, or VAE decoding. */
  stage: NativeProgress['stage'];
  /** 0-based index of the chunk being computed. */
  chunk: number;
  /** Number of chunks of this video. */
  chunks: number;
  /** Denoising steps done in this chunk (1-based once a step has finished). */
  step: number;
  /** Denoising steps per chunk. */
  steps: number;
  /** Frames already delivered to the iterator. */
  framesDone: number;
  /** Frames requested. */
  frames: number;
  /** Milliseconds since generate() started computing. */
  elapsedMs: number;
  /** Estimated milliseconds left (from the step rate so far); NaN before the first step. */
  etaMs: number;
  /** Frames delivered per second so far (0 before the first chunk). */
  framesPerSecond: number;
}

/**
 * Turns native step events into {@link GenerateProgress}. The ETA counts denoising steps only (stage 1 and the
 * extension chunks, each event sent when its step has finished): the text and decode events carry their own
 * step counts (0 of 1), which say nothing about the denoising left, so they keep the last step count.
 */
export class ProgressTracker {
  private readonly start = performance.now();
  private stepsPerChunk = 0;
  private stepsDone = 0;
  framesDone = 0;

  constructor(private readonly frames: number) {}

  update(p: NativeProgress): GenerateProgress {
    const elapsedMs = performance.now() - this.start;
    if (p.stage === 'stage1' || p.stage === 'extend') {
      this.stepsPerChunk = p.steps;
      this.stepsDone = p.chunk * p.steps + p.step;
    }
    const total = p.chunks * this.stepsPerChunk, done = this.stepsDone;
    const etaMs = done > 0 && total > 0 ? (elapsedMs / done) * Math.max(0, total - done) : Number.NaN;
    return {
      stage: p.stage,
      chunk: p.chunk,
      chunks: p.chunks,
      step: p.step,
      steps: p.steps,
      framesDone: this.framesDone,
      frames: this.frames,
      elapsedMs,
      etaMs,
      framesPerSecond: elapsedMs > 0 ? (this.framesDone * 1000) / elapsedMs : 0,
    };
  }
}

/** "1m05s" / "42s" / "?" for an ETA in milliseconds. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '?';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}
