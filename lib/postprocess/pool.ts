/** The shared piscina pool running lib/postprocess/worker.ts (frame conversion, resize and pad, PNG encoding). */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import type { FramesTask, PngTask } from './worker.js';

let pool: Piscina | undefined;
let bootstrapFile: string | undefined;

/**
 * The worker next to this module: worker.js in dist/. When run from sources (tests under tsx), worker threads do
 * not inherit tsx's loader, so a small bootstrap registers it and re-exports worker.ts's handlers.
 */
function workerFile(): string {
  if (!import.meta.url.endsWith('.ts')) return fileURLToPath(new URL('./worker.js', import.meta.url));
  const tsxApi = import.meta.resolve('tsx/esm/api');
  const target = new URL('./worker.ts', import.meta.url).href;
  const src =
    `import { register } from ${JSON.stringify(tsxApi)};\nregister();\n` +
    `const m = await import(${JSON.stringify(target)});\nexport const frames = m.frames;\nexport const png = m.png;\n`;
  const file = path.join(os.tmpdir(), `st2v-pool-bootstrap-${process.pid}.mjs`);
  fs.writeFileSync(file, src);
  bootstrapFile = file;
  return file;
}

/** Threads of the pool: half the hardware threads (the other half computes the next chunk), 1 to 4. */
export function defaultPoolThreads(): number {
  return Math.max(1, Math.min(4, Math.floor(os.availableParallelism() / 2)));
}

export function getPool(): Piscina {
  pool ??= new Piscina({ filename: workerFile(), minThreads: 0, maxThreads: defaultPoolThreads(), idleTimeout: 2000 });
  return pool;
}

/** Runs a task with its frame buffer transferred; a buffer that cannot be transferred (external memory) is copied. */
async function runMoved<T extends FramesTask>(name: string, t: T): Promise<unknown> {
  const task = { ...t, data: ownBuffer(t.data) };
  try {
    return await getPool().run(task, { name, transferList: [task.data.buffer as ArrayBuffer] });
  } catch (err) {
    if ((err as Error)?.name !== 'DataCloneError') throw err;
    const copy = { ...t, data: t.data.slice() };
    return await getPool().run(copy, { name, transferList: [copy.data.buffer as ArrayBuffer] });
  }
}

/** Converts / resizes frames in the pool. The input buffer is transferred (unusable afterwards). */
export async function processFrames(t: FramesTask): Promise<Uint8Array> {
  return (await runMoved('frames', t)) as Uint8Array;
}

/** A view that owns its whole ArrayBuffer (so transferring it moves nothing else); copies otherwise. */
function ownBuffer<T extends Uint8Array | Float32Array>(a: T): T {
  if (a.byteOffset === 0 && a.byteLength === a.buffer.byteLength && a.buffer instanceof ArrayBuffer) return a;
  return a.slice() as T;
}

/** PNG-encodes frames in the pool (input transferred). */
export async function encodePngFrames(t: PngTask): Promise<Uint8Array[]> {
  return (await runMoved('png', t)) as Uint8Array[];
}

/** Stops the pool's threads (lets the process exit). A later call creates a new pool. */
export async function closePool(): Promise<void> {
  const p = pool;
  pool = undefined;
  await p?.close();
  if (bootstrapFile) fs.rmSync(bootstrapFile, { force: true });
  bootstrapFile = undefined;
}
