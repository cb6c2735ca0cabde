/**
 * The CPU op profile as a table (native/core/profile.h): one row per op kind with its calls, seconds, share of a
 * span, GFLOP/s (convolutions, linear layers, attention), its ratio to an FMA peak when one is given, or GB/s
 * (norms, element-wise ops, copies); then the rest of the span as "outside ops". Used by `st2v generate --profile`
 * and `npm run bench -- step --profile`.
 */
import { round } from './bench/common.js';
import type { NativeProfileRow } from './native/binding.js';

export interface ProfileTableRow {
  op: string;
  calls: number;
  's/step': number;
  share: string;
  'GFLOP/s': number | '';
  'x peak': number | '';
  'GB/s': number | '';
}

/** Rows for console.table; `span` is the seconds the profile covered (0: no share column values, no rest row). */
export function profileTable(rows: NativeProfileRow[], span: number, peakGflops?: number): ProfileTableRow[] {
  const out: ProfileTableRow[] = rows.map((p) => ({
    op: p.name,
    calls: p.calls,
    's/step': round(p.seconds, 3),
    share: span > 0 ? `${((100 * p.seconds) / span).toFixed(1)}%` : '',
    'GFLOP/s': p.flop > 0 && p.seconds > 0 ? round(p.flop / p.seconds / 1e9, 1) : '',
    'x peak': p.flop > 0 && p.seconds > 0 && peakGflops ? round(p.flop / p.seconds / 1e9 / peakGflops, 3) : '',
    'GB/s': p.flop === 0 && p.bytes > 0 && p.seconds > 0 ? round(p.bytes / p.seconds / 1e9, 1) : '',
  }));
  const inside = rows.reduce((s, p) => s + p.seconds, 0);
  if (span > 0)
    out.push({ op: 'outside ops', calls: 0, 's/step': round(span - inside, 3), share: `${((100 * (span - inside)) / span).toFixed(1)}%`, 'GFLOP/s': '', 'x peak': '', 'GB/s': '' });
  return out;
}

/** The table as aligned text lines (for stderr), with the seconds column named `secondsLabel`. */
export function formatProfile(rows: ProfileTableRow[], secondsLabel = 's'): string {
  const cols = ['op', 'calls', 's/step', 'share', 'GFLOP/s', 'GB/s'] as const;
  const head = ['op', 'calls', secondsLabel, 'share', 'GFLOP/s', 'GB/s'];
  const cells = rows.map((r) => cols.map((c) => String(r[c])));
  const w = head.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] ?? '').length)));
  const line = (c: string[]) => c.map((x, i) => (i === 0 ? x.padEnd(w[i] ?? 0) : x.padStart(w[i] ?? 0))).join('  ');
  return [line(head), ...cells.map(line)].join('\n');
}
