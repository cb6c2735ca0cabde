/**
 * Video input for the metrics: ffprobe for the geometry, ffmpeg decoding to rgb24 streamed in chunks of
 * whole frames (memory bounded by the chunk, not by the video length).
 */
import { spawn, spawnSync } from 'node:child_process';
import { St2vError } from '../errors.js';

export interface VideoInfo {
  width: number;
  height: number;
  /** Frames per second (r_frame_rate), NaN when unknown. */
  fps: number;
  /** Frame count from the container, or undefined when it does not say. */
  frames: number | undefined;
}

function ffmpegMissing(tool: string, cause?: unknown): St2vError {
  return new St2vError(
    `${tool} is needed to read videos but was not found on PATH (Debian/Ubuntu: apt-get install ffmpeg)`,
    'ERR_NO_FFMPEG',
    { cause },
  );
}

export function hasFfmpeg(): boolean {
  const r = spawnSync('ffmpeg', ['-version'], { stdio: 'ignore' });
  return r.status === 0;
}

export function probeVideo(file: string): VideoInfo {
  const r = spawnSync(
    'ffprobe',
    ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'stream=width,height,r_frame_rate,nb_frames', '-of', 'json', file],
    { encoding: 'utf8' },
  );
  if (r.error) throw ffmpegMissing('ffprobe', r.error);
  if (r.status !== 0) throw new St2vError(`cannot read video ${file}: ${r.stderr.trim()}`, 'ERR_IO');
  let parsed: { streams?: Array<Record<string, unknown>> };
  try {
    parsed = JSON.parse(r.stdout) as typeof parsed;
  } catch (err) {
    throw new St2vError(`ffprobe gave unreadable output for ${file}`, 'ERR_FORMAT', { cause: err });
  }
  const s = parsed.streams?.[0];
  if (!s || typeof s.width !== 'number' || typeof s.height !== 'number') {
    throw new St2vError(`${file} has no video stream`, 'ERR_FORMAT');
  }
  let fps = NaN;
  if (typeof s.r_frame_rate === 'string') {
    const [a, b] = s.r_frame_rate.split('/').map(Number);
    if (a !== undefined && b !== undefined && b > 0) fps = a / b;
  }
  const nb = typeof s.nb_frames === 'string' ? Number(s.nb_frames) : NaN;
  return { width: s.width, height: s.height, fps, frames: Number.isInteger(nb) && nb > 0 ? nb : undefined };
}

/**
 * Yields chunks of up to `chunkFrames` decoded rgb24 frames (each chunk a fresh Uint8Array of whole
 * frames). Aborting the signal kills ffmpeg and rejects with ERR_CANCELLED.
 */
export async function* decodeFrames(
  file: string,
  info: VideoInfo,
  chunkFrames: number,
  signal?: AbortSignal,
): AsyncGenerator<{ data: Uint8Array; frames: number }> {
  const frameBytes = info.width * info.height * 3;
  const proc = spawn('ffmpeg', ['-v', 'error', '-nostdin', '-i', file, '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d: string) => {
    if (stderr.length < 4000) stderr += d;
  });
  const exited = new Promise<number | null>((resolve, reject) => {
    proc.on('error', (err) => reject(ffmpegMissing('ffmpeg', err)));
    proc.on('close', (code) => resolve(code));
  });
  const onAbort = () => proc.kill('SIGKILL');
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    let buf = new Uint8Array(chunkFrames * frameBytes);
    let fill = 0;
    for await (const piece of proc.stdout as AsyncIterable<Buffer>) {
      if (signal?.aborted) break;
      let off = 0;
      while (off < piece.length) {
        const n = Math.min(piece.length - off, buf.length - fill);
        buf.set(piece.subarray(off, off + n), fill);
        fill += n;
        off += n;
        if (fill === buf.length) {
          yield { data: buf, frames: chunkFrames };
          buf = new Uint8Array(chunkFrames * frameBytes);
          fill = 0;
        }
      }
    }
    if (signal?.aborted) throw new St2vError('evaluation cancelled', 'ERR_CANCELLED');
    const code = await exited;
    if (code !== 0) throw new St2vError(`ffmpeg failed to decode ${file}: ${stderr.trim()}`, 'ERR_IO');
    const whole = Math.floor(fill / frameBytes);
    if (whole > 0) yield { data: buf.subarray(0, whole * frameBytes), frames: whole };
  } finally {
    signal?.removeEventListener('abort', onAbort);
    if (proc.exitCode === null) proc.kill('SIGKILL');
  }
}
