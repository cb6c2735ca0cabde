// CLIP score through the public API and the CLI (issue 8): the tiny OpenCLIP model of golden/clip converted with
// `st2v convert` into a model folder, frames in a lossless video decoded by the eval path, scores against
// native/tests/data/clip_score (tools/make_clip_score_golden.py: NumPy float64 open_clip reference, Pillow resize).
// Needs $ST2V_SHARED (tiny weights, tokenizer) and ffmpeg for the video cases; skips with a message otherwise.
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { convertModel } from '../../lib/convert/convert.js';
import { St2vError } from '../../lib/errors.js';
import { clipScoreFrames, evaluateVideo, hasFfmpeg } from '../../lib/eval/index.js';
import { runMain } from '../helpers/capture.js';
import { readNpy } from '../helpers/npy.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const shared = path.resolve(root, process.env.ST2V_SHARED ?? '../shared');
const clipGolden = path.join(shared, 'golden', 'clip');
const data = path.join(root, 'native', 'tests', 'data', 'clip_score');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'st2v-clip-score-'));
test.after.always(() => fs.rmSync(tmp, { recursive: true, force: true }));

const within = (got: number, ref: number) => Math.abs(got - ref) <= 1e-4 * Math.max(1, Math.abs(ref));

let modelDir: string | undefined | null = null;
/** The tiny OpenCLIP model converted to a model folder (+ open_clip's BPE vocabulary), once per run. */
async function model(t: ExecutionContext): Promise<string | undefined> {
  if (modelDir !== null) return modelDir;
  modelDir = undefined;
  if (!fs.existsSync(path.join(clipGolden, 'openclip_tiny.safetensors'))) {
    t.log(`SKIP: ${clipGolden}/openclip_tiny.safetensors not found (set ST2V_SHARED)`);
    return undefined;
  }
  const dir = path.join(tmp, 'openclip-tiny');
  const r = await convertModel({ input: path.join(clipGolden, 'openclip_tiny.safetensors'), output: dir, dtype: 'f32', hash: false });
  t.deepEqual(Object.keys(r.components).sort(), ['image_encoder', 'text_encoder', 'text_last_block']);
  fs.copyFileSync(path.join(clipGolden, 'bpe_simple_vocab_16e6.txt.gz'), path.join(dir, 'bpe_simple_vocab_16e6.txt.gz'));
  return (modelDir = dir);
}

const prompts = (): string[] => JSON.parse(fs.readFileSync(path.join(clipGolden, 'tokens', 'prompts.json'), 'utf8')) as string[];
const PROMPT_ROWS = [0, 2, 40]; // rows of text_ids.npy / scores.npy (see the data manifest)
const scores = () => readNpy(path.join(data, 'scores.npy')); // [prompt, frame] f64

