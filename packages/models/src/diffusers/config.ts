/**
 * One parser for diffusers' `config.json` of `UNet2DModel`, `UNet2DConditionModel` and
 * `AutoencoderKL`: every key the class's `__init__` accepts, with diffusers' default (the keys a
 * config leaves out take it, as `from_pretrained` does) and the values this port implements. Keys
 * starting with `_` (`_class_name`, `_diffusers_version`, `_name_or_path`) are metadata. A key the
 * class's `__init__` does not take is ignored, as diffusers' `from_config` ignores it, with one
 * warning listing such keys (`strict: true` throws instead), so real files with stray keys load and
 * build the network diffusers builds. An invalid value, or a value this port does not implement, is
 * a `DiffusersConfigError` naming the key and the value: never a silently different network.
 * Everything here is checked before any tensor is allocated.
 *
 * Reference: diffusers `models/unets/unet_2d.py`, `unets/unet_2d_condition.py`,
 * `autoencoders/autoencoder_kl.py` (commit 58eb52c0).
 */
import { DiffusersConfigError } from '../errors.js';
import { ACTIVATIONS, type Activation } from '../nn.js';

/** The three diffusers classes this port builds. */
export const DIFFUSERS_CLASSES = ['UNet2DModel', 'UNet2DConditionModel', 'AutoencoderKL'] as const;
/** One of `DIFFUSERS_CLASSES`. */
export type DiffusersClassName = (typeof DIFFUSERS_CLASSES)[number];

/** Down blocks this port implements (diffusers' `get_down_block` names; a `UNetRes` prefix is dropped). */
export const DOWN_BLOCKS = [
  'DownBlock2D',
  'AttnDownBlock2D',
  'CrossAttnDownBlock2D',
  'ResnetDownsampleBlock2D',
  'DownEncoderBlock2D',
  'AttnDownEncoderBlock2D',
  'SkipDownBlock2D',
  'AttnSkipDownBlock2D',
] as const;
/** Up blocks this port implements. */
export const UP_BLOCKS = [
  'UpBlock2D',
  'AttnUpBlock2D',
  'CrossAttnUpBlock2D',
  'ResnetUpsampleBlock2D',
  'UpDecoderBlock2D',
  'AttnUpDecoderBlock2D',
  'SkipUpBlock2D',
  'AttnSkipUpBlock2D',
] as const;
export type DownBlockType = (typeof DOWN_BLOCKS)[number];
export type UpBlockType = (typeof UP_BLOCKS)[number];

/** `UNet2DModel`'s config (snake_case keys as in `config.json`), defaults filled in. */
export interface UNet2DConfig {
  sample_size: number | [number, number] | null;
  in_channels: number;
  out_channels: number;
  center_input_sample: boolean;
  time_embedding_type: 'positional' | 'fourier' | 'learned';
  time_embedding_dim: number | null;
  freq_shift: number;
  flip_sin_to_cos: boolean;
  down_block_types: DownBlockType[];
  mid_block_type: 'UNetMidBlock2D' | null;
  up_block_types: UpBlockType[];
  block_out_channels: number[];
  layers_per_block: number;
  mid_block_scale_factor: number;
  downsample_padding: number;
  downsample_type: 'conv' | 'resnet';
  upsample_type: 'conv' | 'resnet';
  dropout: number;
  act_fn: Activation;
  attention_head_dim: number | null;
  norm_num_groups: number;
  attn_norm_num_groups: number | null;
  norm_eps: number;
  resnet_time_scale_shift: 'default' | 'scale_shift';
  add_attention: boolean;
  class_embed_type: 'timestep' | 'identity' | null;
  num_class_embeds: number | null;
  num_train_timesteps: number | null;
}

