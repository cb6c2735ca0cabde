// The ETA / rate arithmetic of generate()'s progress events (lib/progress.ts), on hand-made native events.
import test from 'ava';
import { ProgressTracker, formatDuration } from '../../lib/progress.js';
import type { NativeProgress } from '../../lib/native/binding.js';

const ev = (stage: NativeProgress['stage'], chunk: number, step: number, steps: number): NativeProgress => ({
  stage,
  chunk,
  chunks: 2,
  step,
  steps,
});

test('the ETA counts denoising steps only: text and decode events keep the last step count', async (t) => {
  const tr = new ProgressTracker(24);
  t.true(Number.isNaN(tr.update(ev('text', 0, 0, 1)).etaMs), 'no estimate before the first finished step');
  await new Promise((r) => setTimeout(r, 20));
  const s1 = tr.update(ev('stage1', 0, 1, 4)); // 1 of 8 denoising steps done
  t.true(s1.etaMs > 0 && Math.abs(s1.etaMs - 7 * s1.elapsedMs) < 1e-6 * s1.elapsedMs + 1e-9);
  tr.update(ev('stage1', 0, 4, 4));
  const dec0 = tr.update(ev('decode', 0, 0, 1)); // 4 of 8 done: the decode event's 0/1 must not reset it
  t.true(Math.abs(dec0.etaMs - dec0.elapsedMs) < 1e-6 * dec0.elapsedMs + 1e-9, `ETA ${dec0.etaMs} vs elapsed ${dec0.elapsedMs}`);
  tr.update(ev('extend', 1, 4, 4));
  t.is(tr.update(ev('decode', 1, 0, 1)).etaMs, 0, 'all denoising done: nothing left to estimate');
});

test('formatDuration', (t) => {
  t.is(formatDuration(Number.NaN), '?');
  t.is(formatDuration(42_000), '42s');
  t.is(formatDuration(65_000), '1m05s');
  t.is(formatDuration(3_700_000), '1h01m');
});
