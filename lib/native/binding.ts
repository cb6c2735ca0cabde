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
}

export interface NativeModule {
  systemInfo(): NativeSystemInfo;
  errorCodes(): string[];
  /** Resizes the compute pool (0 = hardware threads). Returns the new size. */
  setThreads(n: number): number;
  /** Lowers the kernel ISA level (for tests); false if the CPU lacks it. */
  setIsa(isa: 'portable' | 'avx2' | 'avx512'): boolean;
  /** Runs one op (tests, benches): see native/napi/ops_binding.cpp for names and params. */
  runOp(name: string, inputs: Array<NativeTensor | null | undefined>, params?: Record<string, unknown>): Promise<NativeTensor>;
  /** Names of the registered native bench cases of a suite ('peak', 'ops', ...), in registration order. */
  benchList(suite: string): string[];
  /** Runs one native bench case on the current pool (medians of a few repetitions). */
  benchRun(name: string): Promise<NativeBenchResult>;
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
