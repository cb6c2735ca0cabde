// The st2v CLI: --help of every command (a child process, as a user runs it), one-line errors with codes and no
// stack trace, and `generate` end to end in-process against the fake native engine (plain progress lines when
// stderr is not a TTY, an MP4 with the requested frames).
import test from 'ava';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { main } from '../../lib/cli/main.js';
import { setNativeEngineFactoryForTesting } from '../../lib/engine.js';
import { runMain } from '../helpers/capture.js';
import { createFakeEngine } from '../helpers/fake_engine.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'st2v-cli-'));
const hasFfmpeg = spawnSync('ffmpeg', ['-version']).status === 0;

test.after.always(() => fs.rmSync(tmp, { recursive: true, force: true }));

function cli(args: string[]) {
  return spawnSync(process.execPath, ['--import=tsx', path.join(root, 'lib', 'cli', 'main.ts'), ...args], { encoding: 'utf8', cwd: root, timeout: 60_000 });
}

const run = runMain;

test('st2v --help lists every command; each command has its own --help', (t) => {
  const r = cli(['--help']);
  t.is(r.status, 0, r.stderr);
  for (const c of ['generate', 'info', 'bench', 'convert', 'verify', 'eval', 'enhance']) t.regex(r.stdout, new RegExp(`^  ${c}\\b`, 'm'), c);
  const g = cli(['generate', '--help']);
  t.is(g.status, 0);
  for (const o of ['--output', '--frames', '--model', '--seed', '--steps', '--threads', '--guidance', '--negative', '--format']) t.true(g.stdout.includes(o), o);
  t.regex(g.stdout, /UNTRAINED/);
});

test('a bad argument prints one line naming it and exits 1 without a stack trace', (t) => {
  const r = cli(['generate', 'a red ball', '-o', path.join(tmp, 'x.mp4'), '--frames', 'many']);
  t.is(r.status, 1);
  t.regex(r.stderr, /Expected an integer for --frames/);
  t.notRegex(r.stderr, /\n\s+at /);
});

test('an output name of no format we write fails before the model loads, naming the option', (t) => {
  const out = path.join(tmp, 'x.mkv');
  const r = cli(['generate', 'a red ball', '-o', out, '--frames', '8', '--steps', '1']);
  t.is(r.status, 1);
  t.regex(r.stderr, /^st2v: Expected a name ending in \.mp4, \.m4v, \.mov, \.webm, \.gif or \.png \(or an explicit format\) for output but received ".*x\.mkv"\n$/);
  t.false(fs.existsSync(out));
  t.notRegex(r.stderr, /^model:/m, 'no model was loaded');
});

test('bad writer options (--fps, --size) fail before the model loads, naming the option', (t) => {
  const fps = cli(['generate', 'a red ball', '-o', path.join(tmp, 'f.mp4'), '--fps', '1000']);
  t.is(fps.status, 1);
  t.regex(fps.stderr, /^st2v: Expected a number between 0\.1 and 240 for fps but received 1000\n$/);
  const size = cli(['generate', 'a red ball', '-o', path.join(tmp, 'f.mp4'), '--size', '0x0']);
  t.is(size.status, 1);
  t.regex(size.stderr, /--size.*Expected WIDTHxHEIGHT with sides from 2 to 8192/);
  for (const r of [fps, size]) t.notRegex(r.stderr, /^model:/m, 'no model was loaded');
});

test.serial('St2vError prints "st2v: <message> (<code>)" and exits 1', async (t) => {
  const r = await run(['info', '--model', path.join(tmp, 'nope')]);
  t.is(r.code, 1);
  t.regex(r.stderr, /^st2v: no model\.json in .*nope .*\(ERR_NOT_FOUND\)\n$/);
});

