// CLIP BPE tokenizer vs golden/clip/tokens (HF CLIPTokenizer and open_clip.tokenize ids of 45 prompts).
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { ClipTokenizer } from '../../lib/tokenizer/clip.js';

const shared = process.env.ST2V_SHARED ?? path.resolve(process.cwd(), '../shared');
const dir = path.join(shared, 'golden/clip');
const have = fs.existsSync(path.join(dir, 'tokens/prompts.json'));

function readI64Npy(file: string): { shape: number[]; data: BigInt64Array } {
  const buf = fs.readFileSync(file);
  const hlen = buf.readUInt16LE(8);
  const header = buf.subarray(10, 10 + hlen).toString('latin1');
  const shape = (/'shape': \(([^)]*)\)/.exec(header)![1]).split(',').filter((s) => s.trim()).map(Number);
  const off = 10 + hlen;
  const bytes = buf.subarray(off);
  return { shape, data: new BigInt64Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length)) };
}

for (const convention of ['hf', 'openclip'] as const) {
  const t = have ? test : test.skip;
  t(`${convention} ids equal the recorded ids for every prompt`, (t) => {
    const prompts = JSON.parse(fs.readFileSync(path.join(dir, 'tokens/prompts.json'), 'utf8')) as string[];
    const ref = readI64Npy(path.join(dir, `tokens/${convention === 'hf' ? 'hf_ids' : 'openclip_ids'}.npy`));
    t.deepEqual(ref.shape, [prompts.length, 77]);
    const tok = ClipTokenizer.fromFolder(dir, convention);
    const bad: number[] = [];
    prompts.forEach((p, i) => {
      const got = Array.from(tok.tokenize(p));
      const want = Array.from(ref.data.subarray(i * 77, (i + 1) * 77), Number);
      if (JSON.stringify(got) !== JSON.stringify(want)) {
        bad.push(i);
        t.log(`prompt ${i} ${JSON.stringify(p).slice(0, 60)}\n got  ${got.slice(0, 24)}\n want ${want.slice(0, 24)}`);
      }
    });
    t.deepEqual(bad, []);
  });
}

test('rejects a non-string text with TypeError', (t) => {
  if (!have) return t.pass();
  const tok = ClipTokenizer.fromFolder(dir, 'hf');
  t.throws(() => tok.tokenize(42 as unknown as string), { instanceOf: TypeError });
});
