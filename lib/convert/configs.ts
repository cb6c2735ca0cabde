/**
 * Component configs detected from tensor shapes only (never from a config file): what `st2v convert` records in
 * model.json. Names are canonical (see native/io/name_map.h).
 */
export type Shapes = Map<string, number[]>;

const dim = (s: Shapes, k: string, d: number): number | undefined => s.get(k)?.[d];

/** Distinct values of the first `#` capture over keys matching `pattern` (a regex with one group). */
function indices(s: Shapes, re: RegExp): number[] {
  const out = new Set<number>();
  for (const k of s.keys()) {
    const m = re.exec(k);
    if (m) out.add(Number(m[1]));
  }
  return [...out].sort((a, b) => a - b);
}

function unetLike(s: Shapes, p: string): Record<string, unknown> {
  const downs = indices(s, new RegExp(`^${p}down_blocks\\.(\\d+)\\.`));
  const block = downs.map((i) => dim(s, `${p}down_blocks.${i}.resnets.0.conv1.weight`, 0) ?? null);
  const resnets = indices(s, new RegExp(`^${p}down_blocks\\.0\\.resnets\\.(\\d+)\\.`)).length;
  let cross: number | undefined;
  for (const [k, v] of s) if (k.startsWith(`${p}down_blocks.`) && k.includes('.attentions.') && k.endsWith('attn2.to_k.weight')) { cross = v[1]; break; }
  const keys = [...s.keys()].filter((k) => k.startsWith(p));
  return {
    in_channels: dim(s, `${p}conv_in.weight`, 1),
    out_channels: dim(s, `${p}conv_out.weight`, 0),
    block_out_channels: block,
    layers_per_block: resnets,
    cross_attention_dim: cross,
    temporal_transformer_in_dim: dim(s, `${p}transformer_in.proj_in.weight`, 0),
    time_embed_dim: dim(s, `${p}time_embedding.linear_1.weight`, 0),
    has_apm: keys.some((k) => k.includes('attn2.conv.weight')),
    apm_tokens: (() => { for (const k of keys) if (k.endsWith('attn2.conv.weight')) return s.get(k)![0]; return undefined; })(),
    merger_count: keys.filter((k) => /merger/.test(k) && k.endsWith('.weight')).length,
    tensors: keys.length,
  };
}

export function detectConfig(component: string, s: Shapes): Record<string, unknown> {
  switch (component) {
    case 'unet':
      return unetLike(s, 'base_model.');
    case 'cam': {
      const c = unetLike(s, 'unet.');
      let condIn: number | undefined;
      for (const [k, v] of s) if (k.startsWith('unet.') && k.includes('cond_embedding') && k.endsWith('conv_in.weight')) condIn = v[1];
      return { ...c, conditioning_in_channels: condIn };
    }
    case 'resampler': {
      // context_embedding: Linear(in -> hidden), act, Linear(hidden -> tokens * dim); shapes as stored.
      const shapes: Record<string, number[]> = {};
      for (const [k, v] of s) if (k.startsWith('resampler.')) shapes[k.slice(10)] = v;
      return {
        input_dim: dim(s, 'resampler.context_embedding.0.weight', 1),
        hidden_dim: dim(s, 'resampler.context_embedding.0.weight', 0),
        output_features: dim(s, 'resampler.context_embedding.2.weight', 0),
        shapes,
      };
    }
    case 'text_encoder': {
      const p = 'text_encoder.text_model.';
      return {
        vocab_size: dim(s, `${p}embeddings.token_embedding.weight`, 0),
        hidden_size: dim(s, `${p}embeddings.token_embedding.weight`, 1),
        max_position_embeddings: dim(s, `${p}embeddings.position_embedding.weight`, 0),
        num_hidden_layers: indices(s, /^text_encoder\.text_model\.encoder\.layers\.(\d+)\./).length,
        intermediate_size: dim(s, `${p}encoder.layers.0.mlp.fc1.weight`, 0),
      };
    }
    case 'image_encoder': {
      const p = 'image_encoder.model.visual.';
      const width = dim(s, `${p}conv1.weight`, 0);
      const patch = dim(s, `${p}conv1.weight`, 2);
      const pos = dim(s, `${p}positional_embedding`, 0);
      return {
        width,
        patch_size: patch,
        image_size: pos !== undefined && patch !== undefined ? Math.round(Math.sqrt(pos - 1)) * patch : undefined,
        layers: indices(s, /^image_encoder\.model\.visual\.transformer\.resblocks\.(\d+)\./).length,
        mlp_dim: dim(s, `${p}transformer.resblocks.0.mlp.c_fc.weight`, 0),
        embed_dim: dim(s, `${p}proj`, 1),
        text_width: dim(s, 'image_encoder.model.token_embedding.weight', 1),
      };
    }
    case 'vae': {
      const downs = indices(s, /^vae\.encoder\.down_blocks\.(\d+)\./);
      return {
        in_channels: dim(s, 'vae.encoder.conv_in.weight', 1),
        out_channels: dim(s, 'vae.decoder.conv_out.weight', 0),
        latent_channels: dim(s, 'vae.decoder.conv_in.weight', 1),
        block_out_channels: downs.map((i) => dim(s, `vae.encoder.down_blocks.${i}.resnets.0.conv1.weight`, 0) ?? null),
        layers_per_block: indices(s, /^vae\.encoder\.down_blocks\.0\.resnets\.(\d+)\./).length,
      };
    }
    case 'enhancer': {
      const inputs = indices(s, /^enhancer\.input_blocks\.(\d+)\./);
      let ctx: number | undefined;
      // Spatial transformers sit at input_blocks.N.1 for N >= 1 (input_blocks.0.1 is the temporal one).
      for (const [k, v] of s) if (/^enhancer\.input_blocks\.[1-9]\d*\.1\.transformer_blocks\.0\.attn2\.to_k\.weight$/.test(k)) { ctx = v[1]; break; }
      return {
        in_channels: dim(s, 'enhancer.input_blocks.0.0.weight', 1),
        model_channels: dim(s, 'enhancer.input_blocks.0.0.weight', 0),
        out_channels: dim(s, 'enhancer.out.2.weight', 0),
        input_blocks: inputs.length,
        output_blocks: indices(s, /^enhancer\.output_blocks\.(\d+)\./).length,
        context_dim: ctx,
        time_embed_dim: dim(s, 'enhancer.time_embed.0.weight', 0),
      };
    }
    case 'text_last_block':
      // The last OpenCLIP text block (HF layer names), used only by the CLIP score's full encode_text.
      return {
        hidden_size: dim(s, 'text_last_block.layer_norm1.weight', 0),
        intermediate_size: dim(s, 'text_last_block.mlp.fc1.weight', 0),
      };
    default:
      return {};
  }
}
