// `st2v verify <reference-dir> [--json]`: runs every case of a reference dump (the format of
// golden/st2v: manifest.json, .npy inputs / intermediates / outputs and weights with the official key names)
// through the engine and prints the max-abs error of each output against its tolerance
// (1e-4 * max(1, |ref|) element-wise). Exit code 0 only if every case passes.
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { St2vError, callNative } from '../../errors.js';
import { loadNative } from '../../native/binding.js';

export interface VerifyCase {
  name: string;
  maxAbs: number;
  maxRef: number;
  /** max |ours - ref| / max(1, |ref|): pass <=> maxRel <= relTol */
  maxRel: number;
  /** the case's relative tolerance: 1e-4, or what the case documents (e.g. 1e-3 for multi-step trajectories) */
  relTol: number;
  tol: number;
  pass: boolean;
  shape: number[];
  note: string;
}

export interface VerifyReport {
  dir: string;
  groups: string[];
  cases: VerifyCase[];
  pass: boolean;
}

interface VerifyNative {
  verifyReference(dir: string): Promise<{ groups: string[]; cases: VerifyCase[] }>;
}

/** Runs the verify cases on a dump folder. Throws St2vError ERR_NOT_FOUND when it is not a dump. */
export async function verifyReference(dir: string): Promise<VerifyReport> {
  if (typeof dir !== 'string' || dir.length === 0) throw new TypeError('verify: <reference-dir> must be a non-empty path');
  const abs = path.resolve(dir);
  if (!fs.existsSync(path.join(abs, 'manifest.json'))) {
    throw new St2vError(`verify: '${dir}' is not a reference dump (no manifest.json)`, 'ERR_NOT_FOUND');
  }
  const native = loadNative() as unknown as Partial<VerifyNative>;
  if (typeof native.verifyReference !== 'function') {
    throw new St2vError('verify: this native build has no verifyReference (rebuild the addon)', 'ERR_UNSUPPORTED');
  }
  const verify = native.verifyReference.bind(native);
  const r = await callNative(() => verify(abs));
  return { dir: abs, groups: r.groups, cases: r.cases, pass: r.cases.length > 0 && r.cases.every((c) => c.pass) };
}

function fmtE(x: number): string {
  return Number.isFinite(x) ? x.toExponential(2) : String(x);
}

export function formatTable(r: VerifyReport): string {
  const rows = r.cases.map((c) => [
    c.name,
    `[${c.shape.join(', ')}]`,
    fmtE(c.maxAbs),
    fmtE(c.maxRel),
    Number.isFinite(c.relTol) ? c.relTol.toExponential(0) : '1e-4',
    c.pass ? 'ok' : 'FAIL',
    c.note,
  ]);
  const head = ['case', 'shape', 'max abs', 'max rel', 'tol', '', ''];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((s, i) => (i >= 2 && i <= 4 ? s.padStart(w[i] ?? 0) : s.padEnd(w[i] ?? 0)))
      .join('  ')
      .trimEnd();
  const out = [line(head), ...rows.map(line)];
  const failed = r.cases.filter((c) => !c.pass).length;
  out.push(
    r.cases.length === 0
      ? `no case of this dump could be run (groups: ${r.groups.join(', ')})`
      : `${r.cases.length - failed}/${r.cases.length} passed${failed ? `, ${failed} FAILED` : ''}`,
  );
  return out.join('\n') + '\n';
}

export function register(program: Command): void {
  program
    .command('verify')
    .description('run a reference dump (golden/st2v format) through the engine; exit 0 only if every output matches')
    .argument('<reference-dir>', 'folder with manifest.json, the .npy tensors and the weights')
    .option('--json', 'print the result as JSON')
    .action(async (dir: string, o: { json?: boolean }) => {
      const r = await verifyReference(dir);
      if (o.json) {
        process.stdout.write(
          JSON.stringify(r, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v), 2) + '\n',
        );
      } else {
        process.stdout.write(formatTable(r));
      }
      if (!r.pass) process.exitCode = 1;
    });
}
