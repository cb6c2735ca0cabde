// A converted (non-untrained) model folder is tokenized in TypeScript with its CLIP tokenizer (HF conventions) and
// the ids reach the native text encoder: the engine echoes the ids it encoded, which must equal the golden
// HF CLIPTokenizer ids (golden/clip/tokens) of the same prompts. Also: `st2v convert` copies the tokenizer files,
// a folder without them fails at load with ERR_NOT_FOUND naming vocab.json, and an untrained random folder
// (model.json "untrained": true) keeps the built-in byte-level tokenizer.
import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { convertModel } from '../../lib/convert/convert.js';
import { tokenizerCopies } from '../../lib/convert/sources.js';
import { Engine } from '../../lib/engine.js';
import { St2vError } from '../../lib/errors.js';
import { loadNative, type NativeModule } from '../../lib/native/binding.js';
import { ClipTokenizer } from '../../lib/tokenizer/clip.js';

const shared = process.env.ST2V_SHARED ?? path.resolve(process.cwd(), '../shared');
const clipDir = path.join(shared, 'golden/clip');
const haveGolden = fs.existsSync(path.join(clipDir, 'tokens/prompts.json')) && fs.existsSync(path.join(clipDir, 'vocab.json'));

let native: NativeModule | undefined;
try {
  native = loadNative();
} catch {
  native = undefined;
}
const haveNative = typeof native?.writeRandomModel === 'function' && typeof native?.createEngine === 'function';

function readI64Npy(file: string): { shape: number[]; data: BigInt64Array } {
  const buf = fs.readFileSync(file);
  const hlen = buf.readUInt16LE(8);
  const header = buf.subarray(10, 10 + hlen).toString('latin1');
  const shape = (/'shape': \(([^)]*)\)/.exec(header)![1] ?? '').split(',').filter((s) => s.trim()).map(Number);
  const bytes = buf.subarray(10 + hlen);
  return { shape, data: new BigInt64Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length)) };
}

async function run(engine: Engine, prompt: string, negativePrompt: string) {
  const gen = engine.generate({ prompt, negativePrompt, frames: 1, steps: 1, seed: 7 });
  const chunks: Uint8Array[] = [];
  for await (const c of gen) chunks.push(c.data);
  return { summary: gen.summary!, data: chunks[0]! };
}