/** `UNet2DConditionModel`'s config, defaults filled in. */
export interface UNet2DConditionConfig {
  sample_size: number | [number, number] | null;
  in_channels: number;
  out_channels: number;
  center_input_sample: boolean;
  flip_sin_to_cos: boolean;
  freq_shift: number;
  down_block_types: DownBlockType[];
  mid_block_type: 'UNetMidBlock2DCrossAttn' | 'UNetMidBlock2D' | null;
  up_block_types: UpBlockType[];
  only_cross_attention: boolean | boolean[];
  block_out_channels: number[];
  layers_per_block: number | number[];
  downsample_padding: number;
  mid_block_scale_factor: number;
  dropout: number;
  act_fn: Activation;
  norm_num_groups: number | null;
  norm_eps: number;
  cross_attention_dim: number | number[];
  transformer_layers_per_block: number | (number | number[])[];
  reverse_transformer_layers_per_block: (number | number[])[] | null;
  encoder_hid_dim: number | null;
  encoder_hid_dim_type: 'text_proj' | null;
  attention_head_dim: number | number[];
  num_attention_heads: null;
  dual_cross_attention: false;
  use_linear_projection: boolean;
  class_embed_type: 'timestep' | 'identity' | 'projection' | 'simple_projection' | null;
  addition_embed_type: 'text_time' | null;
  addition_time_embed_dim: number | null;
  num_class_embeds: number | null;
  upcast_attention: boolean;
  resnet_time_scale_shift: 'default' | 'scale_shift';
  resnet_skip_time_act: boolean;
  resnet_out_scale_factor: number;
  time_embedding_type: 'positional' | 'fourier';
  time_embedding_dim: number | null;
  time_embedding_act_fn: Activation | null;
  timestep_post_act: Activation | null;
  time_cond_proj_dim: number | null;
  conv_in_kernel: number;
  conv_out_kernel: number;
  projection_class_embeddings_input_dim: number | null;
  attention_type: 'default';
  class_embeddings_concat: boolean;
  mid_block_only_cross_attention: boolean | null;
  cross_attention_norm: string | null;
  addition_embed_type_num_heads: number;
}

/** `AutoencoderKL`'s config, defaults filled in. */
export interface AutoencoderKLConfig {
  in_channels: number;
  out_channels: number;
  down_block_types: ('DownEncoderBlock2D' | 'AttnDownEncoderBlock2D')[];
  up_block_types: ('UpDecoderBlock2D' | 'AttnUpDecoderBlock2D')[];
  block_out_channels: number[];
  layers_per_block: number;
  act_fn: Activation;
  latent_channels: number;
  norm_num_groups: number;
  sample_size: number | [number, number] | null;
  scaling_factor: number;
  shift_factor: number | null;
  latents_mean: number[] | null;
  latents_std: number[] | null;
  force_upcast: boolean;
  use_quant_conv: boolean;
  use_post_quant_conv: boolean;
  mid_block_add_attention: boolean;
}

// ------------------------------------------------------------------------------ value checks

type Check = (value: unknown, key: string) => unknown;

const fail = (key: string, value: unknown, why: string): never => {
  throw new DiffusersConfigError(key, value, why);
};
const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);
const posInt: Check = (v, k) =>
  isInt(v) && v > 0 && v <= 1 << 20 ? v : fail(k, v, 'expected a positive integer');
const nonNegInt: Check = (v, k) =>
  isInt(v) && v >= 0 && v <= 1 << 20 ? v : fail(k, v, 'expected a non-negative integer');
const finite: Check = (v, k) =>
  typeof v === 'number' && Number.isFinite(v) ? v : fail(k, v, 'expected a finite number');
const positive: Check = (v, k) =>
  typeof v === 'number' && Number.isFinite(v) && v > 0
    ? v
    : fail(k, v, 'expected a positive number');
const bool: Check = (v, k) => (typeof v === 'boolean' ? v : fail(k, v, 'expected true or false'));
const nullable =
  (check: Check): Check =>
  (v, k) =>
    v === null ? null : check(v, k);
const oneOf =
  (values: readonly unknown[], what = 'this port implements'): Check =>
  (v, k) =>
    values.includes(v)
      ? v
      : fail(k, v, `${what} ${values.map((x) => JSON.stringify(x)).join(', ')}`);