test.serial('a range error from the API is one line too', async (t) => {
  const fake = createFakeEngine();
  setNativeEngineFactoryForTesting(() => fake.engine);
  try {
    const r = await run(['generate', 'x', '-o', path.join(tmp, 'y.png'), '--format', 'png', '--frames', '0']);
    t.is(r.code, 1);
    t.regex(r.stderr, /st2v: Expected an integer between 1 and 100000 for frames but received 0\n$/);
    t.true(fake.stats.disposed, 'the engine was disposed after the error');
  } finally {
    setNativeEngineFactoryForTesting(undefined);
  }
});

(hasFfmpeg ? test.serial : test.skip)('generate writes an MP4 with the requested frames and plain progress lines off a TTY', async (t) => {
  const fake = createFakeEngine({ width: 16, height: 12, firstChunkFrames: 4, chunkFrames: 3, stepMs: 1 });
  setNativeEngineFactoryForTesting(() => fake.engine);
  const out = path.join(tmp, 'ball.mp4');
  try {
    const r = await run(['generate', 'a red ball', '-o', out, '--frames', '10', '--steps', '5', '--seed', '7']);
    t.is(r.code, 0, r.stderr);
    t.regex(r.stdout, /wrote .*ball\.mp4: 10 frames 16x12/);
    t.regex(r.stderr, /model: fake \(built-in, UNTRAINED/);
    t.regex(r.stderr, /^chunk 1\/3 \(stage 1\) step 1\/5, 0\/10 frames/m);
    t.regex(r.stderr, /^chunk 3\/3 \(extend\) step 5\/5, 7\/10 frames, [\d.]+ frames\/s, ETA 0s$/m);
    const p = spawnSync('ffprobe', ['-v', 'error', '-count_frames', '-show_entries', 'stream=codec_name,pix_fmt,nb_read_frames', '-of', 'csv=p=0', out], { encoding: 'utf8' });
    t.is(p.stdout.trim(), 'h264,yuv420p,10');
  } finally {
    setNativeEngineFactoryForTesting(undefined);
  }
});

(hasFfmpeg ? test.serial : test.skip)('generate writes WebM (VP9) and says when odd frames were padded for yuv420p', async (t) => {
  const fake = createFakeEngine({ width: 15, height: 11, firstChunkFrames: 4, chunkFrames: 3, stepMs: 1 });
  setNativeEngineFactoryForTesting(() => fake.engine);
  const out = path.join(tmp, 'odd.webm');
  try {
    const r = await run(['generate', 'a red ball', '-o', out, '--frames', '7', '--steps', '2', '-q']);
    t.is(r.code, 0, r.stderr);
    t.regex(r.stdout, /wrote .*odd\.webm: 7 frames 15x11 \(encoded 16x12: yuv420p needs even sizes\) in /);
    const p = spawnSync('ffprobe', ['-v', 'error', '-count_frames', '-show_entries', 'stream=codec_name,width,height,nb_read_frames', '-of', 'csv=p=0', out], { encoding: 'utf8' });
    t.is(p.stdout.trim(), 'vp9,16,12,7');
  } finally {
    setNativeEngineFactoryForTesting(undefined);
  }
});

test('generate --enhance: stage 3 on the generated frames (built-in model, its untrained enhancer), progress lines; bad uses fail early', (t) => {
  const out = path.join(tmp, 'enh.mp4');
  const r = cli(['generate', 'a red ball', '-o', out, '--frames', '24', '--steps', '1', '--enhance', '--enhance-steps', '1', '--enhance-size', '64x64']);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /wrote .*enh\.mp4: 24 frames 64x64 in /);
  t.regex(r.stderr, /^enhance window 1: step 1\/1, chunk 1\/1/m);
  if (hasFfmpeg) {
    const p = spawnSync('ffprobe', ['-v', 'error', '-count_frames', '-show_entries', 'stream=width,height,nb_read_frames', '-of', 'csv=p=0', out], { encoding: 'utf8' });
    t.is(p.stdout.trim(), '64,64,24');
  }
  // the built-in model's default 16 frames are less than one enhancer chunk: refused before any denoising step
  const short = cli(['generate', 'a red ball', '-o', path.join(tmp, 'short.mp4'), '--enhance']);
  t.is(short.status, 1);
  t.regex(short.stderr, /--enhance needs at least 24 frames/);
  t.notRegex(short.stderr, /^chunk 1\//m);
  const badSteps = cli(['generate', 'a red ball', '-o', path.join(tmp, 'b.mp4'), '--frames', '24', '--enhance', '--enhance-steps', '0']);
  t.is(badSteps.status, 1);
  t.regex(badSteps.stderr, /enhance: steps must be in \[1, 1000\], got 0/);
  t.notRegex(badSteps.stderr, /^model:/m, 'no model was loaded');
  const orphan = cli(['generate', 'a red ball', '-o', path.join(tmp, 'o.mp4'), '--enhance-steps', '2']);
  t.is(orphan.status, 1);
  t.regex(orphan.stderr, /need --enhance/);
  t.notRegex(orphan.stderr, /^model:/m, 'no model was loaded');
});

test('generate --profile prints the CPU op profile to stderr (child process, built-in model, PNG frames)', (t) => {
  const out = path.join(tmp, 'prof');
  const r = cli(['generate', 'a red ball', '-o', out, '--format', 'png', '--frames', '8', '--steps', '2', '--profile']);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /wrote 8 PNG files/);
  t.regex(r.stderr, /^CPU op profile \(outermost ops of every thread, [\d.]+ s in all\):$/m);
  t.regex(r.stderr, /^op +calls +s +share +GFLOP\/s +GB\/s$/m);
  const linear = /^linear +(\d+) +([\d.]+) +([\d.]+)% +([\d.]+)/m.exec(r.stderr);
  t.truthy(linear, r.stderr);
  t.true(Number(linear?.[1]) > 0 && Number(linear?.[4]) > 0);
  t.regex(r.stderr, /^outside ops +0 /m);
  const plain = cli(['generate', 'a red ball', '-o', path.join(tmp, 'noprof'), '--format', 'png', '--frames', '8', '--steps', '1']);
  t.is(plain.status, 0, plain.stderr);
  t.false(plain.stderr.includes('CPU op profile'));
});

