// `st2v generate "<prompt>" -o out.mp4 [...]`: loads the model (or the built-in tiny one), streams chunks into
// the encoder (MP4 / GIF / PNG) and shows progress: a bar on a terminal, plain lines otherwise.
import { InvalidArgumentError, Option, type Command } from 'commander';
import cliProgress from 'cli-progress';
import { Engine, type FrameChunk } from '../../engine.js';
import { enhanceProgressLine } from '../../enhance.js';
import { St2vError } from '../../errors.js';
import { type GenerateEnhanceOptions, resolveEnhanceSettings } from '../../options.js';
import { type GenerateProgress, formatDuration } from '../../progress.js';
import { OUTPUT_FORMATS, RESIZE_LIMITS, type OutputFormat, assertFfmpeg, checkWriteVideoOptions, formatFromPath, writeVideo } from '../../postprocess/encode.js';
import { closePool } from '../../postprocess/pool.js';
import { loadNative, type NativeEnhanceProgress } from '../../native/binding.js';
import { formatProfile, profileTable } from '../../profile.js';

function int(name: string) {
  return (v: string): number => {
    if (!/^-?\d+$/.test(v.trim())) throw new InvalidArgumentError(`Expected an integer for ${name}.`);
    return Number(v);
  };
}

function num(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`Expected a number for ${name}.`);
    return n;
  };
}

function size(v: string): { width: number; height: number } {
  const m = /^(\d+)x(\d+)$/.exec(v.trim());
  const { min, max } = RESIZE_LIMITS;
  const ok = (s: string | undefined) => Number(s) >= min && Number(s) <= max;
  if (!m || !ok(m[1]) || !ok(m[2])) throw new InvalidArgumentError(`Expected WIDTHxHEIGHT with sides from ${min} to ${max}, e.g. 1280x720.`);
  return { width: Number(m[1]), height: Number(m[2]) };
}

interface GenerateCliOptions {
  output: string;
  frames?: number;
  model?: string;
  seed?: number;
  steps?: number;
  threads?: number;
  backend?: 'auto' | 'cpu' | 'cuda';
  guidance?: number;
  negative?: string;
  format?: OutputFormat;
  fps: number;
  size?: { width: number; height: number };
  quiet?: boolean;
  profile?: boolean;
  enhance?: boolean;
  enhanceSteps?: number;
  enhanceWindow?: number;
  enhanceSize?: { width: number; height: number };
}

const STAGE_LABEL: Record<GenerateProgress['stage'], string> = { text: 'text', stage1: 'stage 1', extend: 'extend', decode: 'decode' };

/** Progress display: a cli-progress bar on a TTY, else a plain line every ~20% of a chunk's steps. */
class ProgressView {
  private bar: cliProgress.SingleBar | undefined;
  private readonly tty: boolean;
  private lastKey = '';

  constructor(private readonly quiet: boolean) {
    this.tty = Boolean(process.stderr.isTTY);
  }

  update(p: GenerateProgress): void {
    if (this.quiet) return;
    const total = p.chunks * p.steps;
    const value = p.chunk * p.steps + p.step;
    const payload = {
      chunk: p.chunk + 1,
      chunks: p.chunks,
      stage: STAGE_LABEL[p.stage],
      step: p.step,
      steps: p.steps,
      fps: p.framesPerSecond.toFixed(2),
      eta_s: formatDuration(p.etaMs),
      frames: p.framesDone,
      totalFrames: p.frames,
    };
    if (this.tty) {
      if (!this.bar) {
        this.bar = new cliProgress.SingleBar(
          {
            format: 'chunk {chunk}/{chunks} {stage} |{bar}| step {step}/{steps} | {frames}/{totalFrames} frames | {fps} frames/s | ETA {eta_s}',
            stream: process.stderr,
            hideCursor: true,
            clearOnComplete: false,
          },
          cliProgress.Presets.shades_classic,
        );
        this.bar.start(total, value, payload);
      }
      this.bar.setTotal(total);
      this.bar.update(value, payload);
      return;
    }
    const every = Math.max(1, Math.round(p.steps / 5));
    const key = `${p.chunk}/${p.step}`;
    if ((p.step % every === 0 || p.step === p.steps || p.step === 1) && key !== this.lastKey) {
      this.lastKey = key;
      process.stderr.write(
        `chunk ${p.chunk + 1}/${p.chunks} (${payload.stage}) step ${p.step}/${p.steps}, ${p.framesDone}/${p.frames} frames, ${payload.fps} frames/s, ETA ${payload.eta_s}\n`,
      );
    }
  }

