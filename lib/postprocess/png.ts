/** A minimal PNG writer (8-bit RGB, filter "Up"/"None" chosen per row by a cheap heuristic) on node:zlib. */
import zlib from 'node:zlib';

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(buf: Uint8Array, crc = 0xffffffff): number {
  for (let i = 0; i < buf.length; i++) crc = CRC_TABLE[(crc ^ buf[i]!) & 0xff]! ^ (crc >>> 8);
  return crc;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  out.set(data, 8);
  const crc = crc32(out.subarray(4, 8 + data.length)) ^ 0xffffffff;
  out.writeUInt32BE(crc >>> 0, 8 + data.length);
  return out;
}

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** Encodes one RGB uint8 frame (h, w, 3) as a PNG file. */
export function encodePng(rgb: Uint8Array, width: number, height: number, level = 6): Buffer {
  const stride = width * 3;
  if (rgb.length !== stride * height) throw new RangeError(`Expected ${stride * height} bytes for rgb but received ${rgb.length}`);
  const raw = Buffer.alloc((stride + 1) * height);
  for (let y = 0; y < height; y++) {
    const o = y * (stride + 1);
    const row = rgb.subarray(y * stride, (y + 1) * stride);
    if (y === 0) {
      raw[o] = 0; // None
      raw.set(row, o + 1);
      continue;
    }
    raw[o] = 2; // Up: usually smaller for video frames
    const prev = y * stride - stride;
    for (let i = 0; i < stride; i++) raw[o + 1 + i] = (row[i]! - rgb[prev + i]!) & 0xff;
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type RGB
  ihdr[10] = 0;
  ihdr[11] = 0;
  ihdr[12] = 0;
  return Buffer.concat([SIGNATURE, chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(raw, { level })), chunk('IEND', new Uint8Array(0))]);
}