const list =
  (check: Check, min = 1): Check =>
  (v, k) => {
    if (!Array.isArray(v) || v.length < min || v.length > 64)
      return fail(k, v, `expected a list of ${min} to 64 entries`);
    return v.map((x, i) => check(x, `${k}[${i}]`));
  };
const intOrList: Check = (v, k) => (Array.isArray(v) ? list(posInt)(v, k) : posInt(v, k));
const dropout: Check = (v, k) =>
  typeof v === 'number' && v >= 0 && v < 1
    ? v
    : fail(k, v, 'expected a dropout rate in [0, 1) (inference ignores it)');
const sampleSize: Check = (v, k) =>
  v === null ? null : Array.isArray(v) ? list(posInt, 2)(v, k) : posInt(v, k);
const activationName: Check = (v, k) =>
  typeof v === 'string' && (ACTIVATIONS as readonly string[]).includes(v.toLowerCase())
    ? v.toLowerCase()
    : fail(k, v, `this port implements the activations ${ACTIVATIONS.join(', ')}`);
const blockType =
  (values: readonly string[]): Check =>
  (v, k) => {
    const name = typeof v === 'string' && v.startsWith('UNetRes') ? v.slice(7) : v;
    return oneOf(values, 'this port implements the block types')(name, k);
  };

interface KeySpec {
  default: unknown;
  check: Check;
}
const key = (def: unknown, check: Check): KeySpec => ({ default: def, check });

/** Options of the config parsers. */
export interface ConfigOptions {
  /** Throw a `DiffusersConfigError` for a key the class does not take (default: ignore it with a warning, as diffusers). */
  strict?: boolean;
  /** Receives the warning about ignored keys (default `console.warn`). */
  onWarning?: (message: string) => void;
}

function parse(
  className: string,
  raw: Record<string, unknown>,
  spec: Record<string, KeySpec>,
  parseOptions: ConfigOptions,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const ignored: string[] = [];
  for (const [k, v] of Object.entries(raw)) {
    if (k.startsWith('_') || k in spec) continue;
    if (parseOptions.strict)
      fail(k, v, `${className} has no such option (its __init__ does not take it)`);
    ignored.push(`'${k}'`);
  }
  if (ignored.length > 0)
    (parseOptions.onWarning ?? console.warn)(
      `the config keys ${ignored.join(', ')} are not options of ${className} and are ignored (as diffusers ignores them)`,
    );
  for (const [k, s] of Object.entries(spec)) {
    // An absent key, or one set to undefined (not JSON, but possible in an object), takes the default.
    const v = raw[k] !== undefined ? raw[k] : s.default;
    out[k] = s.check(v, k);
  }
  return out;
}

const groupsDivide = (key: string, groups: number, channels: number[]) => {
  for (const c of channels)
    if (c % groups !== 0)
      fail(key, groups, `${groups} groups do not divide ${c} channels (block_out_channels)`);
};

// ------------------------------------------------------------------------------ UNet2DModel