test('tokenizerCopies finds vocab.json + merges.txt in a folder or its tokenizer/ subfolder', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'st2v-tokcopy-'));
  try {
    t.deepEqual(tokenizerCopies(dir), []);
    fs.writeFileSync(path.join(dir, 'vocab.json'), '{}');
    t.deepEqual(tokenizerCopies(dir), [], 'half a tokenizer is not one');
    fs.writeFileSync(path.join(dir, 'merges.txt'), '#version: 0.2\n');
    t.deepEqual(tokenizerCopies(dir), [
      [path.join(dir, 'vocab.json'), path.join('tokenizer', 'vocab.json')],
      [path.join(dir, 'merges.txt'), path.join('tokenizer', 'merges.txt')],
    ]);
    fs.mkdirSync(path.join(dir, 'tokenizer'));
    for (const n of ['vocab.json', 'merges.txt', 'tokenizer_config.json']) fs.writeFileSync(path.join(dir, 'tokenizer', n), '{}');
    t.deepEqual(
      tokenizerCopies(dir).map(([from]) => path.relative(dir, from)),
      [path.join('tokenizer', 'vocab.json'), path.join('tokenizer', 'merges.txt'), path.join('tokenizer', 'tokenizer_config.json')],
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

const nt = haveNative && haveGolden ? test.serial : test.skip;
if (!haveNative) test('native addon with writeRandomModel/createEngine present', (t) => { t.log('SKIP: addon not built'); t.pass(); });
if (!haveGolden) test('golden/clip present', (t) => { t.log(`SKIP: ${clipDir} absent (set ST2V_SHARED)`); t.pass(); });

nt('converted folder: prompt and negative prompt ids passed to the engine equal the golden HF CLIPTokenizer ids', async (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'st2v-tokwire-'));
  try {
    const src = path.join(tmp, 'src');
    // A tiny StreamingT2V (the built-in architecture) whose text encoder has CLIP's 49408-token vocabulary.
    await native!.writeRandomModel!(src, { preset: 'tiny', vocab: 49408, untrained: false, dtype: 'f16', seed: 5 });

    // 1. Converted without a tokenizer: loading fails, naming the missing file.
    const bare = path.join(tmp, 'bare');
    await convertModel({ input: src, output: bare, hash: false });
    t.false(fs.existsSync(path.join(bare, 'tokenizer')));
    const err = await t.throwsAsync(Engine.load(bare, { threads: 2 }), { instanceOf: St2vError });
    t.is(err?.code, 'ERR_NOT_FOUND');
    t.regex(err?.message ?? '', /tokenizer[/\\]vocab\.json/);

    // 2. Converted with the CLIP tokenizer files: copied into tokenizer/, recorded in model.json.
    const out = path.join(tmp, 'model');
    await convertModel({ input: src, output: out, hash: false, tokenizer: clipDir });
    t.is(fs.readFileSync(path.join(out, 'tokenizer', 'vocab.json'), 'utf8'), fs.readFileSync(path.join(clipDir, 'vocab.json'), 'utf8'));
    t.is(fs.readFileSync(path.join(out, 'tokenizer', 'merges.txt'), 'utf8'), fs.readFileSync(path.join(clipDir, 'merges.txt'), 'utf8'));
    const mj = JSON.parse(fs.readFileSync(path.join(out, 'model.json'), 'utf8')) as { tokenizer: string; components: Record<string, unknown> };
    t.is(mj.tokenizer, 'tokenizer/');
    t.true('text_encoder' in mj.components);

    const prompts = JSON.parse(fs.readFileSync(path.join(clipDir, 'tokens/prompts.json'), 'utf8')) as string[];
    const ref = readI64Npy(path.join(clipDir, 'tokens/hf_ids.npy'));
    const golden = (i: number) => Array.from(ref.data.subarray(i * 77, (i + 1) * 77), Number);
    const p = prompts.indexOf('A cat wearing sunglasses and working as a lifeguard at a pool.');
    const n = prompts.indexOf('');
    const q = prompts.indexOf('Darth Vader surfing a wave');
    t.true(p >= 0 && n >= 0 && q >= 0);

    const engine = await Engine.load(out, { threads: 2 });
    try {
      t.false(engine.model.untrained);
      const a = await run(engine, prompts[p]!, prompts[n]!);
      t.deepEqual(Array.from(a.summary.promptIds!), golden(p));
      t.deepEqual(Array.from(a.summary.negativeIds!), golden(n));
      // The same ids come from the model folder's tokenizer (what lib/engine.ts used).
      const tok = ClipTokenizer.fromFolder(path.join(out, 'tokenizer'), 'hf');
      t.deepEqual(Array.from(a.summary.promptIds!), Array.from(tok.tokenize(prompts[p]!)));
      // Different ids change the text conditioning and therefore the frames; the same ids reproduce them.
      const b = await run(engine, prompts[q]!, prompts[n]!);
      t.deepEqual(Array.from(b.summary.promptIds!), golden(q));
      t.notDeepEqual(Buffer.from(a.data), Buffer.from(b.data));
      const a2 = await run(engine, prompts[p]!, prompts[n]!);
      t.deepEqual(Buffer.from(a2.data), Buffer.from(a.data));
    } finally {
      await engine.dispose();
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

nt('an untrained random folder (model.json "untrained": true) keeps the built-in byte-level tokenizer', async (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'st2v-tokwire-'));
  try {
    await native!.writeRandomModel!(tmp, { preset: 'tiny', seed: 5 });
    const engine = await Engine.load(tmp, { threads: 2 });
    try {
      t.true(engine.model.untrained);
      const { summary } = await run(engine, 'Ab c', '');
      // sot 512, bytes (+256 on a word's last byte), eot 513 padded: 'a', 'b' + 256, 'c' + 256.
      t.deepEqual(Array.from(summary.promptIds!).slice(0, 6), [512, 97, 98 + 256, 99 + 256, 513, 513]);
      t.deepEqual(Array.from(summary.negativeIds!).slice(0, 3), [512, 513, 513]);
    } finally {
      await engine.dispose();
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
