// `st2v convert` end to end on small inputs built from ../shared goldens (exact values in f32, RNE in f16),
// the diffusers folder layout, model.json, errors, and the CLI help.
import test from 'ava';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { St2vError } from '../../lib/errors.js';
import { convertModel } from '../../lib/convert/convert.js';
import { bf16ToF32, f16ToF32, f32BitsToBF16, f32BitsToF16 } from '../../lib/convert/dtype.js';
import { castBuffer, readSafetensorsHeader } from '../../lib/convert/native.js';
import { SafetensorsWriter } from '../../lib/convert/safetensors.js';
import { writeTorchCheckpoint } from '../../lib/convert/torch_writer.js';
import { register } from '../../lib/cli/commands/convert.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const shared = process.env.ST2V_SHARED ?? path.join(root, '..', 'shared');
const have = fs.existsSync(path.join(shared, 'golden', 'vae', 'vae_diffusers.safetensors'));
const stest = have ? test : test.skip;
if (!have) console.log(`../shared not found (${shared}; set ST2V_SHARED): golden-based convert tests skipped`);

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'st2v-convert-'));

/** name -> {dtype, shape, bytes} of a safetensors file (small files only). */
async function readAll(file: string) {
  const h = await readSafetensorsHeader(file);
  const buf = fs.readFileSync(file);
  const m = new Map<string, { dtype: string; shape: number[]; bytes: Buffer }>();
  for (const e of h.entries) m.set(e.name, { dtype: e.dtype, shape: e.shape, bytes: buf.subarray(h.dataStart + e.begin, h.dataStart + e.end) });
  return m;
}

function keysJson(file: string): Map<string, number[]> {
  const j = JSON.parse(fs.readFileSync(file, 'utf8')) as { tensors: Record<string, { shape: number[] }> };
  return new Map(Object.entries(j.tensors).map(([k, v]) => [k, v.shape]));
}

const quiet = { hash: true, onWarning: () => {} };

