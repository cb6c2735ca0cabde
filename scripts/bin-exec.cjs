// After tsc: make dist/cli/main.js (which starts with a #! line) executable, so it can also be run directly. The
// package's `st2v` bin is bin/st2v.js (tracked, executable in git), which loads it. No-op on Windows.
const fs = require('node:fs');
const path = require('node:path');
const bin = path.join(__dirname, '..', 'dist', 'cli', 'main.js');
if (process.platform !== 'win32' && fs.existsSync(bin)) fs.chmodSync(bin, 0o755);
