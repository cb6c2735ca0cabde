/**
 * `npm run bench -- eval`: SCuts throughput (frames per second through the native SceneDetect path:
 * downscale + HSV + frame deltas, excluding decoding) at 256x256 and 720x720, per version rule, and the
 * dense-flow + warp metrics throughput (pairs per second) at 256x256. Synthetic frames, so the figures
 * measure compute only. Options: --frames N (default 240), --threads N, --json, --flow720 (also time the
 * classical flow + warp metrics on 720x720 pairs, the paper's protocol), --raft <weights> (time RAFT on
 * one 720x720 pair).
 */
import { performance } from 'node:perf_hooks';
import { loadNative } from '../native/binding.js';
import { evalNative } from '../eval/native.js';
import type { ScenecutVersion } from '../eval/native.js';

function synthFrames(n: number, w: number, h: number): Uint8Array {
  // Moving colour gradients with texture, hard cuts every 60 frames: realistic value spread for HSV.
  const out = new Uint8Array(n * w * h * 3);
  let seed = 12345;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 24);
  for (let f = 0; f < n; f++) {
    const scene = Math.floor(f / 60);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const i = ((f * h + y) * w + x) * 3;
        const xx = x + 2 * f;
        out[i] = (xx * (3 + scene) + y) & 255;
        out[i + 1] = ((y * (2 + scene)) ^ xx) & 255;
        out[i + 2] = ((xx + y) * (scene + 1) + (rnd() & 15)) & 255;
      }
    }
  }
  return out;
}

export async function run(argv: string[]): Promise<void> {
  const arg = (name: string): string | undefined => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const frames = Number(arg('--frames') ?? 240);
  if (!Number.isInteger(frames) || frames < 8) throw new RangeError('--frames must be an integer >= 8');
  const threads = arg('--threads');
  const core = loadNative();
  if (threads !== undefined) core.setThreads(Number(threads));
  const info = core.systemInfo();
  const native = evalNative();
  const rows: Array<Record<string, string | number>> = [];
  const chunk = 32;
  for (const [w, h] of [
    [256, 256],
    [720, 720],
  ] as const) {
    const data = synthFrames(frames, w, h);
    const fb = w * h * 3;
    for (const [version, downscale] of [
      ['0.6.2', true],
      ['current', true],
      ['0.6.2', false],
    ] as Array<[ScenecutVersion, boolean]>) {
      if (w === 256 && version === 'current') continue; // same work as 0.6.2 at 256 wide
      const size = native.evalProcessingSize(w, h, version, downscale);
      const once = async () => {
        for (let s = 0; s + 1 < frames; s += chunk - 1) {
          const n = Math.min(chunk, frames - s);
          await native.evalScenecutDeltas(data.subarray(s * fb, (s + n) * fb), n, w, h, { version, downscale });
        }
      };
      await once(); // warm-up
      const times: number[] = [];
      for (let r = 0; r < 3; r++) {
        const t0 = performance.now();
        await once();
        times.push((performance.now() - t0) / 1000);
      }
      times.sort((a, b) => a - b);
      const fps = frames / times[1]!;
      rows.push({
        case: `scuts ${w}x${h} ${version}${downscale ? '' : ' no-downscale'}`,
        processing: `${size.width}x${size.height}`,
        fps: Math.round(fps),
        'vs 500 fps target': +(fps / 500).toFixed(2),
      });
    }
  }
  {
    const w = 256, h = 256, n = 9;
    const data = synthFrames(n, w, h);
    const t0 = performance.now();
    await native.evalMawePairs(data, n, w, h, { size: 0 });
    const s = (performance.now() - t0) / 1000;
    rows.push({ case: 'flow+warp 256x256 (size 0), pairs/s', processing: `${w}x${h}`, fps: +((n - 1) / s).toFixed(2), 'vs 500 fps target': '-' });
  }
  if (argv.includes('--flow720')) {
    const n = 3;
    const data = synthFrames(n, 720, 720);
    const t0 = performance.now();
    await native.evalMawePairs(data, n, 720, 720, { size: 720 });
    const s = (performance.now() - t0) / 1000;
    rows.push({ case: 'flow+warp 720x720 classical, pairs/s', processing: '720x720', fps: +((n - 1) / s).toFixed(3), 'vs 500 fps target': '-' });
  }
  const raft = arg('--raft');
  if (raft !== undefined) {
    const data = synthFrames(2, 720, 720);
    const small = synthFrames(1, 128, 128);
    await native.evalFlow(small, small, 128, 128, { raft, raftUpdates: 1 }); // loads the weights (not timed)
    const t0 = performance.now();
    await native.evalFlow(data.subarray(0, 720 * 720 * 3), data.subarray(720 * 720 * 3), 720, 720, { raft });
    const s = (performance.now() - t0) / 1000;
    rows.push({ case: 'RAFT 720x720 (12 updates), pairs/s', processing: '720x720', fps: +(1 / s).toFixed(3), 'vs 500 fps target': '-' });
  }
  const header = { cpu: info.cpu, isa: info.isa, threads: info.threads, frames };
  if (argv.includes('--json')) {
    process.stdout.write(JSON.stringify({ suite: 'eval', ...header, rows }, null, 2) + '\n');
  } else {
    process.stdout.write(`eval bench — ${info.cpu}, ${info.isa}, ${info.threads} threads, ${frames} synthetic frames (decode excluded)\n`);
    console.table(rows);
  }
}

// Direct invocation (node dist/bench/eval.js) when no suite dispatcher is present.
if (import.meta.url === `file://${process.argv[1]}`) {
  run(process.argv.slice(2)).catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