stest('official layout (Lightning zip pickle): every component file holds the exact tensors, model.json complete', async (t) => {
  const dir = tmp();
  try {
    // A streaming_t2v.ckpt-like checkpoint from the golden tiny model + the golden VAE under vae.
    const st = await readAll(path.join(shared, 'golden', 'st2v', 'weights.safetensors'));
    const vae = await readAll(path.join(shared, 'golden', 'vae', 'vae_diffusers.safetensors'));
    const all = new Map([...st, ...[...vae].map(([k, v]) => [`vae.${k}`, v] as const)]);
    const ckpt = path.join(dir, 'streaming_t2v.ckpt');
    await writeTorchCheckpoint(
      ckpt,
      [...all].map(([name, v]) => ({ name, dtype: v.dtype as 'f32', shape: v.shape, data: () => [v.bytes] })),
      { lightning: true },
    );
    const out = path.join(dir, 'model');
    const r = await convertModel({ input: ckpt, output: out, dtype: 'f32', ...quiet });
    t.deepEqual(Object.keys(r.components).sort(), ['cam', 'resampler', 'unet', 'vae']);
    let n = 0;
    for (const c of Object.keys(r.components)) {
      const got = await readAll(path.join(out, `${c}.safetensors`));
      for (const [k, v] of got) {
        const src = all.get(k);
        t.truthy(src, k);
        t.deepEqual(v.shape, src!.shape);
        t.true(v.bytes.equals(src!.bytes), k);
        n++;
      }
    }
    t.is(n, all.size);
    const mj = JSON.parse(fs.readFileSync(path.join(out, 'model.json'), 'utf8'));
    t.is(mj.sources[0].sha256, crypto.createHash('sha256').update(fs.readFileSync(ckpt)).digest('hex'));
    t.deepEqual(mj.sources[0].naming, ['streamingt2v']);
    t.is(mj.components.unet.config.in_channels, st.get('base_model.conv_in.weight')!.shape[1]);
    t.is(mj.components.unet.config.has_apm, true);
    t.is(mj.components.vae.config.latent_channels, 4);
    t.true(mj.hasExtension);
    // Existing output is not overwritten silently.
    const e = await t.throwsAsync(convertModel({ input: ckpt, output: out, ...quiet }));
    t.is((e as St2vError).code, 'ERR_INVALID_ARG');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

stest('LDM VAE -> diffusers VAE (f32 exact), and f16 output is round-to-nearest-even of the source', async (t) => {
  const dir = tmp();
  try {
    const diff = await readAll(path.join(shared, 'golden', 'vae', 'vae_diffusers.safetensors'));
    const out32 = path.join(dir, 'm32');
    await convertModel({ input: path.join(shared, 'golden', 'vae', 'vae_ldm.safetensors'), output: out32, dtype: 'f32', ...quiet });
    const got = await readAll(path.join(out32, 'vae.safetensors'));
    t.is(got.size, diff.size);
    for (const [k, v] of diff) {
      const g = got.get(`vae.${k}`);
      t.truthy(g, k);
      t.deepEqual(g!.shape, v.shape, k);
      t.true(g!.bytes.equals(v.bytes), k);
    }
    const out16 = path.join(dir, 'm16');
    await convertModel({ input: path.join(shared, 'golden', 'vae', 'vae_diffusers_legacy_attn.safetensors'), output: out16, ...quiet });
    const g16 = await readAll(path.join(out16, 'vae.safetensors'));
    let bad = 0;
    for (const [k, v] of diff) {
      const h = g16.get(`vae.${k}`)!;
      t.is(h.dtype, 'f16');
      const src = new Uint32Array(v.bytes.buffer.slice(v.bytes.byteOffset, v.bytes.byteOffset + v.bytes.length));
      const dst = new Uint16Array(h.bytes.buffer.slice(h.bytes.byteOffset, h.bytes.byteOffset + h.bytes.length));
      for (let i = 0; i < src.length; ++i) if (dst[i] !== f32BitsToF16(src[i]!)) bad++;
    }
    t.is(bad, 0);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

stest('OpenCLIP -> image_encoder (open_clip names) + text_encoder (HF names, q/k/v rows of in_proj)', async (t) => {
  const dir = tmp();
  try {
    const clip = path.join(shared, 'golden', 'clip');
    const out = path.join(dir, 'm');
    const r = await convertModel({ input: path.join(clip, 'openclip_tiny.safetensors'), output: out, dtype: 'f32', ...quiet });
    t.deepEqual(Object.keys(r.components).sort(), ['image_encoder', 'text_encoder', 'text_last_block']);
    const img = await readAll(path.join(out, 'image_encoder.safetensors'));
    const txt = await readAll(path.join(out, 'text_encoder.safetensors'));
    const wantImg = keysJson(path.join(clip, 'streamingt2v_image_encoder_tiny.keys.json'));
    const wantTxt = keysJson(path.join(clip, 'streamingt2v_text_encoder_tiny.keys.json'));
    t.deepEqual([...img.keys()].sort(), [...wantImg.keys()].sort());
    t.deepEqual([...txt.keys()].sort(), [...wantTxt.keys()].sort());
    for (const [k, s] of wantTxt) t.deepEqual(txt.get(k)!.shape, s, k);
    const src = await readAll(path.join(clip, 'openclip_tiny.safetensors'));
    const inProj = src.get('transformer.resblocks.3.attn.in_proj_weight')!;
    const rowBytes = inProj.bytes.length / 3;
    t.true(txt.get('text_encoder.text_model.encoder.layers.3.self_attn.k_proj.weight')!.bytes.equals(inProj.bytes.subarray(rowBytes, 2 * rowBytes)));
    t.is(r.components.text_encoder!.config.num_hidden_layers, 23);
    t.is(r.components.image_encoder!.config.patch_size, 14);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

stest('diffusers folder: unet/ text_encoder/ vae/ (.bin and .safetensors), tokenizer and configs copied', async (t) => {
  const dir = tmp();
  try {
    const src = path.join(dir, 'text-to-video-ms-1.7b');
    for (const s of ['unet', 'text_encoder', 'vae', 'tokenizer']) fs.mkdirSync(path.join(src, s), { recursive: true });
    // vae: deprecated attention names, as safetensors (+ an fp16 variant that must be ignored)
    fs.copyFileSync(path.join(shared, 'golden', 'vae', 'vae_diffusers_legacy_attn.safetensors'), path.join(src, 'vae', 'diffusion_pytorch_model.safetensors'));
    fs.writeFileSync(path.join(src, 'vae', 'diffusion_pytorch_model.fp16.safetensors'), 'not read');
    fs.writeFileSync(path.join(src, 'vae', 'config.json'), '{"_class_name": "AutoencoderKL"}');
    // unet: a few diffusers UNet3D tensors in a torch .bin (zip pickle)
    const f32 = (n: number, seed: number) => new Uint8Array(Float32Array.from({ length: n }, (_, i) => Math.sin(i + seed)).buffer);
    await writeTorchCheckpoint(path.join(src, 'unet', 'diffusion_pytorch_model.bin'), [
      { name: 'conv_in.weight', dtype: 'f32', shape: [8, 4, 3, 3], data: () => [f32(288, 1)] },
      { name: 'conv_in.bias', dtype: 'f32', shape: [8], data: () => [f32(8, 2)] },
      { name: 'time_embedding.linear_1.weight', dtype: 'f32', shape: [16, 8], data: () => [f32(128, 3)] },
    ]);
    // text_encoder: HF names, sharded safetensors with an index
    const w1 = new SafetensorsWriter(path.join(src, 'text_encoder', 'model-00001-of-00002.safetensors'), [{ name: 'text_model.embeddings.token_embedding.weight', dtype: 'f32', shape: [10, 4] }]);
    await w1.write(f32(40, 4));
    w1.finish();
    const w2 = new SafetensorsWriter(path.join(src, 'text_encoder', 'model-00002-of-00002.safetensors'), [
      { name: 'text_model.final_layer_norm.weight', dtype: 'f32', shape: [4] },
      { name: 'text_model.embeddings.position_ids', dtype: 'i64', shape: [1, 3] },
    ]);
    await w2.write(f32(4, 5));
    await w2.write(new Uint8Array(new BigInt64Array([0n, 1n, 2n]).buffer));
    w2.finish();
    fs.writeFileSync(path.join(src, 'text_encoder', 'model.safetensors.index.json'), JSON.stringify({
      weight_map: {
        'text_model.embeddings.token_embedding.weight': 'model-00001-of-00002.safetensors',
        'text_model.final_layer_norm.weight': 'model-00002-of-00002.safetensors',
        'text_model.embeddings.position_ids': 'model-00002-of-00002.safetensors',
      },
    }));
    fs.writeFileSync(path.join(src, 'tokenizer', 'vocab.json'), '{"a": 0}');
    fs.writeFileSync(path.join(src, 'tokenizer', 'merges.txt'), '#version: 0.2\n');
    const out = path.join(dir, 'out');
    const warnings: string[] = [];
    const r = await convertModel({ input: src, output: out, dtype: 'bf16', hash: true, onWarning: (m) => warnings.push(m) });
    t.deepEqual(Object.keys(r.components).sort(), ['text_encoder', 'unet', 'vae']);
    const unet = await readAll(path.join(out, 'unet.safetensors'));
    t.deepEqual([...unet.keys()], ['base_model.conv_in.bias', 'base_model.conv_in.weight', 'base_model.time_embedding.linear_1.weight']);
    t.is(unet.get('base_model.conv_in.weight')!.dtype, 'bf16');
    const te = await readAll(path.join(out, 'text_encoder.safetensors'));
    t.deepEqual([...te.keys()].sort(), ['text_encoder.text_model.embeddings.token_embedding.weight', 'text_encoder.text_model.final_layer_norm.weight']);
    const vae = await readAll(path.join(out, 'vae.safetensors'));
    t.true(vae.has('vae.decoder.mid_block.attentions.0.to_out.0.weight'));
    t.is(fs.readFileSync(path.join(out, 'tokenizer', 'vocab.json'), 'utf8'), '{"a": 0}');
    t.true(fs.existsSync(path.join(out, 'source-configs', 'vae.json')));
    const mj = JSON.parse(fs.readFileSync(path.join(out, 'model.json'), 'utf8'));
    t.is(mj.sources.length, 4); // unet .bin, two text shards, vae
    t.false(mj.hasExtension);
    t.is(mj.components.unet.config.in_channels, 4);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

stest('MS-Vid2Vid-XL enhancer weights -> enhancer.safetensors (enhancer.* names, configs from shapes)', async (t) => {
  const dir = tmp();
  try {
    const src = path.join(shared, 'golden', 'enhancer', 'weights.safetensors');
    const out = path.join(dir, 'm');
    const r = await convertModel({ input: src, output: out, dtype: 'f32', hash: false, onWarning: () => {} });
    t.deepEqual(Object.keys(r.components), ['enhancer']);
    const inp = await readAll(src);
    const got = await readAll(path.join(out, 'enhancer.safetensors'));
    t.is(got.size, inp.size);
    for (const [k, v] of inp) t.true(got.get(`enhancer.${k}`)!.bytes.equals(v.bytes), k);
    t.is(r.components.enhancer!.config.model_channels, inp.get('input_blocks.0.0.weight')!.shape[0]);
    t.is(r.components.enhancer!.config.context_dim, 1024);
    t.is(r.sources[0]!.sha256, undefined);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('EXPECTED FAILURE - unknown naming, unsafe pickle and missing input give typed errors; BAD CALL - bad dtype is a RangeError', async (t) => {
  const dir = tmp();
  try {
    const e1 = await t.throwsAsync(convertModel({ input: path.join(dir, 'nope.ckpt'), output: path.join(dir, 'o'), ...quiet }));
    t.is((e1 as St2vError).code, 'ERR_NOT_FOUND');
    const fixtures = path.join(shared, 'fixtures', 'torch-pickle');
    if (fs.existsSync(fixtures)) {
      const e2 = await t.throwsAsync(convertModel({ input: path.join(fixtures, 'lightning.ckpt'), output: path.join(dir, 'o'), ...quiet }));
      t.is((e2 as St2vError).code, 'ERR_UNSUPPORTED'); // model.* names belong to no known model
      const e3 = await t.throwsAsync(convertModel({ input: path.join(fixtures, 'evil_global.pt'), output: path.join(dir, 'o'), ...quiet }));
      t.is((e3 as St2vError).code, 'ERR_UNSAFE');
    }
    await t.throwsAsync(convertModel({ input: dir, output: path.join(dir, 'o'), dtype: 'f8' as 'f16', ...quiet }), { instanceOf: RangeError });
    t.false(fs.existsSync(path.join(dir, 'o', 'unet.safetensors')));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('native castBuffer equals the reference conversions (every f16/bf16 value, 1M random f32 bit patterns)', async (t) => {
  // every 16-bit pattern -> f32 (exact), then back (identity except NaN payloads)
  const all = new Uint16Array(65536).map((_, i) => i);
  for (const dt of ['f16', 'bf16'] as const) {
    const ref = dt === 'f16' ? f16ToF32 : bf16ToF32;
    const wide = new Float32Array((await castBuffer(new Uint8Array(all.buffer), dt, 'f32')).slice().buffer);
    let bad = 0;
    for (let i = 0; i < 65536; ++i) if (!Object.is(wide[i], ref(i)) && !(Number.isNaN(wide[i]) && Number.isNaN(ref(i)))) bad++;
    t.is(bad, 0, `${dt} -> f32`);
  }
  const bits = new Uint32Array(1 << 20);
  let x = 12345;
  for (let i = 0; i < bits.length; ++i) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    bits[i] = x >>> 0;
  }
  const f = new Float32Array(bits.buffer);
  for (const dt of ['f16', 'bf16'] as const) {
    const ref = dt === 'f16' ? f32BitsToF16 : f32BitsToBF16;
    const narrow = new Uint16Array((await castBuffer(new Uint8Array(bits.buffer), 'f32', dt)).slice().buffer);
    let bad = 0;
    for (let i = 0; i < bits.length; ++i) {
      if (Number.isNaN(f[i])) {
        if ((narrow[i]! & 0x7fff) <= (dt === 'f16' ? 0x7c00 : 0x7f80)) bad++;
      } else if (narrow[i] !== ref(bits[i]!)) bad++;
    }
    t.is(bad, 0, `f32 -> ${dt}`);
  }
  const d = new Uint8Array(Float64Array.of(1.5, -1e300, 1 / 3).buffer);
  t.deepEqual(Array.from(new Float32Array((await castBuffer(d, 'f64', 'f32')).slice().buffer)), Array.from(Float32Array.of(1.5, -Infinity, 1 / 3)));
  const e = await t.throwsAsync(castBuffer(new Uint8Array(4), 'i32', 'f16'));
  t.is((e as St2vError).code, 'ERR_DTYPE');
});

test('st2v convert --help explains inputs, outputs and options', (t) => {
  const program = new Command('st2v');
  register(program);
  const cmd = program.commands.find((c) => c.name() === 'convert')!;
  let help = '';
  cmd.configureOutput({ writeOut: (s) => (help += s), writeErr: (s) => (help += s) });
  cmd.outputHelp();
  for (const s of ['--output', '--dtype', 'f16', 'bf16', 'streaming_t2v.ckpt', 'text-to-video-ms-1.7b', 'model.json', 'ERR_UNSAFE', 'Examples'])
    t.true(help.includes(s), s);
});
