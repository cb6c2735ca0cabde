// Evaluation metrics through the public TS layer against $ST2V_SHARED/golden (scenecut, mawe).
// The scenecut videos are regenerated with golden/scenecut/make_videos.sh into a temp cache (shared with
// the gtest suite) when ffmpeg is present; without ffmpeg those tests skip with a message.
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { St2vError } from '../../lib/errors.js';
import { decodeFrames, evaluateVideo, hasFfmpeg, probeVideo, scenecutDetect, scenecutVideo } from '../../lib/eval/index.js';
import type { ScutsConfig } from '../../lib/eval/index.js';
import { evalNative } from '../../lib/eval/native.js';
import { captureOutput } from '../helpers/capture.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const shared = path.resolve(root, process.env.ST2V_SHARED ?? '../shared');
const scenecutRef = path.join(shared, 'golden', 'scenecut', 'scenecut_reference.json');
const maweRef = path.join(shared, 'golden', 'mawe', 'warp_reference.json');

let videosDir: string | undefined | null = null;
function videos(t: ExecutionContext): string | undefined {
  if (videosDir !== null) return videosDir;
  videosDir = undefined;
  if (!fs.existsSync(scenecutRef)) {
    t.log(`SKIP: ${scenecutRef} not found (set ST2V_SHARED)`);
    return undefined;
  }
  if (process.env.ST2V_EVAL_VIDEOS) return (videosDir = process.env.ST2V_EVAL_VIDEOS);
  const cache = path.join(os.tmpdir(), 'st2v-golden-scenecut');
  if (fs.existsSync(path.join(cache, 'videos', 'v13_smallstep_720_140.mp4'))) return (videosDir = path.join(cache, 'videos'));
  if (!hasFfmpeg()) {
    t.log('SKIP: ffmpeg not found, cannot regenerate the golden/scenecut videos (apt-get install ffmpeg)');
    return undefined;
  }
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'st2v-golden-scenecut.tmp'));
  fs.copyFileSync(path.join(shared, 'golden', 'scenecut', 'make_videos.sh'), path.join(work, 'make_videos.sh'));
  const r = spawnSync('bash', [path.join(work, 'make_videos.sh')], { stdio: 'ignore' });
  if (r.status !== 0) throw new Error('make_videos.sh failed');
  try {
    fs.renameSync(work, cache);
  } catch {
    fs.rmSync(work, { recursive: true, force: true }); // made by another process meanwhile
  }
  return (videosDir = path.join(cache, 'videos'));
}

interface RefRun {
  processing_size: [number, number];
  cuts: number[];
  per_frame: string | { content_val: Array<number | null>; delta_hue: Array<number | null>; delta_sat: Array<number | null>; delta_lum: Array<number | null>; adaptive_ratio: Array<number | null> };
}
type RefResults = Record<string, Record<'auto_downscale' | 'no_downscale', RefRun>>;
const VERSION_KEY = { '0.6.2': '0.6.2', '0.6.3': '0.6.3', current: 'head-131c5f60 (0.7.1+)' } as const;

function perFrame(res: RefResults, ver: string, mode: 'auto_downscale' | 'no_downscale') {
  const pf = res[ver]![mode].per_frame;
  if (typeof pf === 'string') return perFrame(res, pf.replace('identical to ', ''), mode);
  return pf;
}