  stop(): void {
    this.bar?.stop();
    this.bar = undefined;
  }
}

export function register(program: Command): void {
  program
    .command('generate')
    .description('generate a video from a text prompt (MP4, GIF or PNG frames)')
    .argument('<prompt>', 'what the video shows')
    .requiredOption('-o, --output <file>', 'output file (.mp4, .webm, .gif) or, with --format png, a folder or name.png prefix')
    .option('--frames <n>', 'number of frames (default: the model\'s first chunk, 16 for StreamingT2V)', int('--frames'))
    .option('--model <dir>', 'model folder written by `st2v convert` (default: the built-in tiny model, untrained)')
    .option('--seed <n>', 'random seed (PyTorch-compatible generator)', int('--seed'))
    .option('--steps <n>', 'denoising steps per chunk (default: the model\'s, 50 for StreamingT2V)', int('--steps'))
    .option('--threads <n>', 'compute threads (0 = all hardware threads)', int('--threads'))
    .addOption(new Option('--backend <name>', "compute backend: 'cuda' fails with ERR_NO_CUDA without a usable GPU (default auto = cpu)").choices(['auto', 'cpu', 'cuda']))
    .option('--guidance <x>', 'classifier-free guidance scale (default 7.5)', num('--guidance'))
    .option('--negative <text>', 'negative prompt')
    .addOption(new Option('--format <format>', 'output format (default: from the output extension: .mp4/.m4v/.mov, .webm, .gif, .png; mp4 without one)').choices([...OUTPUT_FORMATS]))
    .option('--fps <n>', 'frames per second of the file', num('--fps'), 8)
    .option('--size <WxH>', 'fit frames inside WxH and pad with black (1280x720 is the official stage-3 canvas)', size)
    .option('--enhance', 'stage 3: refine the video with the enhancer (MS-Vid2Vid-XL, randomized blending; 1280x720; needs --frames >= 24 and a model with the enhancer, or the built-in model\'s UNTRAINED one)')
    .option('--enhance-steps <n>', 'enhancer solver steps (default 30)', int('--enhance-steps'))
    .option('--enhance-window <chunks>', 'enhancer chunks per window: memory bounded by the window (default 0 = the whole video)', int('--enhance-window'))
    .option('--enhance-size <WxH>', 'enhancer output size (default 1280x720)', size)
    .option('-q, --quiet', 'no progress output')
    .option('--profile', 'after the video, print where the CPU time went, op by op (seconds, share, GFLOP/s) to stderr')
    .addHelpText(
      'after',
      `
Without --model the built-in default tiny model is used: the StreamingT2V architecture at a small config with
deterministic seeded weights. They are UNTRAINED: the video is noise-like. It exists to check the installation.

Examples:
  $ st2v generate "a red ball" -o ball.mp4
  $ st2v generate "a cat surfing" -o cat.gif --model models/streamingt2v --frames 56 --seed 33
  $ st2v generate "a cat surfing" -o cat_hd.mp4 --model models/streamingt2v --frames 56 --enhance
  $ st2v generate "waves" -o frames/ --format png --size 1280x720`,
    )
    .action(async (prompt: string, o: GenerateCliOptions) => {
      const format = o.format ?? formatFromPath(o.output);
      const writeOptions = { output: o.output, format, fps: o.fps, ...(o.size ? { resize: o.size } : {}) };
      checkWriteVideoOptions(writeOptions); // fail before loading anything
      if (!o.enhance && (o.enhanceSteps !== undefined || o.enhanceWindow !== undefined || o.enhanceSize !== undefined)) {
        throw new RangeError('--enhance-steps, --enhance-window and --enhance-size need --enhance');
      }
      const view = new ProgressView(Boolean(o.quiet));
      let lastEnhanceLine = '';
      const enhance: GenerateEnhanceOptions | undefined = o.enhance
        ? {
            ...(o.enhanceSteps !== undefined ? { steps: o.enhanceSteps } : {}),
            ...(o.enhanceWindow !== undefined ? { window: o.enhanceWindow } : {}),
            ...(o.enhanceSize ? { width: o.enhanceSize.width, height: o.enhanceSize.height } : {}),
            onProgress: (p: NativeEnhanceProgress) => {
              if (o.quiet) return;
              view.stop(); // stage 2 is done once the enhancer reports
              const line = `enhance ${enhanceProgressLine(p)}`;
              if (line !== lastEnhanceLine) process.stderr.write(line + '\n');
              lastEnhanceLine = line;
            },
          }
        : undefined;
      // the enhancer's settings as generate() will check them, now, before the model loads
      const enhanceChunk = enhance ? resolveEnhanceSettings(enhance).chunk : 0;
      if (format !== 'png') assertFfmpeg();
      const started = performance.now();
      // the process-wide CPU op profile (native/core/profile.h) from the model load on
      if (o.profile) loadNative().setCpuProfile(true);
      const engine = await Engine.load(o.model, {
        ...(o.threads === undefined ? {} : { threads: o.threads }),
        ...(o.backend === undefined ? {} : { backend: o.backend }),
      });
      const ac = new AbortController();
      const onSigint = () => ac.abort();
      process.once('SIGINT', onSigint);
      try {
        const m = engine.model;
        if (!o.quiet) {
          process.stderr.write(
            `model: ${m.name}${m.untrained ? ' (built-in, UNTRAINED seeded weights: the output is noise-like)' : ''}, ${m.width}x${m.height}, ` +
              `chunks of ${m.firstChunkFrames} then ${m.chunkFrames} frames\n`,
          );
        }
        const stageMs = { textEncoder: 0, imageEncoder: 0, unet: 0, cam: 0, vaeDecode: 0 };
        // a video shorter than one enhancer chunk has nothing to refine: refused before any denoising step
        if (enhance && (o.frames ?? m.firstChunkFrames) < enhanceChunk) {
          throw new RangeError(`--enhance needs at least ${enhanceChunk} frames (one enhancer chunk): pass --frames ${enhanceChunk} or more`);
        }
        const gen = engine.generate({
          prompt,
          ...(o.negative !== undefined ? { negativePrompt: o.negative } : {}),
          ...(o.frames !== undefined ? { frames: o.frames } : {}),
          ...(o.seed !== undefined ? { seed: o.seed } : {}),
          ...(o.steps !== undefined ? { steps: o.steps } : {}),
          ...(o.guidance !== undefined ? { guidanceScale: o.guidance } : {}),
          signal: ac.signal,
          onProgress: (p) => view.update(p),
          ...(enhance ? { enhance } : {}),
        });
        async function* tap(): AsyncGenerator<FrameChunk> {
          for await (const c of gen) {
            for (const k of Object.keys(stageMs) as Array<keyof typeof stageMs>) stageMs[k] += c.timings[k] ?? 0;
            yield c;
          }
        }
        const r = await writeVideo(tap(), writeOptions);
        view.stop();
        const s = (performance.now() - started) / 1000;
        process.stdout.write(
          `wrote ${r.format === 'png' ? `${r.files.length} PNG files (${r.files[0]} ...)` : r.files[0]}: ${r.frames} frames ${r.width}x${r.height} ` +
            (r.videoWidth !== undefined && (r.videoWidth !== r.width || r.videoHeight !== r.height)
              ? `(encoded ${r.videoWidth}x${r.videoHeight}: yuv420p needs even sizes) `
              : '') +
            `in ${s.toFixed(1)} s (${(r.frames / s).toFixed(2)} frames/s end to end)\n`,
        );
        if (!o.quiet) {
          const parts = Object.entries(stageMs).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${(v / 1000).toFixed(2)} s`);
          if (parts.length) process.stderr.write(`stages: ${parts.join(', ')}\n`);
        }
        if (o.profile) {
          const rows = loadNative().cpuProfile();
          process.stderr.write(
            `CPU op profile (outermost ops of every thread, ${s.toFixed(1)} s in all` +
              `${o.backend === 'cuda' ? '; with --backend cuda the device ops are not in it' : ''}):\n` +
              `${formatProfile(profileTable(rows, s))}\n`,
          );
        }
      } catch (err) {
        view.stop();
        if (ac.signal.aborted && err instanceof St2vError && err.code === 'ERR_CANCELLED') throw new St2vError('interrupted', 'ERR_CANCELLED');
        throw err;
      } finally {
        if (o.profile) loadNative().setCpuProfile(false);
        process.removeListener('SIGINT', onSigint);
        await engine.dispose();
        await closePool();
      }
    });
}
