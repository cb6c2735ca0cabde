/**
 * streamingt2v: StreamingT2V long text-to-video generation for Node.js.
 *
 * ```ts
 * import { Engine, writeVideo } from 'streamingt2v';
 * await using engine = await Engine.load();            // built-in tiny model (untrained weights)
 * await writeVideo(engine.generate({ prompt: 'a red ball', frames: 24 }), { output: 'ball.mp4' });
 * ```
 */
export { Engine, type FrameChunk, type Generation, type ModelInfo, type StageTimings } from './engine.js';
export type { GenerateOptions, LoadOptions } from './options.js';
export type { GenerateProgress } from './progress.js';
export { St2vError, ERROR_CODES, TS_ONLY_ERROR_CODES, type ErrorCode } from './errors.js';
export {
  writeVideo,
  checkWriteVideoOptions,
  assertFfmpeg,
  OUTPUT_FORMATS,
  type OutputFormat,
  type RgbChunk,
  type WriteVideoOptions,
  type WriteVideoResult,
} from './postprocess/encode.js';
export { closePool } from './postprocess/pool.js';
export { enhance, type EnhanceInput, type EnhanceOptions, type EnhanceResult } from './enhance.js';
export { resizeAndPad, resizeBicubicRgb, floatToUint8 } from './postprocess/resize.js';

import { loadNative, type NativeSystemInfo } from './native/binding.js';
/** Build and backend of the native addon (version, ISA in use, threads, CUDA availability). */
export function systemInfo(): NativeSystemInfo {
  return loadNative().systemInfo();
}