test.serial('SCuts: per-frame content values and cuts identical to golden/scenecut (all videos, versions, downscale modes)', async (t) => {
  const dir = videos(t);
  if (!dir) return t.pass();
  const ref = JSON.parse(fs.readFileSync(scenecutRef, 'utf8')) as { videos: Record<string, { width: number; height: number; num_frames: number; results: RefResults }> };
  let configs = 0;
  const all: ScutsConfig[] = [];
  for (const version of ['0.6.2', '0.6.3', 'current'] as const) for (const downscale of [true, false]) all.push({ version, downscale });
  for (const [name, v] of Object.entries(ref.videos)) {
    // One decode for all six configurations.
    const res = await scenecutVideo(path.join(dir, name), all, { perFrame: true });
    t.is(res.frames, v.num_frames, name);
    all.forEach((cfg, i) => {
      const mode = cfg.downscale ? 'auto_downscale' : 'no_downscale';
      const what = `${name} ${cfg.version} ${mode}`;
      const r = v.results[VERSION_KEY[cfg.version]]![mode];
      const pf = perFrame(v.results, VERSION_KEY[cfg.version], mode);
      const got = res.results[i]!;
      t.deepEqual([got.processingSize.width, got.processingSize.height], r.processing_size, `${what} size`);
      // Frame 0 has no stored value in the reference (null); it enters the detector as 0.
      t.deepEqual(got.perFrame!.content.slice(1), pf.content_val.slice(1), `${what} content_val`);
      t.deepEqual(got.perFrame!.deltaHue.slice(1), pf.delta_hue.slice(1), `${what} delta_hue`);
      t.deepEqual(got.perFrame!.deltaSat.slice(1), pf.delta_sat.slice(1), `${what} delta_sat`);
      t.deepEqual(got.perFrame!.deltaLum.slice(1), pf.delta_lum.slice(1), `${what} delta_lum`);
      t.deepEqual(got.perFrame!.adaptiveRatio, pf.adaptive_ratio, `${what} adaptive_ratio`);
      t.deepEqual(got.cuts, r.cuts, `${what} cuts`);
      configs++;
    });
  }
  t.is(configs, 42);
});

test.serial('flow: the default estimator recovers the 2 px/frame pan of v06 (median within 0.1 px)', async (t) => {
  const dir = videos(t);
  if (!dir) return t.pass();
  const file = path.join(dir, 'v06_pan_1280x720_240.mp4');
  const info = probeVideo(file);
  let frames: Uint8Array | undefined;
  for await (const c of decodeFrames(file, info, 12)) {
    frames = c.data;
    break;
  }
  const fb = info.width * info.height * 3;
  const flow = await evalNative().evalFlow(frames!.subarray(10 * fb, 11 * fb), frames!.subarray(11 * fb, 12 * fb), info.width, info.height);
  const dx = Float32Array.from(flow.subarray(0, info.width * info.height)).sort();
  const median = dx[dx.length >> 1]!;
  t.log(`v06 frames 10->11: median dx = ${median.toFixed(4)} px (truth -2)`);
  t.true(Math.abs(median + 2) <= 0.1, `median dx ${median}`);
});

test('MAWE: golden/mawe warp cases reproduced (hits exact, values to float32 precision)', (t) => {
  if (!fs.existsSync(maweRef)) {
    t.log(`SKIP: ${maweRef} not found (set ST2V_SHARED)`);
    return t.pass();
  }
  const ref = JSON.parse(fs.readFileSync(maweRef, 'utf8')) as {
    c: number;
    mawe_over_finite_cases_1to5: number;
    cases: Array<{ name: string; shape_hw: [number, number]; left_rgb_b64: string; right_rgb_b64: string; flow_b64: string; motion_mean_norm: number; warp_error: number; hit_pixels: number; ratio_warp_over_c_motion: number | null }>;
  };
  const native = evalNative();
  const close = (a: number, b: number) => Math.abs(a - b) <= 1e-6 * Math.max(1, Math.abs(b));
  const motion: number[] = [], motionSq: number[] = [], warp: number[] = [];
  for (const c of ref.cases) {
    const [h, w] = c.shape_hw;
    const f0 = new Uint8Array(Buffer.from(c.left_rgb_b64, 'base64'));
    const f1 = new Uint8Array(Buffer.from(c.right_rgb_b64, 'base64'));
    const fl = Buffer.from(c.flow_b64, 'base64');
    const flow = new Float32Array(fl.buffer.slice(fl.byteOffset, fl.byteOffset + fl.byteLength));
    const m = native.evalWarpMetrics(f0, f1, flow, w, h);
    t.is(m.hits, c.hit_pixels, c.name);
    t.true(close(m.motion, c.motion_mean_norm), `${c.name} motion ${m.motion} vs ${c.motion_mean_norm}`);
    t.true(close(m.warpErr, c.warp_error), `${c.name} warp ${m.warpErr} vs ${c.warp_error}`);
    const one = native.evalMaweSummary(Float64Array.of(m.motion), Float64Array.of(m.motionSq), Float64Array.of(m.warpErr), 'code', ref.c);
    if (c.ratio_warp_over_c_motion === null) t.is(one.mawe, Infinity, c.name);
    else t.true(close(one.mawe, c.ratio_warp_over_c_motion), `${c.name} ratio ${one.mawe}`);
    if (motion.length < 5) {
      motion.push(m.motion);
      motionSq.push(m.motionSq);
      warp.push(m.warpErr);
    }
  }
  const s = native.evalMaweSummary(Float64Array.from(motion), Float64Array.from(motionSq), Float64Array.from(warp), 'code', ref.c);
  t.true(close(s.mawe, ref.mawe_over_finite_cases_1to5));
});

