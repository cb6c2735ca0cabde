// `st2v info [--model DIR] [--json]`: the model folder (model.json), the native build and backend, and ffmpeg.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { type Command, Option } from 'commander';
import { St2vError, callNativeSync } from '../../errors.js';
import { loadNative, type NativeSystemInfo } from '../../native/binding.js';
import { ffmpegPath } from '../../postprocess/encode.js';

interface ModelSummary {
  dir: string;
  dtype: string;
  components: Record<string, { file: string; tensors: number; bytes: number }>;
  hasBase: boolean;
  hasExtension: boolean;
  warnings: string[];
}

/** Reads <dir>/model.json (written by `st2v convert`). */
export function readModelSummary(dir: string): ModelSummary {
  const file = path.join(dir, 'model.json');
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new St2vError(`no model.json in ${dir} (is it a folder written by \`st2v convert\`?)`, 'ERR_NOT_FOUND', { cause: err });
  }
  let j: Partial<ModelSummary> & { format?: string };
  try {
    j = JSON.parse(text) as typeof j;
  } catch (err) {
    throw new St2vError(`${file} is not valid JSON: ${(err as Error).message}`, 'ERR_FORMAT', { cause: err });
  }
  if (j.format !== 'st2v-model') throw new St2vError(`${file} is not an st2v model description (format ${JSON.stringify(j.format)})`, 'ERR_FORMAT');
  return {
    dir: path.resolve(dir),
    dtype: String(j.dtype ?? '?'),
    components: j.components ?? {},
    hasBase: Boolean(j.hasBase),
    hasExtension: Boolean(j.hasExtension),
    warnings: Array.isArray(j.warnings) ? j.warnings.map(String) : [],
  };
}

const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;

export function register(program: Command): void {
  program
    .command('info')
    .description('show the model folder summary, the native build and backend, and whether ffmpeg is available')
    .option('--model <dir>', 'model folder written by `st2v convert` (default: the built-in tiny model)')
    .option('--json', 'print JSON')
    .addOption(new Option('--backend <name>', "also check that this backend is usable: 'cuda' fails with ERR_NO_CUDA without a usable GPU").choices(['auto', 'cpu', 'cuda']))
    .action((o: { model?: string; json?: boolean; backend?: 'auto' | 'cpu' | 'cuda' }) => {
      const model = o.model ? readModelSummary(o.model) : null;
      // --backend: resolve first, so `st2v info --backend cuda` exits with ERR_NO_CUDA on a machine without a GPU.
      const backend = o.backend === undefined ? undefined : callNativeSync(() => loadNative().resolveBackend(o.backend!));
      let system: NativeSystemInfo | { error: string; code: string };
      try {
        system = loadNative().systemInfo();
      } catch (err) {
        system = { error: (err as Error).message, code: (err as St2vError).code ?? 'ERR_NO_BINARY' };
      }
      const ff = spawnSync(ffmpegPath(), ['-hide_banner', '-version'], { encoding: 'utf8', timeout: 20_000 });
      const ffmpeg = ff.status === 0 ? (ff.stdout.split('\n')[0] ?? '').trim() : null;
      const engine = typeof (() => {
        try {
          return loadNative().createEngine;
        } catch {
          return undefined;
        }
      })() === 'function';
      if (o.json) {
        process.stdout.write(`${JSON.stringify({ model, builtInModel: model === null, system, ...(backend ? { backend } : {}), generationEngine: engine, ffmpeg }, null, 2)}\n`);
        return;
      }
      const lines: string[] = [];
      if (model) {
        lines.push(`model      ${model.dir}`, `dtype      ${model.dtype}`);
        for (const [name, c] of Object.entries(model.components)) lines.push(`  ${name.padEnd(14)} ${String(c.tensors).padStart(5)} tensors  ${mib(c.bytes)}`);
        lines.push(`stages     ${model.hasBase ? 'stage 1 (base UNet)' : 'no base UNet'}; ${model.hasExtension ? 'extension (CAM + APM)' : 'no extension (CAM/resampler missing)'}`);
        for (const w of model.warnings) lines.push(`warning    ${w}`);
      } else {
        lines.push('model      built-in default tiny model (same architecture, small config, seeded random weights: UNTRAINED, outputs are noise-like)');
      }
      if ('error' in system) lines.push(`native     unavailable: ${system.error} (${system.code})`);
      else {
        lines.push(
          `native     streamingt2v ${system.version}, backend ${system.backend}`,
          `cpu        ${system.cpu}`,
          `isa        ${system.isa} (max ${system.maxIsa}); features ${system.cpuFeatures.join(' ')}`,
          `threads    ${system.threads} of ${system.hardwareThreads} hardware threads`,
          `cuda       ${system.cuda.compiled ? 'compiled' : 'not compiled'}${system.cuda.available ? ', available' : ''}${system.cuda.message ? ` (${system.cuda.message})` : ''}`,
        );
      }
      if (backend) lines.push(`backend    ${o.backend} -> ${backend}`);
      lines.push(`generation ${engine ? 'native engine present' : 'native engine missing in this build (st2v generate will fail with ERR_UNSUPPORTED)'}`);
      lines.push(`ffmpeg     ${ffmpeg ?? `not found ('${ffmpegPath()}'): MP4/GIF output needs it, PNG frames do not`}`);
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}
