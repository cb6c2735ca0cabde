// `st2v verify` enhancer cases (issue 9) through the addon: a dump holding golden/enhancer's single forward
// (every per-block output) and batch-2 forward. The 30-step `sample/` part is left out of this dump to keep the
// test fast (it runs in the opt-in gtest Enhancer.Official30StepSampleOver56Frames, ST2V_SLOW_TESTS=1, and in
// `st2v verify <shared>/golden/enhancer`).
import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { verifyReference } from '../../lib/cli/commands/verify.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const shared = path.resolve(root, process.env.ST2V_SHARED ?? '../shared');
const golden = path.join(shared, 'golden', 'enhancer');
const haveGolden = fs.existsSync(path.join(golden, 'manifest.json'));

const BLOCKS = [
  ...Array.from({ length: 9 }, (_, i) => `input_block_0${i}`),
  'middle_block',
  ...Array.from({ length: 9 }, (_, i) => `output_block_0${i}`),
];

test('verify: the enhancer forward cases (every block, final v, batch 2) match the official code to 1e-4', async (t) => {
  if (!haveGolden) {
    t.log(`SKIP: ${golden} not found (set ST2V_SHARED)`);
    t.pass();
    return;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'st2v-enh-'));
  try {
    for (const f of ['manifest.json', 'weights.safetensors', 'fwd', 'fwd_b2']) fs.symlinkSync(path.join(golden, f), path.join(dir, f));
    const r = await verifyReference(dir);
    const enh = r.cases.filter((c) => c.name.startsWith('enhancer_'));
    const want = [...BLOCKS.map((b) => `enhancer_fwd_${b}`), 'enhancer_fwd_out', 'enhancer_fwd_b2_out'];
    t.deepEqual(enh.map((c) => c.name).sort(), [...want].sort());
    for (const c of enh) {
      t.true(c.pass, `${c.name}: maxRel ${c.maxRel} ${c.note}`);
      t.true(c.maxRel <= 1e-4, c.name);
    }
    t.deepEqual(enh.find((c) => c.name === 'enhancer_fwd_b2_out')?.shape, [2, 4, 8, 10, 16]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