const UNET2D: Record<string, KeySpec> = {
  sample_size: key(null, sampleSize),
  in_channels: key(3, posInt),
  out_channels: key(3, posInt),
  center_input_sample: key(false, bool),
  time_embedding_type: key('positional', oneOf(['positional', 'fourier', 'learned'])),
  time_embedding_dim: key(null, nullable(posInt)),
  freq_shift: key(0, finite),
  flip_sin_to_cos: key(true, bool),
  down_block_types: key(
    ['DownBlock2D', 'AttnDownBlock2D', 'AttnDownBlock2D', 'AttnDownBlock2D'],
    list(
      blockType([
        'DownBlock2D',
        'AttnDownBlock2D',
        'ResnetDownsampleBlock2D',
        'SkipDownBlock2D',
        'AttnSkipDownBlock2D',
      ]),
    ),
  ),
  mid_block_type: key('UNetMidBlock2D', nullable(oneOf(['UNetMidBlock2D']))),
  up_block_types: key(
    ['AttnUpBlock2D', 'AttnUpBlock2D', 'AttnUpBlock2D', 'UpBlock2D'],
    list(
      blockType([
        'UpBlock2D',
        'AttnUpBlock2D',
        'ResnetUpsampleBlock2D',
        'SkipUpBlock2D',
        'AttnSkipUpBlock2D',
      ]),
    ),
  ),
  block_out_channels: key([224, 448, 672, 896], list(posInt)),
  layers_per_block: key(2, posInt),
  mid_block_scale_factor: key(1, positive),
  downsample_padding: key(1, nonNegInt),
  downsample_type: key('conv', oneOf(['conv', 'resnet'])),
  upsample_type: key('conv', oneOf(['conv', 'resnet'])),
  dropout: key(0, dropout),
  act_fn: key('silu', activationName),
  attention_head_dim: key(8, nullable(posInt)),
  norm_num_groups: key(32, posInt),
  attn_norm_num_groups: key(null, nullable(posInt)),
  norm_eps: key(1e-5, positive),
  resnet_time_scale_shift: key('default', oneOf(['default', 'scale_shift'])),
  add_attention: key(true, bool),
  class_embed_type: key(null, nullable(oneOf(['timestep', 'identity']))),
  num_class_embeds: key(null, nullable(posInt)),
  num_train_timesteps: key(null, nullable(posInt)),
};

/**
 * Validates a `UNet2DModel` config (diffusers `unets/unet_2d.py`) and fills in the defaults.
 *
 * @example
 * const config = parseUNet2DConfig(JSON.parse(text)); // throws DiffusersConfigError on a bad key
 */
export function parseUNet2DConfig(
  raw: Record<string, unknown>,
  options: ConfigOptions = {},
): UNet2DConfig {
  const c = parse('UNet2DModel', raw, UNET2D, options) as unknown as UNet2DConfig;
  const n = c.block_out_channels.length;
  if (c.down_block_types.length !== n)
    fail('down_block_types', c.down_block_types, `needs one entry per block_out_channels (${n})`);
  if (c.up_block_types.length !== n)
    fail('up_block_types', c.up_block_types, `needs one entry per block_out_channels (${n})`);
  groupsDivide('norm_num_groups', c.norm_num_groups, c.block_out_channels);
  const skips = [...c.down_block_types, ...c.up_block_types].filter((t) => t.includes('Skip'));
  if (skips.length > 0 && (c.in_channels !== 3 || c.out_channels !== 3))
    fail(
      'in_channels',
      c.in_channels,
      `diffusers' ${skips[0]} has 3-channel skip convolutions: in_channels and out_channels must be 3`,
    );
  if (c.attn_norm_num_groups !== null)
    groupsDivide('attn_norm_num_groups', c.attn_norm_num_groups, c.block_out_channels);
  if (c.time_embedding_type === 'learned' && c.num_train_timesteps === null)
    fail('num_train_timesteps', null, "time_embedding_type 'learned' needs num_train_timesteps");
  if (c.time_embedding_type === 'fourier' && c.class_embed_type === 'timestep')
    fail('class_embed_type', 'timestep', "needs a positional time projection, not 'fourier'");
  if (c.time_embedding_type === 'learned' && c.class_embed_type === 'timestep')
    fail('class_embed_type', 'timestep', "needs a positional time projection, not 'learned'");
  return c;
}

// ------------------------------------------------------------------------------ UNet2DConditionModel

const layersList: Check = (v, k) =>
  Array.isArray(v)
    ? list((x, kk) => (Array.isArray(x) ? list(posInt)(x, kk) : posInt(x, kk)))(v, k)
    : posInt(v, k);

