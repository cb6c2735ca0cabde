// Runs CLI code in-process with its stdout / stderr captured (tests that call main() or a command's parseAsync).
import { main } from '../../lib/cli/main.js';

/** Awaits fn with process.stdout / stderr writes collected instead of printed (both restored afterwards). */
export async function captureOutput<T>(fn: () => Promise<T>): Promise<{ value: T; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const text = (s: string | Uint8Array) => (typeof s === 'string' ? s : Buffer.from(s).toString());
  const ow = process.stdout.write.bind(process.stdout);
  const ew = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((s: string | Uint8Array) => ((stdout += text(s)), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string | Uint8Array) => ((stderr += text(s)), true)) as typeof process.stderr.write;
  try {
    return { value: await fn(), stdout, stderr };
  } finally {
    process.stdout.write = ow;
    process.stderr.write = ew;
  }
}

/** main(args) in-process: its exit code and output; process.exitCode is put back as it was. */
export async function runMain(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const prevExit = process.exitCode;
  try {
    const { value: code, stdout, stderr } = await captureOutput(() => main(args));
    return { code, stdout, stderr };
  } finally {
    process.exitCode = prevExit;
  }
}
