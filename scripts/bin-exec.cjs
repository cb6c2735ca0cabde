// After tsc: make the `st2v` bin (dist/cli/main.js, which starts with a #! line) executable, so that `npx st2v`
// in this package's own folder can run it directly (npm links the bins of installed packages itself, but runs a
// project's own bin from its path). No-op on Windows, where npm uses a .cmd shim.
const fs = require('node:fs');
const path = require('node:path');
const bin = path.join(__dirname, '..', 'dist', 'cli', 'main.js');
if (process.platform !== 'win32' && fs.existsSync(bin)) fs.chmodSync(bin, 0o755);
