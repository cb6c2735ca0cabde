// The CPU op profile's table (lib/profile.ts): rates per row, shares of the span, the rest as "outside ops", and
// the aligned text the CLI prints.
import test from 'ava';
import { formatProfile, profileTable } from '../../lib/profile.js';

test('profileTable: GFLOP/s and x peak for rows with FLOPs, GB/s for the others, shares and the rest of the span', (t) => {
  const rows = profileTable(
    [
      { name: 'linear', calls: 3, seconds: 2, flop: 300e9, bytes: 0 },
      { name: 'layer_norm', calls: 5, seconds: 0.5, flop: 0, bytes: 4e9 },
    ],
    4,
    200,
  );
  t.deepEqual(rows[0], { op: 'linear', calls: 3, 's/step': 2, share: '50.0%', 'GFLOP/s': 150, 'x peak': 0.75, 'GB/s': '' });
  t.deepEqual(rows[1], { op: 'layer_norm', calls: 5, 's/step': 0.5, share: '12.5%', 'GFLOP/s': '', 'x peak': '', 'GB/s': 8 });
  t.deepEqual(rows[2], { op: 'outside ops', calls: 0, 's/step': 1.5, share: '37.5%', 'GFLOP/s': '', 'x peak': '', 'GB/s': '' });
  t.is(profileTable([], 0).length, 0); // no span: no rest row
  const text = formatProfile(rows).split('\n');
  t.is(text.length, 4);
  t.regex(text[0] ?? '', /^op +calls +s +share +GFLOP\/s +GB\/s$/);
  t.regex(text[1] ?? '', /^linear +3 +2 +50\.0% +150 *$/);
  t.is(new Set(text.map((l) => l.length)).size, 1); // aligned columns
});
