/**
 * Pieces every bench suite shares: number rounding for reports, the `--threads N` option, and writing a report
 * to bench/results/<kind>-<machine>-<date>.json.
 */
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { loadNative, packageRoot, type NativeSystemInfo } from '../native/binding.js';

export const round = (x: number, d: number): number => Number(x.toFixed(d));

/** The value of `--threads`: an integer in [1, 1024], else a RangeError naming the option. */
export function parseThreads(value: string | undefined): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 1024) throw new RangeError('--threads must be an integer in [1, 1024]');
  return n;
}

/** The options of a suite that takes only `--json`, `--save` and `--threads N` (ops, tuning). */
export interface BasicOptions {
  json: boolean;
  save: boolean;
  threads?: number;
}
/** Parses `--json`, `--save`, `--threads N`; anything else is a RangeError naming the suite and the option. */
export function parseBasicOptions(suite: string, argv: string[]): BasicOptions {
  const out: BasicOptions = { json: false, save: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--json') out.json = true;
    else if (a === '--save') out.save = true;
    else if (a === '--threads') out.threads = parseThreads(argv[++i]);
    else throw new RangeError(`${suite} bench: unknown option '${a}' (options: --json, --save, --threads N)`);
  }
  return out;
}

/**
 * Writes `report` (pretty JSON) to bench/results/<kind>-<slug of machine>-<YYYY-MM-DD of date>.json and returns the
 * path relative to the package root. A run saved earlier the same day is kept: the name then takes the time of day
 * (THHMM, then THHMMSS, then a counter), so no saved run is overwritten. `dir` (tests): another folder.
 */
export function saveReport(kind: string, machine: string, date: string, report: unknown,
  dir = path.join(packageRoot, 'bench', 'results')): string {
  const slug = machine.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
  fs.mkdirSync(dir, { recursive: true });
  const day = date.slice(0, 10), hhmmss = date.slice(11, 19).replace(/:/g, '');
  const stems = [day, `${day}T${hhmmss.slice(0, 4)}`, `${day}T${hhmmss}`];
  for (let i = 0; ; i++) {
    const stem = i < stems.length ? stems[i] : `${day}T${hhmmss}-${i - stems.length + 2}`;
    const file = path.join(dir, `${kind}-${slug}-${stem}.json`);
    try {
      fs.writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`, { flag: 'wx' });  // fails if the file exists
      return path.relative(packageRoot, file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
}

/**
 * The addon with a suite's `--threads` applied, its system info, and the suite's logger: stdout for people, stderr
 * when `--json` keeps stdout for the report.
 */
export function openBench(opts: { json: boolean; threads?: number }) {
  const core = loadNative();
  if (opts.threads !== undefined) core.setThreads(opts.threads);
  const info = core.systemInfo();
  const log = (s: string): void => {
    (opts.json ? process.stderr : process.stdout).write(`${s}\n`);
  };
  return { core, info, log };
}

/** The first line of the CPU suites' output: the CPU, the kernel level, the threads and the load average. */
export function hostLine(info: NativeSystemInfo): string {
  return `cpu: ${info.cpu}  isa: ${info.isa}  threads: ${info.threads}  load avg: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`;
}
