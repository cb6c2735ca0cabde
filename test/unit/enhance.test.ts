// Stage 3 through the addon (lib/enhance.ts, native/napi/enhance_binding.cpp) and the `st2v enhance` CLI:
// validation, ERR_WEIGHTS_MISSING without an enhancer, the untrained built-in tiny enhancer end to end (frame
// counts follow the chunk tiling, windowed output equals the whole video when the window covers it, streaming
// order, progress per chunk, cancellation).
import test from 'ava';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { enhance, openClipIds, type EnhanceInput } from '../../lib/enhance.js';
import { St2vError } from '../../lib/errors.js';
import { loadNative, type NativeEnhanceProgress } from '../../lib/native/binding.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'st2v-enhance-'));
const hasFfmpeg = spawnSync('ffmpeg', ['-version']).status === 0;

function video(frames: number, w = 16, h = 16): EnhanceInput {
  const data = new Uint8Array(frames * w * h * 3);
  for (let i = 0; i < data.length; ++i) data[i] = (i * 37 + (i >> 5)) & 255;
  return { data, frames, width: w, height: h };
}

// tiny geometry for the built-in enhancer: 32x32 frames (latent 4x4), chunk 4 / overlap 2, 2 steps
const tiny = { model: null, untrained: true, prompt: 'a red ball', steps: 2, chunk: 4, overlap: 2, width: 32, height: 32 } as const;

test('validation: arguments are checked in TypeScript, a missing enhancer is ERR_WEIGHTS_MISSING', async (t) => {
  await t.throwsAsync(enhance(video(8), { model: null, prompt: 'x', chunk: 4, overlap: 2 }), { instanceOf: St2vError, message: /enhancer/ });
  try {
    await enhance(video(8), { model: null, prompt: 'x', chunk: 4, overlap: 2 });
  } catch (e) {
    t.is((e as St2vError).code, 'ERR_WEIGHTS_MISSING');
  }
  await t.throwsAsync(enhance(video(8), { ...tiny, steps: 0 }), { instanceOf: RangeError, message: /steps/ });
  await t.throwsAsync(enhance(video(3), { ...tiny }), { instanceOf: RangeError, message: /chunk/ });
  await t.throwsAsync(enhance(video(8), { ...tiny, overlap: 4 }), { instanceOf: RangeError, message: /overlap/ });
  await t.throwsAsync(enhance({ data: new Uint8Array(5), frames: 8, width: 16, height: 16 }, { ...tiny }), { instanceOf: RangeError });
  await t.throwsAsync(enhance(video(8), { ...tiny, backend: 'gpu' as never }), { instanceOf: RangeError, message: /backend must be one of auto, cpu, cuda/ });
  // no usable GPU here (and no emulation loaded in this process): ERR_NO_CUDA before any model is read
  if (!loadNative().cudaStatus().available) {
    const err = await t.throwsAsync(enhance(video(8), { ...tiny, backend: 'cuda' }), { instanceOf: St2vError });
    t.is((err as St2vError).code, 'ERR_NO_CUDA');
  }
  t.deepEqual(Array.from(openClipIds(Int32Array.from([49406, 320, 49407, 49407, 49407]), 49407)), [49406, 320, 49407, 0, 0]);
});