const UNET2D_COND: Record<string, KeySpec> = {
  sample_size: key(null, sampleSize),
  in_channels: key(4, posInt),
  out_channels: key(4, posInt),
  center_input_sample: key(false, bool),
  flip_sin_to_cos: key(true, bool),
  freq_shift: key(0, finite),
  down_block_types: key(
    ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
    list(
      blockType([
        'DownBlock2D',
        'AttnDownBlock2D',
        'CrossAttnDownBlock2D',
        'ResnetDownsampleBlock2D',
      ]),
    ),
  ),
  mid_block_type: key(
    'UNetMidBlock2DCrossAttn',
    nullable(oneOf(['UNetMidBlock2DCrossAttn', 'UNetMidBlock2D'])),
  ),
  up_block_types: key(
    ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
    list(blockType(['UpBlock2D', 'AttnUpBlock2D', 'CrossAttnUpBlock2D', 'ResnetUpsampleBlock2D'])),
  ),
  only_cross_attention: key(false, (v, k) => (Array.isArray(v) ? list(bool)(v, k) : bool(v, k))),
  block_out_channels: key([320, 640, 1280, 1280], list(posInt)),
  layers_per_block: key(2, intOrList),
  downsample_padding: key(1, nonNegInt),
  mid_block_scale_factor: key(1, positive),
  dropout: key(0, dropout),
  act_fn: key('silu', activationName),
  norm_num_groups: key(32, nullable(posInt)),
  norm_eps: key(1e-5, positive),
  cross_attention_dim: key(1280, intOrList),
  transformer_layers_per_block: key(1, layersList),
  reverse_transformer_layers_per_block: key(null, nullable(layersList)),
  encoder_hid_dim: key(null, nullable(posInt)),
  encoder_hid_dim_type: key(null, nullable(oneOf(['text_proj']))),
  attention_head_dim: key(8, intOrList),
  num_attention_heads: key(null, (v, k) =>
    v === null
      ? null
      : fail(
          k,
          v,
          'diffusers itself rejects num_attention_heads here; attention_head_dim sets the heads',
        ),
  ),
  dual_cross_attention: key(false, oneOf([false])),
  use_linear_projection: key(false, bool),
  class_embed_type: key(
    null,
    nullable(oneOf(['timestep', 'identity', 'projection', 'simple_projection'])),
  ),
  addition_embed_type: key(null, nullable(oneOf(['text_time']))),
  addition_time_embed_dim: key(null, nullable(posInt)),
  num_class_embeds: key(null, nullable(posInt)),
  upcast_attention: key(false, bool),
  resnet_time_scale_shift: key('default', oneOf(['default', 'scale_shift'])),
  resnet_skip_time_act: key(false, bool),
  resnet_out_scale_factor: key(1, positive),
  time_embedding_type: key('positional', oneOf(['positional', 'fourier'])),
  time_embedding_dim: key(null, nullable(posInt)),
  time_embedding_act_fn: key(null, nullable(activationName)),
  timestep_post_act: key(null, nullable(activationName)),
  time_cond_proj_dim: key(null, nullable(posInt)),
  conv_in_kernel: key(3, (v, k) =>
    isInt(v) && v > 0 && v % 2 === 1 && v <= 15 ? v : fail(k, v, 'expected an odd kernel size'),
  ),
  conv_out_kernel: key(3, (v, k) =>
    isInt(v) && v > 0 && v % 2 === 1 && v <= 15 ? v : fail(k, v, 'expected an odd kernel size'),
  ),
  projection_class_embeddings_input_dim: key(null, nullable(posInt)),
  attention_type: key('default', oneOf(['default'])),
  class_embeddings_concat: key(false, bool),
  mid_block_only_cross_attention: key(null, nullable(bool)),
  cross_attention_norm: key(null, nullable(oneOf(['layer_norm', 'group_norm'], 'expected'))),
  addition_embed_type_num_heads: key(64, posInt),
};

/**
 * Validates a `UNet2DConditionModel` config (diffusers `unets/unet_2d_condition.py`, including its
 * `_check_config`) and fills in the defaults.
 *
 * @example
 * const config = parseUNet2DConditionConfig(JSON.parse(text));
 */
