// lib/bench/common.ts: saving a report never replaces a run saved before it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { saveReport } from '../../lib/bench/common.js';

test('saveReport names by day, then by time of day, then by a counter, and keeps every earlier file', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'st2v-save-'));
  try {
    const date = '2026-11-28T09:05:07.123Z';
    const names = [1, 2, 3, 4, 5].map((i) => path.basename(saveReport('step', 'AMD EPYC-avx2', date, { i }, dir)));
    t.deepEqual(names, [
      'step-amd-epyc-avx2-2026-11-28.json',
      'step-amd-epyc-avx2-2026-11-28T0905.json',
      'step-amd-epyc-avx2-2026-11-28T090507.json',
      'step-amd-epyc-avx2-2026-11-28T090507-2.json',
      'step-amd-epyc-avx2-2026-11-28T090507-3.json',
    ]);
    names.forEach((n, k) => t.deepEqual(JSON.parse(fs.readFileSync(path.join(dir, n), 'utf8')), { i: k + 1 }));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