test('native: a model folder without enhancer.* tensors rejects with ERR_WEIGHTS_MISSING naming it', async (t) => {
  const native = loadNative();
  if (typeof native.enhanceVideo !== 'function') return t.fail('addon lacks enhanceVideo');
  // a valid safetensors file with one unrelated tensor
  const header = Buffer.from(JSON.stringify({ 'vae.x': { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  const dir = path.join(tmp, 'no-enhancer');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'model.safetensors'), Buffer.concat([len, header, Buffer.alloc(4)]));
  const frames = { data: new Float32Array(4 * 3 * 8 * 8), shape: [4, 3, 8, 8], dtype: 'f32' as const };
  const ids = new Int32Array(77);
  // through lib/enhance.ts: model.json without the enhancer component is reported before any tokenizer lookup
  fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify({ components: { vae: {}, text_encoder: {} } }));
  const e = await t.throwsAsync(enhance(video(8), { model: dir, prompt: 'x', chunk: 4, overlap: 2 }));
  t.is((e as St2vError).code, 'ERR_WEIGHTS_MISSING');
  t.regex(e!.message, /no enhancer.*vae, text_encoder/);
  for (const dirArg of [dir, null]) {
    const job = native.enhanceVideo(dirArg, frames, { promptIds: ids, negativeIds: ids, chunk: 4, overlap: 2 }, () => {}, () => {});
    const err = await t.throwsAsync(job.promise);
    t.is((err as { code?: string }).code, 'ERR_WEIGHTS_MISSING');
    t.regex(err!.message, /enhancer/);
  }
});

test('untrained built-in: frame counts, streaming order, progress per chunk, window covering the video is exact', async (t) => {
  const input = video(11); // (11 - 2) // 2 = 4 chunks -> 10 frames
  const progress: NativeEnhanceProgress[] = [];
  const whole = await enhance(input, { ...tiny, onProgress: (p) => progress.push(p) });
  t.true(whole.untrained);
  t.is(whole.backend, 'cpu');
  t.is(whole.frames, 10);
  t.is(whole.width, 32);
  t.is(whole.height, 32);
  t.is(whole.data!.length, 10 * 32 * 32 * 3);
  const denoise = progress.filter((p) => p.stage === 'denoise');
  t.is(denoise.length, 2 * 4); // steps x chunks
  t.deepEqual(denoise.slice(0, 4).map((p) => p.chunk), [1, 2, 3, 4]);
  t.true(whole.data!.some((v) => v !== whole.data![0]));

  const starts: number[] = [];
  const parts: Uint8Array[] = [];
  const covering = await enhance(input, { ...tiny, window: 4, onFrames: (f) => (starts.push(f.index), parts.push(f.data)) });
  t.is(covering.data, undefined);
  t.deepEqual(starts, [0, 8]); // the window emits all but its last overlap, finish() emits the overlap
  t.deepEqual(Buffer.concat(parts), Buffer.from(whole.data!));

  const short = await enhance(input, { ...tiny, window: 1 });
  t.is(short.frames, 10);
});

test('untrained built-in: AbortSignal cancels with ERR_CANCELLED', async (t) => {
  // 200 steps keep the native side busy long after the first progress event reaches JS
  const ac = new AbortController();
  let steps = 0;
  const err = await t.throwsAsync(
    enhance(video(11), {
      ...tiny,
      steps: 200,
      signal: ac.signal,
      onProgress: (p) => {
        if (p.stage !== 'denoise') return;
        steps = Math.max(steps, p.step);
        ac.abort();
      },
    }),
  );
  t.is((err as St2vError).code, 'ERR_CANCELLED');
  t.true(steps < 200);
});

test('cli: st2v enhance without --model is ERR_WEIGHTS_MISSING; with --untrained it writes every tiled frame', async (t) => {
  const cli = (args: string[]) =>
    spawnSync(process.execPath, ['--import=tsx', path.join(root, 'lib', 'cli', 'main.ts'), ...args], { encoding: 'utf8', cwd: root, timeout: 120_000 });
  const r = cli(['enhance', 'in.mp4', '-o', path.join(tmp, 'x.mp4'), '--prompt', 'x']);
  t.not(r.status, 0);
  t.regex(r.stderr, /ERR_WEIGHTS_MISSING|enhancer/);
  if (!hasFfmpeg) return t.log('ffmpeg not found: end-to-end CLI run skipped');
  const inp = path.join(tmp, 'in.mp4');
  const mk = spawnSync('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc=size=32x32:rate=8', '-frames:v', '9', '-pix_fmt', 'yuv420p', inp]);
  t.is(mk.status, 0);
  const out = path.join(tmp, 'out.mp4');
  const e = cli(['enhance', inp, '-o', out, '--prompt', 'a test pattern', '--untrained', '--steps', '1', '--chunk', '4', '--overlap', '2', '--size', '32x32', '-q']);
  t.is(e.status, 0, e.stderr);
  const p = spawnSync('ffprobe', ['-v', 'error', '-count_frames', '-show_entries', 'stream=width,height,nb_read_frames', '-of', 'csv=p=0', out], { encoding: 'utf8' });
  t.is(p.stdout.trim(), '32,32,8'); // 9 frames -> 3 chunks of 4 with overlap 2 -> 8
  // --backend cuda without a usable GPU (this machine; the child has no emulation): ERR_NO_CUDA, nothing written
  if (!loadNative().cudaStatus().available) {
    const outCuda = path.join(tmp, 'out_cuda.mp4');
    const c = cli(['enhance', inp, '-o', outCuda, '--prompt', 'x', '--untrained', '--backend', 'cuda', '--steps', '1', '--chunk', '4', '--overlap', '2', '--size', '32x32', '-q']);
    t.is(c.status, 1);
    t.regex(c.stderr, /\(ERR_NO_CUDA\)\n$/);
    t.false(fs.existsSync(outCuda));
  }
});