test('BAD CALL - eval options are validated (CLIP without a prompt is ERR_INVALID_ARG)', async (t) => {
  await t.throwsAsync(evaluateVideo('x.mp4', { metrics: ['nope' as 'scuts'] }), { instanceOf: RangeError });
  await t.throwsAsync(evaluateVideo('x.mp4', { scutsVersion: '0.5' as '0.6.2' }), { instanceOf: RangeError });
  await t.throwsAsync(evaluateVideo('x.mp4', { maweC: -1 }), { instanceOf: RangeError });
  const clip = await t.throwsAsync(evaluateVideo('x.mp4', { metrics: ['clip'] }));
  t.true(clip instanceof St2vError);
  t.is((clip as St2vError).code, 'ERR_INVALID_ARG');
  t.regex((clip as St2vError).message, /prompt/);
  t.throws(() => scenecutDetect([0, 1, 2], 'bad' as 'current'), { instanceOf: RangeError });
  if (hasFfmpeg()) {
    const missing = await t.throwsAsync(evaluateVideo(path.join(os.tmpdir(), 'st2v-no-such-video.mp4'), { metrics: ['scuts'] }));
    t.is((missing as St2vError).code, 'ERR_IO');
  }
  const native = evalNative();
  const bad = t.throws(() => native.evalWarpMetrics(new Uint8Array(5), new Uint8Array(5), new Float32Array(2), 1, 1));
  t.is((bad as { code?: string }).code, 'ERR_INVALID_ARG');
});

