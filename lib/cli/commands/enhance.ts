// `st2v enhance <in.mp4> -o <out.mp4> --prompt "…"`: stage 3 (MS-Vid2Vid-XL with randomized blending) on any
// input video: decoded with ffmpeg as rgb24, fitted + padded to 1280x720, enhanced (lib/enhance.ts), encoded
// with the shared writer as the frames become final.
import { Option, type Command } from 'commander';
import { enhance, enhanceProgressLine } from '../../enhance.js';
import { callNativeSync, St2vError } from '../../errors.js';
import { decodeFrames, probeVideo } from '../../eval/video.js';
import { loadNative, type NativeEnhanceFrames, type NativeEnhanceProgress } from '../../native/binding.js';
import { assertFfmpeg, checkWriteVideoOptions, writeVideo, type RgbChunk } from '../../postprocess/encode.js';

interface EnhanceCliOptions {
  output: string;
  prompt: string;
  negativePrompt: string;
  model?: string;
  steps: string;
  seed: string;
  window: string;
  chunk: string;
  overlap: string;
  size?: string;
  fps?: string;
  untrained?: boolean;
  backend?: 'auto' | 'cpu' | 'cuda';
  quiet?: boolean;
}

function intOpt(name: string, s: string, lo: number, hi: number): number {
  const v = Number(s);
  if (!Number.isInteger(v) || v < lo || v > hi) throw new RangeError(`${name} must be an integer in [${lo}, ${hi}], got '${s}'`);
  return v;
}

/** An async queue: frames pushed from the native callback, consumed by the video writer. */
class FrameQueue implements AsyncIterable<RgbChunk> {
  private items: RgbChunk[] = [];
  private done = false;
  private error: unknown;
  private wake: (() => void) | undefined;
  push(c: RgbChunk): void {
    this.items.push(c);
    this.wake?.();
  }
  close(err?: unknown): void {
    this.done = true;
    this.error = err;
    this.wake?.();
  }
  async *[Symbol.asyncIterator](): AsyncIterator<RgbChunk> {
    for (;;) {
      const next = this.items.shift();
      if (next) {
        yield next;
        continue;
      }
      if (this.done) {
        if (this.error !== undefined) throw this.error;
        return;
      }
      await new Promise<void>((r) => (this.wake = r));
      this.wake = undefined;
    }
  }
}

export function register(program: Command): void {
  program
    .command('enhance')
    .description('stage 3: enhance a video to 1280x720 with the MS-Vid2Vid-XL enhancer and randomized blending')
    .argument('<video>', 'input video (any size; fitted and padded to the output size)')
    .requiredOption('-o, --output <file>', 'output video (.mp4 / .m4v / .mov, .webm, .gif)')
    .requiredOption('-p, --prompt <text>', 'text prompt')
    .option('--negative-prompt <text>', 'negative prompt', '')
    .option('--model <dir>', 'model folder holding the enhancer component (enhancer.*) with its VAE and text encoder')
    .option('--steps <n>', 'solver steps', '30')
    .option('--seed <n>', 'seed', '0')
    .option('--window <chunks>', 'chunks per window (0 = whole video; memory bounded by the window otherwise)', '0')
    .option('--chunk <frames>', 'randomized-blending chunk', '24')
    .option('--overlap <frames>', 'randomized-blending overlap', '8')
    .option('--size <WxH>', 'output size', '1280x720')
    .option('--fps <n>', 'output frame rate (default: the input rate, else 8)')
    .option('--untrained', 'without --model: run the built-in tiny enhancer with random, UNTRAINED weights (plumbing test only)')
    .addOption(new Option('--backend <name>', "where the enhancer's denoiser and VAE run: 'cuda' fails with ERR_NO_CUDA without a usable GPU (default auto = cpu)").choices(['auto', 'cpu', 'cuda']))
    .option('-q, --quiet', 'no progress output')
    .action(async (input: string, o: EnhanceCliOptions) => {
      const steps = intOpt('--steps', o.steps, 1, 1000);
      const seed = intOpt('--seed', o.seed, 0, Number.MAX_SAFE_INTEGER);
      const window = intOpt('--window', o.window, 0, 1 << 20);
      const chunk = intOpt('--chunk', o.chunk, 2, 1024);
      const overlap = intOpt('--overlap', o.overlap, 1, chunk - 1);
      const m = /^(\d+)x(\d+)$/.exec(o.size ?? '1280x720');
      if (!m) throw new RangeError(`--size must be WxH, got '${o.size}'`);
      const width = Number(m[1]), height = Number(m[2]);
      if (o.model && o.untrained) throw new TypeError('--untrained selects the built-in enhancer: drop --model');
      if (o.untrained && !o.quiet) process.stderr.write('warning: built-in enhancer with random, untrained weights: the output is not an enhancement\n');
      if (!o.model && !o.untrained) {
        throw new St2vError(
          "st2v enhance needs --model <dir>: a model folder with the MS-Vid2Vid-XL enhancer (component 'enhancer', " +
            'converted from non_ema_0035000.pth with `st2v convert`); the built-in default model has no enhancer',
          'ERR_WEIGHTS_MISSING',
        );
      }
      assertFfmpeg();
      const info = probeVideo(input);
      const fps = o.fps !== undefined ? Number(o.fps) : Number.isFinite(info.fps) && info.fps > 0 ? info.fps : 8;
      if (!Number.isFinite(fps) || fps <= 0) throw new RangeError('--fps must be a positive number');
      checkWriteVideoOptions({ output: o.output, fps }); // before the decode and the enhancer
      if (o.backend === 'cuda') callNativeSync(() => loadNative().resolveBackend('cuda')); // ERR_NO_CUDA before the decode
      // rgb24 decode (the whole input: it is small next to the 1280x720 output, which streams to the encoder)
      const pieces: Uint8Array[] = [];
      let frames = 0;
      for await (const c of decodeFrames(input, info, 16)) {
        pieces.push(c.data);
        frames += c.frames;
      }
      const data = new Uint8Array(frames * info.width * info.height * 3);
      let off = 0;
      for (const p of pieces) {
        data.set(p, off);
        off += p.length;
      }
      const queue = new FrameQueue();
      const ac = new AbortController();
      const onSig = () => ac.abort();
      process.once('SIGINT', onSig);
      let lastLine = '';
      const log = (p: NativeEnhanceProgress) => {
        if (o.quiet) return;
        const line = enhanceProgressLine(p);
        if (line !== lastLine) process.stderr.write(line + '\n');
        lastLine = line;
      };
      const writer = writeVideo(queue, { output: o.output, fps });
      try {
        const r = await enhance(
          { data, frames, width: info.width, height: info.height },
          {
            model: o.model ?? null,
            untrained: Boolean(o.untrained),
            ...(o.backend === undefined ? {} : { backend: o.backend }),
            prompt: o.prompt,
            negativePrompt: o.negativePrompt,
            steps,
            seed,
            window,
            chunk,
            overlap,
            width,
            height,
            signal: ac.signal,
            onProgress: log,
            onFrames: (f: NativeEnhanceFrames) => queue.push({ data: f.data, index: f.index, frames: f.frames, width: f.width, height: f.height }),
          },
        );
        queue.close();
        const w = await writer;
        if (!o.quiet) process.stderr.write(`enhanced ${r.frames} of ${frames} frames -> ${w.files.join(', ')} (${w.width}x${w.height})\n`);
      } catch (err) {
        queue.close(err);
        await writer.catch(() => undefined);
        throw err;
      } finally {
        process.removeListener('SIGINT', onSig);
      }
    });
}