test('generate({enhance}) on the built-in model: stage-2 frames go through the (untrained) built-in enhancer', async (t) => {
  const { Engine } = await import('../../lib/engine.js');
  const engine = await Engine.load();
  try {
    t.throws(() => engine.generate({ prompt: 'x', enhance: 5 as unknown as boolean }), { instanceOf: TypeError });
    t.throws(() => engine.generate({ prompt: 'x', enhance: { bogus: 1 } as unknown as boolean }), { instanceOf: RangeError });
    t.throws(() => engine.generate({ prompt: 'x', enhance: { onProgress: 3 as never } }), { instanceOf: TypeError, message: /for enhance\.onProgress/ });
    // the enhancer's settings are checked when generate is called, not after stage 2
    t.throws(() => engine.generate({ prompt: 'x', enhance: { steps: 0 } }), { instanceOf: RangeError, message: /enhance: steps must be in \[1, 1000\]/ });
    t.throws(() => engine.generate({ prompt: 'x', enhance: { chunk: 4, overlap: 4 } }), { instanceOf: RangeError, message: /enhance: overlap/ });
    // fewer frames than one enhancer chunk: refused at the call (the default 16 first-chunk frames < the default chunk 24)
    t.throws(() => engine.generate({ prompt: 'x', enhance: true }), { instanceOf: RangeError, message: /at least 24 frames \(one enhancer chunk\) for frames with enhance but received 16/ });
    t.throws(() => engine.generate({ prompt: 'x', frames: 3, enhance: { chunk: 4, overlap: 2 } }), { instanceOf: RangeError, message: /at least 4 frames/ });
    const chunks: Array<{ index: number; frames: number; width: number; height: number }> = [];
    const stage3: NativeEnhanceProgress[] = [];
    const enh = { chunk: 4, overlap: 2, steps: 1, width: 32, height: 32, onProgress: (p: NativeEnhanceProgress) => stage3.push(p) };
    for await (const c of engine.generate({ prompt: 'a ball', frames: 10, steps: 1, enhance: enh })) {
      t.is(c.data.length, c.frames * c.width * c.height * 3);
      chunks.push({ index: c.index, frames: c.frames, width: c.width, height: c.height });
    }
    t.is(chunks.reduce((a, c) => a + c.frames, 0), 10); // (10 - 2) // 2 = 4 chunks -> 10 frames
    t.true(chunks.every((c) => c.width === 32 && c.height === 32));
    t.is(chunks[0]!.index, 0);
    // enhance.onProgress: stage 3's events (the generation's onProgress covers stage 2)
    t.deepEqual(stage3.filter((p) => p.stage === 'denoise').map((p) => p.chunk), [1, 2, 3, 4]); // 1 step x 4 chunks
    t.true(stage3.some((p) => p.stage === 'encode') && stage3.some((p) => p.stage === 'decode'));
  } finally {
    await engine.dispose();
  }
});
