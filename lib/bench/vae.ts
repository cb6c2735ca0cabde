/**
 * `npm run bench -- vae [--full] [--threads N] [--json]`: the VAE cases of the native 'pipeline' bench suite
 * (native/models/vae/vae_bench.cpp), i.e. vae_decode_tiled_90x160: the exact banded decode_tiled of a 90x160
 * latent (1280x720 frames) against the untiled decode, on a random-weight VAE of the SD-2.1 structure.
 * Reports the peak activation bytes of both paths (st2v::tensor_bytes_peak, measured in the same run), their
 * ratio (issue 6: <= 0.25), max|tiled - untiled| (<= 1e-3) and the times of both. Default widths are 1/4 of
 * SD-2.1 ({32, 64, 128, 128}); --full runs the real widths {128, 256, 512, 512} (about 16x the FLOPs and a
 * ~2.4 GB untiled peak: minutes on a few cores).
 */
import { parseThreads } from './common.js';
import { callNative } from '../errors.js';
import { loadNative } from '../native/binding.js';
import type { NativeBenchResult } from '../native/binding.js';

interface Options {
  full: boolean;
  json: boolean;
  threads?: number;
}

function parseArgs(argv: string[]): Options {
  const out: Options = { full: false, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--full') out.full = true;
    else if (a === '--json') out.json = true;
    else if (a === '--threads') out.threads = parseThreads(argv[++i]);
    else throw new RangeError(`vae bench: unknown option '${a}' (options: --full, --threads N, --json)`);
  }
  return out;
}

export async function run(argv: string[]): Promise<void> {
  const opts = parseArgs(argv);
  // Read by the native case (getenv) when it runs; the assignment reaches the process environment.
  if (opts.full) process.env.ST2V_BENCH_VAE_FULL = '1';
  else delete process.env.ST2V_BENCH_VAE_FULL;
  const core = loadNative();
  if (opts.threads !== undefined) core.setThreads(opts.threads);
  const info = core.systemInfo();
  const names = core.benchList('pipeline').filter((n) => n.startsWith('vae_'));
  if (names.length === 0) throw new Error('vae bench: no native vae_* case in the pipeline suite (stale build?)');
  const results: Array<{ name: string; seconds: number; note: string }> = [];
  for (const name of names) {
    const r: NativeBenchResult = await callNative(() => core.benchRun(name));
    results.push({ name: r.name, seconds: Number(r.seconds.toFixed(3)), note: r.note });
  }
  if (opts.json) {
    process.stdout.write(
      `${JSON.stringify({ cpu: info.cpu, isa: info.isa, threads: info.threads, date: new Date().toISOString(), results })}\n`,
    );
    return;
  }
  console.log(`cpu: ${info.cpu}  isa: ${info.isa}  threads: ${info.threads}`);
  for (const r of results) console.log(`${r.name}: ${r.seconds} s\n  ${r.note}`);
}