/** frames_a.npy (2 frames 64x48) as a lossless FFV1 video. */
function videoA(): string {
  const f = readNpy(path.join(data, 'frames_a.npy'));
  const raw = path.join(tmp, 'a.rgb');
  fs.writeFileSync(raw, f.data as Uint8Array);
  const out = path.join(tmp, 'a.mkv');
  const r = spawnSync('ffmpeg', ['-v', 'error', '-y', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', '64x48', '-r', '8', '-i', raw, '-c:v', 'ffv1', '-pix_fmt', 'bgr0', out]);
  if (r.status !== 0) throw new Error(`ffmpeg failed: ${String(r.stderr)}`);
  return out;
}

/** The converted model and frames_a as a video, for the cases that decode a file; undefined (logged) when either is
 * missing (no ST2V_SHARED, no ffmpeg). */
async function withVideo(t: ExecutionContext): Promise<{ dir: string; video: string } | undefined> {
  const dir = await model(t);
  if (!dir) return undefined;
  if (!hasFfmpeg()) {
    t.log('SKIP: ffmpeg not found');
    return undefined;
  }
  return { dir, video: videoA() };
}

test.serial('evaluateVideo clip: per-frame 100*cos and the mean match the reference (tiny OpenCLIP, converted folder)', async (t) => {
  const s = await withVideo(t);
  if (!s) return t.pass();
  const { dir, video } = s;
  const ref = scores();
  const ids = readNpy(path.join(data, 'text_ids.npy'));
  for (let p = 0; p < PROMPT_ROWS.length; p++) {
    const prompt = prompts()[PROMPT_ROWS[p]!]!;
    const r = await evaluateVideo(video, { metrics: ['clip'], prompt, clipModel: dir, perFrame: true });
    t.is(r.frames, 2);
    const c = r.clip!;
    t.is(c.frames, 2);
    t.false(c.clamped);
    // Tokens = the golden open_clip ids (start ... end, no padding).
    const row = Array.from((ids.data as BigInt64Array).subarray(p * 77, (p + 1) * 77), Number);
    t.deepEqual(c.tokens, row.slice(0, row.indexOf(49407) + 1), `tokens of prompt ${PROMPT_ROWS[p]}`);
    for (let f = 0; f < 2; f++) {
      const want = (ref.data as Float64Array)[p * 3 + f]!;
      t.true(within(c.perFrame![f]!, want), `prompt ${PROMPT_ROWS[p]} frame ${f}: ${c.perFrame![f]} vs ${want}`);
    }
    const mean = ((ref.data as Float64Array)[p * 3]! + (ref.data as Float64Array)[p * 3 + 1]!) / 2;
    t.true(within(c.score, mean), `mean ${c.score} vs ${mean}`);
    t.true(c.score < 0, 'raw (negative) cosines are kept');
  }
});

test.serial('clipScoreFrames on in-memory rgb24 (downscaled 250x240 frame) matches the reference', async (t) => {
  const dir = await model(t);
  if (!dir) return t.pass();
  const f = readNpy(path.join(data, 'frames_b.npy'));
  const r = await clipScoreFrames(f.data as Uint8Array, 1, 250, 240, { prompt: prompts()[0]!, clipModel: dir });
  const want = (scores().data as Float64Array)[2]!;
  t.true(within(r.perFrame[0]!, want), `${r.perFrame[0]} vs ${want}`);
  t.true(within(r.score, want));
});

test.serial('st2v eval --metrics clip --json prints the score', async (t) => {
  const s = await withVideo(t);
  if (!s) return t.pass();
  const { dir, video } = s;
  const { code, stdout } = await runMain(['eval', video, '--metrics', 'clip', '--prompt', prompts()[0]!, '--model', dir, '--json', '--per-frame', '--no-progress']);
  t.is(code, 0, stdout);
  const r = JSON.parse(stdout) as { clip: { score: number; perFrame: number[] } };
  const ref = scores().data as Float64Array;
  t.true(within(r.clip.score, (ref[0]! + ref[1]!) / 2), String(r.clip.score));
  t.is(r.clip.perFrame.length, 2);
});

test.serial('st2v eval without --metrics: clip joins the defaults given a prompt and a model; a prompt alone gets a note', async (t) => {
  const s = await withVideo(t);
  if (!s) return t.pass();
  const { dir, video } = s;
  const run = (args: string[]) =>
    runMain(['eval', video, '--prompt', prompts()[0]!, '--flow-size', '0', '--json', '--no-progress', ...args]);
  type Out = { clip?: { score: number }; scuts?: unknown; ofs?: number; mawe?: unknown };
  const withModel = await run(['--model', dir]);
  t.is(withModel.code, 0, withModel.stderr);
  const a = JSON.parse(withModel.stdout) as Out;
  const ref = scores().data as Float64Array;
  t.true(a.clip !== undefined && within(a.clip.score, (ref[0]! + ref[1]!) / 2), withModel.stdout);
  t.truthy(a.scuts);
  t.is(typeof a.ofs, 'number');
  t.truthy(a.mawe);
  t.notRegex(withModel.stderr, /no CLIP score/);
  const alone = await run([]);
  t.is(alone.code, 0, alone.stderr);
  const b = JSON.parse(alone.stdout) as Out;
  t.is(b.clip, undefined);
  t.truthy(b.scuts);
  t.regex(alone.stderr, /note: no CLIP score: it needs a CLIP model/);
});

test.serial('clip errors: no prompt / no model -> ERR_INVALID_ARG, missing folder -> ERR_NOT_FOUND, no last text block -> ERR_WEIGHTS_MISSING', async (t) => {
  const s = await withVideo(t);
  if (!s) return t.pass();
  const { dir, video } = s;
  const code = async (p: Promise<unknown>) => {
    const e = await t.throwsAsync(p);
    t.true(e instanceof St2vError, String(e));
    return (e as St2vError).code;
  };
  t.is(await code(evaluateVideo(video, { metrics: ['clip'], clipModel: dir })), 'ERR_INVALID_ARG');
  t.is(await code(evaluateVideo(video, { metrics: ['clip'], prompt: '  ', clipModel: dir })), 'ERR_INVALID_ARG');
  t.is(await code(evaluateVideo(video, { metrics: ['clip'], prompt: 'a cat' })), 'ERR_INVALID_ARG');
  t.is(await code(evaluateVideo(video, { metrics: ['clip'], prompt: 'a cat', clipModel: path.join(tmp, 'nope') })), 'ERR_NOT_FOUND');
  // A StreamingT2V-like folder: image_encoder + text_encoder only (no text_last_block).
  const partial = path.join(tmp, 'partial');
  fs.mkdirSync(partial, { recursive: true });
  for (const f of ['image_encoder.safetensors', 'text_encoder.safetensors', 'bpe_simple_vocab_16e6.txt.gz']) fs.copyFileSync(path.join(dir, f), path.join(partial, f));
  const e = await t.throwsAsync(evaluateVideo(video, { metrics: ['clip'], prompt: 'a cat', clipModel: partial }));
  t.is((e as St2vError).code, 'ERR_WEIGHTS_MISSING');
  t.regex(e!.message, /text_last_block/);
  // No tokenizer next to the model.
  const noTok = path.join(tmp, 'notok');
  fs.mkdirSync(noTok, { recursive: true });
  for (const f of ['image_encoder.safetensors', 'text_encoder.safetensors', 'text_last_block.safetensors']) fs.copyFileSync(path.join(dir, f), path.join(noTok, f));
  t.is(await code(evaluateVideo(video, { metrics: ['clip'], prompt: 'a cat', clipModel: noTok })), 'ERR_NOT_FOUND');
  // ... but an explicit tokenizer works.
  const ok = await evaluateVideo(video, {
    metrics: ['clip'],
    prompt: prompts()[0]!,
    clipModel: noTok,
    clipTokenizer: path.join(clipGolden, 'bpe_simple_vocab_16e6.txt.gz'),
  });
  const ref = scores().data as Float64Array;
  t.true(within(ok.clip!.score, (ref[0]! + ref[1]!) / 2));
});
