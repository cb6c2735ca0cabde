/** Stable error codes carried by {@link St2vError}. The native addon's `errorCodes()` returns the same list. */
export const ERROR_CODES = [
  'ERR_INVALID_ARG',
  'ERR_NOT_FOUND',
  'ERR_WEIGHTS_MISSING',
  'ERR_SHAPE_MISMATCH',
  'ERR_DTYPE',
  'ERR_UNSUPPORTED',
  'ERR_OUT_OF_MEMORY',
  'ERR_IO',
  'ERR_FORMAT',
  'ERR_UNSAFE',
  'ERR_NO_CUDA',
  'ERR_CUDA',
  'ERR_CUDA_FATAL',
  'ERR_CANCELLED',
  'ERR_BUSY',
  'ERR_DISPOSED',
  'ERR_INTERNAL',
] as const;

/** Codes raised only by the TypeScript layer. */
export const TS_ONLY_ERROR_CODES = ['ERR_NO_BINARY', 'ERR_NO_FFMPEG'] as const;

export type ErrorCode = (typeof ERROR_CODES)[number] | (typeof TS_ONLY_ERROR_CODES)[number];

/** Every error the engine raises for a reason other than a bad argument (those are TypeError/RangeError). */
export class St2vError extends Error {
  readonly code: ErrorCode;
  constructor(message: string, code: ErrorCode, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'St2vError';
    this.code = code;
  }
}

const KNOWN = new Set<string>([...ERROR_CODES, ...TS_ONLY_ERROR_CODES]);

/** Turns an error thrown by the native addon into a St2vError (keeping the caller's stack when given). */
export function fromNative(err: unknown, callerStack?: string): unknown {
  if (err instanceof St2vError) return err;
  const e = err as { code?: unknown; message?: unknown } | null;
  if (e && typeof e.code === 'string' && KNOWN.has(e.code)) {
    const out = new St2vError(String(e.message ?? 'native error'), e.code as ErrorCode, { cause: err });
    if (callerStack) out.stack = `St2vError: ${out.message}\n${callerStack.split('\n').slice(1).join('\n')}`;
    return out;
  }
  return err;
}

/** Awaits a native promise, converting its rejection with {@link fromNative}; the stack points at the caller. */
export async function callNative<T>(p: () => Promise<T>): Promise<T> {
  const stack = new Error().stack;
  try {
    return await p();
  } catch (err) {
    throw fromNative(err, stack);
  }
}

/** Same for synchronous native calls. */
export function callNativeSync<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw fromNative(err);
  }
}