test('the st2v bin (bin/st2v.js) runs the built CLI, and before the build says what to run', (t) => {
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { bin: Record<string, string>; files: string[] };
  t.is(pkg.bin.st2v, './bin/st2v.js');
  t.true(pkg.files.includes('bin'));
  t.truthy(fs.statSync(path.join(root, 'bin', 'st2v.js')).mode & 0o100, 'bin/st2v.js is executable');
  if (fs.existsSync(path.join(root, 'dist', 'cli', 'main.js'))) {
    const r = spawnSync(process.execPath, [path.join(root, 'bin', 'st2v.js'), '--version'], { encoding: 'utf8', timeout: 60_000 });
    t.is(r.status, 0, r.stderr);
    t.is(r.stdout.trim(), (JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version);
    const bad = spawnSync(process.execPath, [path.join(root, 'bin', 'st2v.js'), 'generate', 'x', '-o', path.join(tmp, 'y.mp4'), '--model', path.join(tmp, 'no-such-model')], { encoding: 'utf8', timeout: 60_000 });
    t.is(bad.status, 1);
    t.regex(bad.stderr, /^st2v: model folder not found: .*no-such-model \(ERR_NOT_FOUND\)\n$/);
  }
  // a copy without dist/ next to it: the message, exit status 1, no stack trace
  const dir = fs.mkdtempSync(path.join(tmp, 'unbuilt-'));
  fs.mkdirSync(path.join(dir, 'bin'));
  fs.copyFileSync(path.join(root, 'bin', 'st2v.js'), path.join(dir, 'bin', 'st2v.js'));
  fs.writeFileSync(path.join(dir, 'package.json'), '{"type": "module"}');
  const r = spawnSync(process.execPath, [path.join(dir, 'bin', 'st2v.js'), '--help'], { encoding: 'utf8', timeout: 60_000 });
  t.is(r.status, 1);
  t.regex(r.stderr, /^st2v: this package is not built yet .*run `npm install`/);
  t.false(/\n\s+at /.test(r.stderr));
});
