// Post-processing and encoding: Pillow-exact resize, MP4 (h264/yuv420p, frame count) and GIF via ffmpeg, lossless
// PNG frames, the missing-ffmpeg error, and overlap of encoding with generation.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { St2vError } from '../../lib/errors.js';
import { type RgbChunk, checkWriteVideoOptions, writeVideo } from '../../lib/postprocess/encode.js';
import { closePool } from '../../lib/postprocess/pool.js';
import { fitSize, floatToUint8, resizeAndPad, resizeBicubicRgb } from '../../lib/postprocess/resize.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const hasFfmpeg = spawnSync('ffmpeg', ['-version']).status === 0 && spawnSync('ffprobe', ['-version']).status === 0;
const ffTest = hasFfmpeg ? test : test.skip;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'st2v-pp-'));

test.after.always(async () => {
  await closePool();
  fs.rmSync(tmp, { recursive: true, force: true });
});

function pattern(w: number, h: number): Uint8Array {
  const b = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) b[(y * w + x) * 3 + c] = (x * 7 + y * 13 + c * 50 + ((x * y) % 31)) & 255;
  return b;
}

/** Smooth moving frames (compress well, differ per frame). */
function frames(n: number, w: number, h: number, start = 0): Uint8Array {
  const out = new Uint8Array(n * w * h * 3);
  for (let f = 0; f < n; f++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        const o = ((f * h + y) * w + x) * 3;
        out[o] = (x * 4 + (start + f) * 9) & 255;
        out[o + 1] = (y * 4) & 255;
        out[o + 2] = ((start + f) * 20) & 255;
      }
  return out;
}

async function* chunked(total: number, per: number, w: number, h: number, delayMs = 0, log?: string[]): AsyncGenerator<RgbChunk> {
  for (let i = 0; i < total; i += per) {
    const n = Math.min(per, total - i);
    if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
    log?.push(`produced ${i}`);
    yield { data: frames(n, w, h, i), index: i, frames: n, width: w, height: h };
  }
}