test.serial('MAWE end to end: a still video has zero motion -> MAWE inf (official rule); a panning one is finite', async (t) => {
  if (!hasFfmpeg()) {
    t.log('SKIP: ffmpeg not found');
    return t.pass();
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'st2v-eval-'));
  try {
    const still = path.join(dir, 'still.mp4');
    const pan = path.join(dir, 'pan.mp4');
    const enc = ['-c:v', 'libx264rgb', '-qp', '0', '-pix_fmt', 'bgr24'];
    t.is(spawnSync('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=s=96x64:r=10', '-frames:v', '1', '-vf', 'loop=loop=5:size=1', '-frames:v', '6', ...enc, still]).status, 0);
    t.is(spawnSync('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', 'mandelbrot=s=320x240:r=10', '-frames:v', '1', '-vf', "loop=loop=7:size=1,crop=96:64:x='3*n':y=40", '-frames:v', '8', ...enc, pan]).status, 0);
    const s = await evaluateVideo(still, { metrics: ['ofs', 'mawe'], flowSize: 0, perFrame: true });
    t.is(s.frames, 6);
    t.is(s.mawe!.pairs, 5);
    t.is(s.ofs, 0);
    t.is(s.mawe!.warpError, 0);
    t.is(s.mawe!.mawe, Infinity);
    const paper = await evaluateVideo(still, { metrics: ['mawe'], flowSize: 0, maweVariant: 'paper' });
    t.is(paper.mawe!.mawe, Infinity);
    const p = await evaluateVideo(pan, { metrics: ['ofs', 'mawe'], flowSize: 0, perFrame: true });
    t.is(p.mawe!.pairs, 7);
    t.true(p.ofs! > 1.5 && p.ofs! < 4.5, `ofs ${p.ofs}`); // 3 px/frame pan over mostly textured content
    t.true(Number.isFinite(p.mawe!.mawe) && p.mawe!.mawe >= 0);
    // flowSize resizes first (default 720, the paper's protocol): the vectors scale with the frame (x3 here).
    const big = await evaluateVideo(pan, { metrics: ['ofs'], flowSize: 288, chunkFrames: 4 });
    t.true(big.ofs! > p.ofs! * 2.5 && big.ofs! < p.ofs! * 4, `288x288 ofs ${big.ofs} vs native ${p.ofs}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.serial('SCuts: aborting stops decoding with ERR_CANCELLED', async (t) => {
  const dir = videos(t);
  if (!dir) return t.pass();
  const ac = new AbortController();
  const err = await t.throwsAsync(
    evaluateVideo(path.join(dir, 'v02_hardcuts4_256_240.mp4'), {
      metrics: ['scuts'],
      chunkFrames: 16,
      signal: ac.signal,
      onProgress: (p) => {
        if (p.done >= 32) ac.abort();
      },
    }),
  );
  t.is((err as St2vError).code, 'ERR_CANCELLED');
});

test('RAFT: the tiny torchvision-made model gives the torchvision flow through the addon; MAWE can run on it', async (t) => {
  const dir = path.join(root, 'native', 'eval', 'testdata');
  const weights = path.join(dir, 'raft_tiny.safetensors');
  const io = fs.readFileSync(path.join(dir, 'raft_tiny_io.bin'));
  const W = 128, H = 128, fb = W * H * 3, nf = 2 * W * H;
  const f0 = new Uint8Array(io.buffer, io.byteOffset, fb);
  const f1 = new Uint8Array(io.buffer, io.byteOffset + fb, fb);
  const ref = new Float32Array(io.buffer.slice(io.byteOffset + 2 * fb + nf * 4, io.byteOffset + 2 * fb + 2 * nf * 4));
  const flow = await evalNative().evalFlow(f0, f1, W, H, { raft: weights });
  let bad = 0;
  for (let i = 0; i < nf; i++) if (Math.abs(flow[i]! - ref[i]!) > 1e-4 * Math.max(1, Math.abs(ref[i]!))) bad++;
  t.is(bad, 0);
  const missing = await t.throwsAsync(evaluateVideo('x.mp4', { metrics: ['mawe'], raftWeights: path.join(dir, 'nope.safetensors') }));
  t.is((missing as St2vError).code, 'ERR_WEIGHTS_MISSING');
  await t.throwsAsync(evaluateVideo('x.mp4', { metrics: ['mawe'], raftWeights: weights, flowSize: 100 }), { instanceOf: RangeError });
  // Two 128x128 frames through the MAWE pipeline with RAFT.
  const both = new Uint8Array(2 * fb);
  both.set(f0, 0);
  both.set(f1, fb);
  const pairs = await evalNative().evalMawePairs(both, 2, W, H, { size: 0, raft: weights });
  t.is(pairs.motion.length, 1);
  let s = 0;
  for (let i = 0; i < W * H; i++) s += Math.hypot(ref[i]!, ref[W * H + i]!);
  t.true(Math.abs(pairs.motion[0]! - s / (W * H)) <= 1e-4 * Math.max(1, s / (W * H)));
});

test.serial('CLI: st2v eval prints SCuts as JSON and rejects unknown metrics', async (t) => {
  const dir = videos(t);
  if (!dir) return t.pass();
  const { Command } = await import('commander');
  const { register } = await import('../../lib/cli/commands/eval.js');
  const program = new Command('st2v').exitOverride();
  register(program);
  const { stdout: out } = await captureOutput(() =>
    program.parseAsync(['eval', path.join(dir, 'v10_rapid8_256_200.mp4'), '--metrics', 'scuts', '--scuts-version', '0.6.3', '--json', '--no-progress'], { from: 'user' }),
  );
  const r = JSON.parse(out) as { frames: number; scuts: { cuts: number[]; count: number; version: string } };
  t.is(r.frames, 200);
  t.is(r.scuts.version, '0.6.3');
  t.deepEqual(r.scuts.cuts, [15, 31, 47, 63, 79, 95, 111, 127, 143, 159, 175, 191]);
  const p2 = new Command('st2v').exitOverride();
  register(p2);
  await t.throwsAsync(p2.parseAsync(['eval', 'x.mp4', '--metrics', 'scuts,nope'], { from: 'user' }), { instanceOf: RangeError });
});