export function parseUNet2DConditionConfig(
  raw: Record<string, unknown>,
  options: ConfigOptions = {},
): UNet2DConditionConfig {
  const c = parse(
    'UNet2DConditionModel',
    raw,
    UNET2D_COND,
    options,
  ) as unknown as UNet2DConditionConfig;
  const n = c.block_out_channels.length;
  const perBlock = (k: keyof UNet2DConditionConfig) => {
    const v = c[k];
    if (Array.isArray(v) && v.length !== n)
      fail(k, v, `needs one entry per down block (${n}) when given as a list`);
  };
  if (c.down_block_types.length !== n)
    fail('down_block_types', c.down_block_types, `needs one entry per block_out_channels (${n})`);
  if (c.up_block_types.length !== n)
    fail('up_block_types', c.up_block_types, `needs one entry per block_out_channels (${n})`);
  for (const k of [
    'only_cross_attention',
    'layers_per_block',
    'cross_attention_dim',
    'attention_head_dim',
    'transformer_layers_per_block',
  ] as const)
    perBlock(k);
  if (c.reverse_transformer_layers_per_block !== null)
    perBlock('reverse_transformer_layers_per_block');
  if (
    Array.isArray(c.transformer_layers_per_block) &&
    c.transformer_layers_per_block.some(Array.isArray) &&
    c.reverse_transformer_layers_per_block === null
  )
    fail(
      'reverse_transformer_layers_per_block',
      null,
      'a list of lists in transformer_layers_per_block needs reverse_transformer_layers_per_block',
    );
  if (c.norm_num_groups !== null)
    groupsDivide('norm_num_groups', c.norm_num_groups, c.block_out_channels);
  else if (
    [...c.down_block_types, ...c.up_block_types].some(
      (t) => t !== 'DownBlock2D' && t !== 'UpBlock2D',
    ) ||
    c.mid_block_type !== null
  )
    fail('norm_num_groups', null, 'null groups are only valid without attention and mid blocks');
  if (c.encoder_hid_dim_type !== null && c.encoder_hid_dim === null)
    fail('encoder_hid_dim', null, `encoder_hid_dim_type '${c.encoder_hid_dim_type}' needs it`);
  if (c.encoder_hid_dim !== null && c.encoder_hid_dim_type === null)
    c.encoder_hid_dim_type = 'text_proj'; // as diffusers' _set_encoder_hid_proj
  if (c.encoder_hid_dim_type === 'text_proj' && Array.isArray(c.cross_attention_dim))
    fail(
      'cross_attention_dim',
      c.cross_attention_dim,
      'text_proj needs a single cross_attention_dim',
    );
  if (c.time_embedding_type === 'fourier') {
    const dim = c.time_embedding_dim ?? c.block_out_channels[0]! * 2;
    if (dim % 2 !== 0) fail('time_embedding_dim', dim, 'fourier embeddings need an even size');
  }
  if (
    (c.class_embed_type === 'projection' || c.class_embed_type === 'simple_projection') &&
    c.projection_class_embeddings_input_dim === null
  )
    fail(
      'projection_class_embeddings_input_dim',
      null,
      `class_embed_type '${c.class_embed_type}' needs it`,
    );
  if (c.addition_embed_type === 'text_time') {
    if (c.addition_time_embed_dim === null)
      fail('addition_time_embed_dim', null, "addition_embed_type 'text_time' needs it");
    if (c.projection_class_embeddings_input_dim === null)
      fail(
        'projection_class_embeddings_input_dim',
        null,
        "addition_embed_type 'text_time' needs it",
      );
  }
  if (c.class_embed_type === 'timestep' && c.time_embedding_type === 'fourier')
    fail('class_embed_type', 'timestep', "needs a positional time projection, not 'fourier'");
  return c;
}

// ------------------------------------------------------------------------------ AutoencoderKL