function probe(file: string): { codec_name: string; pix_fmt: string; width: number; height: number; nb_read_frames: string } {
  const r = spawnSync('ffprobe', ['-v', 'error', '-count_frames', '-select_streams', 'v:0', '-show_entries', 'stream=codec_name,pix_fmt,width,height,nb_read_frames', '-of', 'json', file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout).streams[0];
}

test('bicubic resize is bit-identical to Pillow 9.4 Image.resize(BICUBIC) (up, down, one axis)', (t) => {
  const ref = JSON.parse(fs.readFileSync(path.join(here, '..', 'helpers', 'pil_resize_sha256.json'), 'utf8')) as Record<string, string>;
  t.is(Object.keys(ref).length, 5);
  for (const [key, sha] of Object.entries(ref)) {
    const [a, b] = key.split('->') as [string, string];
    const [w, h] = a.split('x').map(Number) as [number, number];
    const [ow, oh] = b.split('x').map(Number) as [number, number];
    const out = resizeBicubicRgb(pattern(w, h), w, h, ow, oh);
    t.is(crypto.createHash('sha256').update(out).digest('hex'), sha, key);
  }
});

test('the official 256x256 -> 720x720 -> 1280x720 path: fit, then 280 px black bars', (t) => {
  t.deepEqual(fitSize(256, 256, 1280, 720), { width: 720, height: 720 });
  const src = new Uint8Array(2 * 256 * 256 * 3).fill(200);
  const out = resizeAndPad(src, 2, 256, 256, 1280, 720);
  t.is(out.length, 2 * 1280 * 720 * 3);
  const px = (f: number, x: number, y: number) => out[(f * 720 * 1280 + y * 1280 + x) * 3]!;
  for (const f of [0, 1]) {
    t.is(px(f, 279, 0), 0);
    t.is(px(f, 280, 0), 200);
    t.is(px(f, 999, 719), 200);
    t.is(px(f, 1000, 719), 0);
  }
});

test('float frames in [-1, 1] map to uint8 as (x + 1) * 127.5, rounded and clamped', (t) => {
  t.deepEqual([...floatToUint8(new Float32Array([-1, 1, 0, -2, 2, 0.5]))], [0, 255, 128, 0, 255, 191]);
});

ffTest('MP4 (h264) and WebM (VP9) are yuv420p with exactly the requested frame count', async (t) => {
  for (const [format, codec, container] of [['mp4', 'h264', /mp4/], ['webm', 'vp9', /webm/]] as const) {
    const out = path.join(tmp, `a.${format}`);
    const r = await writeVideo(chunked(21, 8, 64, 48), { output: out });
    t.deepEqual(r, { format, files: [out], frames: 21, width: 64, height: 48, videoWidth: 64, videoHeight: 48 });
    const p = probe(out);
    t.deepEqual([p.codec_name, p.pix_fmt, p.nb_read_frames, p.width, p.height], [codec, 'yuv420p', '21', 64, 48], format);
    const f = spawnSync('ffprobe', ['-v', 'error', '-show_entries', 'format=format_name', '-of', 'csv=p=0', out], { encoding: 'utf8' });
    t.regex(f.stdout, container);
  }
});

ffTest("crf is each encoder's own scale: x264 0-51, VP9 0-63", async (t) => {
  await t.notThrowsAsync(writeVideo(chunked(2, 2, 16, 16), { output: path.join(tmp, 'q.webm'), crf: 63 }));
  await t.throwsAsync(writeVideo(chunked(1, 1, 8, 8), { output: path.join(tmp, 'q2.webm'), crf: 64 }), { instanceOf: RangeError, message: /between 0 and 63 for crf/ });
  await t.throwsAsync(writeVideo(chunked(1, 1, 8, 8), { output: path.join(tmp, 'q2.mp4'), crf: 52 }), { instanceOf: RangeError, message: /between 0 and 51 for crf/ });
});

ffTest('MP4 with resize: 256x256 frames become 1280x720 (official pad path)', async (t) => {
  const out = path.join(tmp, 'hd.mp4');
  const r = await writeVideo(chunked(3, 2, 256, 256), { output: out, resize: { width: 1280, height: 720 } });
  t.is(r.frames, 3);
  const p = probe(out);
  t.deepEqual([p.width, p.height, p.nb_read_frames, p.pix_fmt], [1280, 720, '3', 'yuv420p']);
});

ffTest('odd frame sizes: MP4 and WebM pad one black row / column, and the result says so', async (t) => {
  for (const ext of ['mp4', 'webm']) {
    const out = path.join(tmp, `odd.${ext}`);
    const r = await writeVideo(chunked(3, 3, 7, 5), { output: out });
    t.deepEqual([r.width, r.height, r.videoWidth, r.videoHeight], [7, 5, 8, 6], ext);
    const p = probe(out);
    t.deepEqual([p.width, p.height, p.nb_read_frames], [8, 6, '3'], ext);
  }
  const g = await writeVideo(chunked(2, 2, 7, 5), { output: path.join(tmp, 'odd.gif') });
  t.deepEqual([g.width, g.height, g.videoWidth], [7, 5, undefined]);
});

ffTest('the format comes from the extension (.mov / .m4v are MP4); any other extension needs an explicit format', async (t) => {
  for (const ext of ['mov', 'm4v', 'MP4']) {
    const out = path.join(tmp, `fam.${ext}`);
    const r = await writeVideo(chunked(2, 2, 16, 16), { output: out });
    t.is(r.format, 'mp4', ext);
    t.is(probe(out).codec_name, 'h264', ext);
  }
  const noExt = path.join(tmp, 'plain');
  t.is((await writeVideo(chunked(2, 2, 16, 16), { output: noExt })).format, 'mp4');
  const mkv = path.join(tmp, 'a.mkv');
  await t.throwsAsync(writeVideo(chunked(2, 2, 16, 16), { output: mkv }), {
    instanceOf: RangeError,
    message: /Expected a name ending in \.mp4, \.m4v, \.mov, \.webm, \.gif or \.png \(or an explicit format\) for output but received ".*a\.mkv"/,
  });
  t.false(fs.existsSync(mkv), 'nothing written');
  const r = await writeVideo(chunked(2, 2, 16, 16), { output: mkv, format: 'mp4' });
  t.is(r.format, 'mp4');
  t.is(probe(mkv).codec_name, 'h264');
});

ffTest('animated GIF decodes back with every frame', async (t) => {
  const out = path.join(tmp, 'a.gif');
  await writeVideo(chunked(10, 4, 40, 30), { output: out });
  const p = probe(out);
  t.is(p.codec_name, 'gif');
  t.is(p.nb_read_frames, '10');
  t.deepEqual([p.width, p.height], [40, 30]);
});

ffTest('PNG frames decode back (ffmpeg) to exactly the input pixels', async (t) => {
  const dir = path.join(tmp, 'png');
  const r = await writeVideo(chunked(5, 2, 20, 14), { output: dir, format: 'png' });
  t.is(r.files.length, 5);
  const want = frames(5, 20, 14);
  for (let f = 0; f < 5; f++) {
    const d = spawnSync('ffmpeg', ['-v', 'error', '-i', r.files[f]!, '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'], { maxBuffer: 1 << 24 });
    t.is(d.status, 0, String(d.stderr));
    t.true(Buffer.from(want.subarray(f * 20 * 14 * 3, (f + 1) * 20 * 14 * 3)).equals(d.stdout), `frame ${f}`);
  }
  t.is(path.basename(r.files[4]!), 'frame_00004.png');
});

ffTest('chunk k is written while chunk k+1 is still being produced', async (t) => {
  // Warm the pool first (a cold worker thread takes seconds to start under tsx on a busy machine).
  await writeVideo(chunked(1, 1, 32, 32), { output: path.join(tmp, 'warm.mp4') });
  const log: string[] = [];
  const out = path.join(tmp, 'overlap.mp4');
  await writeVideo(chunked(12, 4, 32, 32, 400, log), {
    output: out,
    onChunkWritten: (i) => log.push(`written ${i.index}`),
  });
  t.log(log.join(', '));
  t.true(log.indexOf('written 0') < log.indexOf('produced 8'), 'chunk 0 reached ffmpeg before the last chunk was produced');
  t.true(log.indexOf('written 4') > log.indexOf('produced 4'));
  t.is(log.at(-1), 'written 8');
  t.is(probe(out).nb_read_frames, '12');
});

// serial: runs before the concurrent tests, so its environment change is not seen by them
test.serial('a missing ffmpeg binary is a clear ERR_NO_FFMPEG', async (t) => {
  const prev = process.env.ST2V_FFMPEG;
  process.env.ST2V_FFMPEG = path.join(tmp, 'no-such-ffmpeg');
  try {
    const err = await t.throwsAsync(writeVideo(chunked(2, 2, 8, 8), { output: path.join(tmp, 'x.mp4') }), { instanceOf: St2vError });
    t.is((err as St2vError).code, 'ERR_NO_FFMPEG');
    t.regex(err!.message, /apt-get install ffmpeg/);
  } finally {
    if (prev === undefined) delete process.env.ST2V_FFMPEG;
    else process.env.ST2V_FFMPEG = prev;
  }
});

test('bad writeVideo options are TypeError / RangeError naming the option', async (t) => {
  await t.throwsAsync(writeVideo(chunked(1, 1, 8, 8), { output: '' }), { instanceOf: RangeError, message: /for output/ });
  await t.throwsAsync(writeVideo(chunked(1, 1, 8, 8), { output: 'a.mp4', format: 'avi' as never }), { instanceOf: RangeError, message: /one of mp4, webm, gif, png for format but received "avi"/ });
  await t.throwsAsync(writeVideo(chunked(1, 1, 8, 8), { output: 'a.mp4', fps: 0 }), { instanceOf: RangeError, message: /for fps/ });
  // checkWriteVideoOptions: the same checks up front, nothing written
  const out = path.join(tmp, 'checked.mp4');
  t.throws(() => checkWriteVideoOptions({ output: out, fps: 0 }), { instanceOf: RangeError, message: /for fps/ });
  t.throws(() => checkWriteVideoOptions({ output: out, resize: { width: 1, height: 8 } }), { instanceOf: RangeError, message: /between 2 and 8192 for resize\.width/ });
  t.throws(() => checkWriteVideoOptions({ output: path.join(tmp, 'c.avi') }), { instanceOf: RangeError, message: /for output/ });
  t.throws(() => checkWriteVideoOptions({ output: out, format: 'avi' as never }), { instanceOf: RangeError, message: /for format/ });
  t.throws(() => checkWriteVideoOptions({ output: out, crf: 1.5 }), { instanceOf: RangeError, message: /for crf/ });
  t.notThrows(() => checkWriteVideoOptions({ output: path.join(tmp, 'c.avi'), format: 'webm', crf: 40, fps: 24, resize: { width: 1280, height: 720 } }));
  t.false(fs.existsSync(out));
});

test('frame buffers are transferred to the pool (detached here); views into larger buffers are copied first', async (t) => {
  const { processFrames } = await import('../../lib/postprocess/pool.js');
  const whole = frames(2, 6, 4);
  const want = whole.slice();
  const out = await processFrames({ data: whole, frames: 2, width: 6, height: 4, resize: null });
  t.is(whole.byteLength, 0, 'the input was moved, not copied');
  t.deepEqual(out, want);
  const big = new Uint8Array(10 + want.length);
  big.set(want, 10);
  const view = big.subarray(10);
  const out2 = await processFrames({ data: view, frames: 2, width: 6, height: 4, resize: null });
  t.is(big.byteLength, 10 + want.length, 'the larger buffer stays usable');
  t.deepEqual(out2, want);
});
