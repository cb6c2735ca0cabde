/**
 * Writes streamed frame chunks to a video file: MP4 (H.264, yuv420p) or animated GIF through the ffmpeg binary
 * (rawvideo rgb24 on its stdin), or one PNG file per frame. Post-processing runs in the piscina pool; chunk k is
 * converted and piped into ffmpeg while the engine computes chunk k+1.
 */
import { type ChildProcessByStdio, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import type { Writable, Readable } from 'node:stream';
import { St2vError } from '../errors.js';
import { checkInteger, checkNumber, checkString, invalidRange, invalidType } from '../options.js';
import { encodePngFrames, processFrames } from './pool.js';

export type OutputFormat = 'mp4' | 'webm' | 'gif' | 'png';
export const OUTPUT_FORMATS: readonly OutputFormat[] = ['mp4', 'webm', 'gif', 'png'];
/** The output extensions each format is taken from when no format is given (.mov / .m4v: the MP4 family). */
const FORMAT_OF_EXTENSION: Readonly<Record<string, OutputFormat>> = { mp4: 'mp4', m4v: 'mp4', mov: 'mp4', webm: 'webm', gif: 'gif', png: 'png' };
/** The encoders' quality scales: x264's CRF 0 (lossless) to 51, VP9's CRF 0 to 63 (with a zero bitrate target). */
const CRF_RANGE: Readonly<Record<'mp4' | 'webm', { max: number; def: number }>> = { mp4: { max: 51, def: 18 }, webm: { max: 63, def: 31 } };

/** What {@link writeVideo} consumes: the chunks of Engine.generate (or any producer of the same shape). */
export interface RgbChunk {
  /** RGB uint8 (frames, height, width, 3), or [-1, 1] floats of the same layout. */
  data: Uint8Array | Float32Array;
  index: number;
  frames: number;
  width: number;
  height: number;
}

export interface WriteVideoOptions {
  /** Output file (mp4 / webm / gif), or for png a folder or a `name.png` file prefix. Required. */
  output: string;
  /**
   * Container / image format. Defaults to `the output's extension: .mp4, .m4v, .mov -> mp4, .webm, .gif, .png; mp4
   * when it has none` (any other extension is a RangeError unless a format is given).
   */
  format?: OutputFormat;
  /** Frames per second written into the file. Defaults to `8` (the official StreamingT2V export rate). */
  fps?: number;
  /** Fit each frame inside this size and pad with black (the official 1280x720 path). Defaults to `null` (keep size). */
  resize?: { width: number; height: number } | null;
  /** Quality: x264's constant rate factor 0 (lossless) to 51 for mp4, VP9's 0 to 63 for webm. Defaults to `18` (mp4) / `31` (webm). */
  crf?: number;
  /** Called after each chunk has been written. Defaults to `undefined`. */
  onChunkWritten?: (info: { index: number; frames: number; framesWritten: number }) => void;
}

export interface WriteVideoResult {
  format: OutputFormat;
  /** The file written (mp4 / webm / gif), or the PNG files in order. */
  files: string[];
  frames: number;
  /** The frames' size (after `resize`). */
  width: number;
  height: number;
  /** mp4 / webm: the encoded picture, the frames padded by one black row / column where a size is odd (yuv420p). */
  videoWidth?: number;
  videoHeight?: number;
}

/** The ffmpeg binary used: $ST2V_FFMPEG, else `ffmpeg` from PATH. */
export function ffmpegPath(): string {
  return process.env.ST2V_FFMPEG || 'ffmpeg';
}

/** Throws St2vError ERR_NO_FFMPEG unless the ffmpeg binary runs. Fast (runs `ffmpeg -version`). */
export function assertFfmpeg(bin = ffmpegPath()): void {
  const r = spawnSync(bin, ['-hide_banner', '-version'], { encoding: 'utf8', timeout: 20_000 });
  if (r.error || r.status !== 0) {
    throw new St2vError(
      `the ffmpeg binary is needed to write MP4, WebM and GIF files but '${bin}' could not be run` +
        ` (${r.error ? (r.error as NodeJS.ErrnoException).code ?? r.error.message : `exit ${r.status}`}).` +
        ` Install it (Debian/Ubuntu: apt-get install ffmpeg; macOS: brew install ffmpeg), set ST2V_FFMPEG to its path,` +
        ` or write PNG frames (--format png)`,
      'ERR_NO_FFMPEG',
    );
  }
}

/**
 * The format an output name asks for: its extension (.mp4 / .m4v / .mov, .webm, .gif, .png), mp4 when it has none.
 * Any other extension is a RangeError naming `output` (a .mkv or .avi name would otherwise get an MP4 inside): pass
 * a format explicitly to write such a name.
 */
export function formatFromPath(output: string): OutputFormat {
  const ext = path.extname(output).slice(1).toLowerCase();
  if (ext === '') return 'mp4';
  const f = FORMAT_OF_EXTENSION[ext];
  if (f === undefined) {
    throw invalidRange('a name ending in .mp4, .m4v, .mov, .webm, .gif or .png (or an explicit format)', 'output', output);
  }
  return f;
}

const FORMAT_LIST = OUTPUT_FORMATS.join(', ');
/** The sides `resize` accepts. */
export const RESIZE_LIMITS = { min: 2, max: 8192 } as const;

/**
 * Validates writeVideo's options as writeVideo does (TypeError / RangeError naming the option) without writing
 * anything: for callers that want to refuse bad options before they start the work that produces the frames.
 */
export function checkWriteVideoOptions(options: WriteVideoOptions): void {
  resolveOptions(options);
}

function resolveOptions(o: WriteVideoOptions) {
  if (typeof o !== 'object' || o === null) throw invalidType('an object', 'options', o);
  const output = checkString(o.output, 'output', { nonEmpty: true });
  let format: OutputFormat;
  if (o.format !== undefined) {
    if (typeof o.format !== 'string') throw invalidType(`one of ${FORMAT_LIST}`, 'format', o.format);
    if (!(OUTPUT_FORMATS as readonly string[]).includes(o.format)) throw invalidRange(`one of ${FORMAT_LIST}`, 'format', o.format);
    format = o.format;
  } else {
    format = formatFromPath(output);
  }
  const fps = o.fps === undefined ? 8 : checkNumber(o.fps, 'fps', 0.1, 240);
  const cr = format === 'webm' ? CRF_RANGE.webm : CRF_RANGE.mp4;  // gif / png: checked, unused
  const crf = o.crf === undefined ? cr.def : checkInteger(o.crf, 'crf', 0, cr.max);
  let resize: { width: number; height: number } | null = null;
  if (o.resize !== undefined && o.resize !== null) {
    if (typeof o.resize !== 'object') throw invalidType('an object {width, height} or null', 'resize', o.resize);
    const { min, max } = RESIZE_LIMITS;
    resize = { width: checkInteger(o.resize.width, 'resize.width', min, max), height: checkInteger(o.resize.height, 'resize.height', min, max) };
  }
  return { output, format, fps, crf, resize };
}

function ffmpegArgs(format: OutputFormat, width: number, height: number, fps: number, crf: number, output: string): string[] {
  const input = ['-hide_banner', '-loglevel', 'error', '-nostdin', '-y', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', `${width}x${height}`, '-r', String(fps), '-i', 'pipe:0'];
  if (format === 'gif') {
    return [...input, '-vf', 'split[a][b];[a]palettegen=stats_mode=full[p];[b][p]paletteuse=dither=sierra2_4a', '-loop', '0', '-f', 'gif', output];
  }
  // yuv420p needs even sizes: pad odd ones with one black row/column.
  const vf = width % 2 || height % 2 ? ['-vf', 'pad=ceil(iw/2)*2:ceil(ih/2)*2'] : [];
  if (format === 'webm') {
    // VP9 in constant-quality mode (crf with a zero bitrate target), rows encoded in parallel
    return [...input, ...vf, '-c:v', 'libvpx-vp9', '-crf', String(crf), '-b:v', '0', '-deadline', 'good', '-cpu-used', '4', '-row-mt', '1', '-pix_fmt', 'yuv420p', '-f', 'webm', output];
  }
  return [...input, ...vf, '-c:v', 'libx264', '-preset', 'medium', '-crf', String(crf), '-pix_fmt', 'yuv420p', '-movflags', '+faststart', '-f', 'mp4', output];
}

class FfmpegSink {
  private readonly proc: ChildProcessByStdio<Writable, null, Readable>;
  private stderr = '';
  private spawnError: Error | undefined;
  private readonly exited: Promise<number | null>;

  constructor(bin: string, args: string[]) {
    this.proc = spawn(bin, args, { stdio: ['pipe', 'ignore', 'pipe'] });
    this.proc.stderr.setEncoding('utf8');
    this.proc.stderr.on('data', (d: string) => {
      this.stderr = (this.stderr + d).slice(-4000);
    });
    this.proc.stdin.on('error', () => undefined); // EPIPE: reported through the exit status
    this.exited = new Promise((resolve) => {
      this.proc.on('error', (err) => {
        this.spawnError = err;
        resolve(null);
      });
      this.proc.on('close', (code) => resolve(code));
    });
  }

  private failure(code: number | null): St2vError {
    if (this.spawnError) {
      return new St2vError(`could not run ffmpeg: ${this.spawnError.message}`, (this.spawnError as NodeJS.ErrnoException).code === 'ENOENT' ? 'ERR_NO_FFMPEG' : 'ERR_IO', { cause: this.spawnError });
    }
    return new St2vError(`ffmpeg failed (exit ${code}): ${this.stderr.trim() || 'no message'}`, 'ERR_IO');
  }

  async write(buf: Uint8Array): Promise<void> {
    if (this.spawnError || this.proc.exitCode !== null) throw this.failure(this.proc.exitCode);
    if (!this.proc.stdin.write(buf)) {
      const r = await Promise.race([once(this.proc.stdin, 'drain').then(() => 'drain' as const), this.exited.then(() => 'exit' as const)]);
      if (r === 'exit') throw this.failure(this.proc.exitCode);
    }
  }

  async finish(): Promise<void> {
    this.proc.stdin.end();
    const code = await this.exited;
    if (code !== 0) throw this.failure(code);
  }

  kill(): void {
    if (this.proc.exitCode === null && !this.spawnError) this.proc.kill('SIGKILL');
  }
}

function pngNames(output: string): (i: number) => string {
  if (path.extname(output).toLowerCase() === '.png') {
    const base = output.slice(0, -4);
    return (i) => `${base}_${String(i).padStart(5, '0')}.png`;
  }
  fs.mkdirSync(output, { recursive: true });
  return (i) => path.join(output, `frame_${String(i).padStart(5, '0')}.png`);
}

/**
 * Consumes chunks (in order, as they arrive) and writes them. The chunks' buffers are transferred to the pool:
 * do not use them afterwards. On failure the partial output is removed.
 */
export async function writeVideo(chunks: AsyncIterable<RgbChunk>, options: WriteVideoOptions): Promise<WriteVideoResult> {
  const o = resolveOptions(options);
  if (o.format !== 'png') assertFfmpeg();
  const files: string[] = [];
  let sink: FfmpegSink | undefined;
  let names: ((i: number) => string) | undefined;
  let width = 0;
  let height = 0;
  let framesWritten = 0;
  let expectIndex = 0;
  // Writes are chained so chunk k is written while chunk k+1 is being generated and converted.
  let chain: Promise<void> = Promise.resolve();
  let chainError: unknown;
  try {
    for await (const c of chunks) {
      if (chainError !== undefined) break;
      if (c.index !== expectIndex) throw new St2vError(`chunk index ${c.index} arrived where ${expectIndex} was expected`, 'ERR_INTERNAL');
      expectIndex += c.frames;
      const outW = o.resize?.width ?? c.width;
      const outH = o.resize?.height ?? c.height;
      if (width === 0) {
        width = outW;
        height = outH;
        if (o.format === 'png') names = pngNames(o.output);
        else {
          fs.mkdirSync(path.dirname(path.resolve(o.output)), { recursive: true });
          sink = new FfmpegSink(ffmpegPath(), ffmpegArgs(o.format, width, height, o.fps, o.crf, o.output));
        }
      } else if (outW !== width || outH !== height) {
        throw new St2vError(`chunk size ${outW}x${outH} differs from the first chunk's ${width}x${height}`, 'ERR_INTERNAL');
      }
      const task = { data: c.data, frames: c.frames, width: c.width, height: c.height, resize: o.resize };
      const index = c.index;
      const frames = c.frames;
      const converted = o.format === 'png' ? encodePngFrames({ ...task, level: 6 }) : processFrames(task);
      converted.catch(() => undefined); // observed through the chain
      chain = chain.then(async () => {
        const r = await converted;
        if (Array.isArray(r)) {
          for (let i = 0; i < r.length; i++) {
            const file = names!(index + i);
            await fs.promises.writeFile(file, r[i]!);
            files.push(file);
          }
        } else {
          await sink!.write(r);
        }
        framesWritten += frames;
        options.onChunkWritten?.({ index, frames, framesWritten });
      });
      chain.catch((err: unknown) => {
        chainError ??= err;
      });
    }
    await chain;
    if (width === 0) throw new St2vError('no frames to write', 'ERR_INVALID_ARG');
    if (sink) {
      await sink.finish();
      files.push(o.output);
    }
    const video = o.format === 'mp4' || o.format === 'webm' ? { videoWidth: width + (width % 2), videoHeight: height + (height % 2) } : {};
    return { format: o.format, files, frames: framesWritten, width, height, ...video };
  } catch (err) {
    await chain.catch(() => undefined);
    sink?.kill();
    if (o.format !== 'png') await fs.promises.rm(o.output, { force: true }).catch(() => undefined);
    throw chainError ?? err;
  }
}