const AUTOENCODER_KL: Record<string, KeySpec> = {
  in_channels: key(3, posInt),
  out_channels: key(3, posInt),
  down_block_types: key(
    ['DownEncoderBlock2D'],
    list(
      oneOf(
        ['DownEncoderBlock2D', 'AttnDownEncoderBlock2D'],
        'this port implements the block types',
      ),
    ),
  ),
  up_block_types: key(
    ['UpDecoderBlock2D'],
    list(
      oneOf(['UpDecoderBlock2D', 'AttnUpDecoderBlock2D'], 'this port implements the block types'),
    ),
  ),
  block_out_channels: key([64], list(posInt)),
  layers_per_block: key(1, posInt),
  act_fn: key('silu', activationName),
  latent_channels: key(4, posInt),
  norm_num_groups: key(32, posInt),
  sample_size: key(32, sampleSize),
  scaling_factor: key(0.18215, positive),
  shift_factor: key(null, nullable(finite)),
  latents_mean: key(null, nullable(list(finite))),
  latents_std: key(null, nullable(list(positive))),
  force_upcast: key(true, bool),
  use_quant_conv: key(true, bool),
  use_post_quant_conv: key(true, bool),
  mid_block_add_attention: key(true, bool),
};

/**
 * Validates an `AutoencoderKL` config (diffusers `autoencoders/autoencoder_kl.py`) and fills in the
 * defaults. `force_upcast` is accepted and has no effect (this port computes in float32).
 *
 * @example
 * const config = parseAutoencoderKLConfig(JSON.parse(text));
 */
export function parseAutoencoderKLConfig(
  raw: Record<string, unknown>,
  options: ConfigOptions = {},
): AutoencoderKLConfig {
  const c = parse('AutoencoderKL', raw, AUTOENCODER_KL, options) as unknown as AutoencoderKLConfig;
  const n = c.block_out_channels.length;
  if (c.down_block_types.length !== n)
    fail('down_block_types', c.down_block_types, `needs one entry per block_out_channels (${n})`);
  if (c.up_block_types.length !== n)
    fail('up_block_types', c.up_block_types, `needs one entry per block_out_channels (${n})`);
  groupsDivide('norm_num_groups', c.norm_num_groups, c.block_out_channels);
  for (const k of ['latents_mean', 'latents_std'] as const) {
    const v = c[k];
    if (v !== null && v.length !== c.latent_channels)
      fail(k, v, `needs one entry per latent channel (${c.latent_channels})`);
  }
  return c;
}

/** A parsed config of any of the three classes, tagged with its class. */
export type DiffusersConfig =
  | { className: 'UNet2DModel'; config: UNet2DConfig }
  | { className: 'UNet2DConditionModel'; config: UNet2DConditionConfig }
  | { className: 'AutoencoderKL'; config: AutoencoderKLConfig };

/**
 * Parses a diffusers `config.json` (text or object), dispatching on `_class_name`.
 *
 * @example
 * const { className, config } = parseDiffusersConfig(await readFile('unet/config.json', 'utf8'));
 */
export function parseDiffusersConfig(
  input: string | object,
  options: ConfigOptions = {},
): DiffusersConfig {
  let raw: unknown = input;
  if (typeof input === 'string') {
    try {
      raw = JSON.parse(input);
    } catch (e) {
      fail('config.json', input.slice(0, 80), `is not valid JSON (${(e as Error).message})`);
    }
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    return fail('config.json', raw, 'must be a JSON object');
  const obj = raw as Record<string, unknown>;
  const name = obj._class_name;
  switch (name) {
    case 'UNet2DModel':
      return { className: name, config: parseUNet2DConfig(obj, options) };
    case 'UNet2DConditionModel':
      return { className: name, config: parseUNet2DConditionConfig(obj, options) };
    case 'AutoencoderKL':
      return { className: name, config: parseAutoencoderKLConfig(obj, options) };
    default:
      return fail(
        '_class_name',
        name,
        `this port builds ${DIFFUSERS_CLASSES.join(', ')} (a diffusers config names its class in _class_name)`,
      );
  }
}
