/**
 * The module tree of diffusers' UNets and VAE, ported to tfjs-core on the toolkit's nn blocks
 * (`../nn.ts`: dense, conv, GroupNorm, LayerNorm, attention, activations; one implementation each).
 *
 * A model is built in two phases, as PyTorch does: the constructors below only record, under
 * diffusers' exact state-dict key (`down_blocks.1.attentions.0.to_q.weight`), the shape each
 * parameter must have (a `Registry` of `Slot`s); the loader then checks a file's tensors against
 * those keys and shapes before it allocates anything, and fills the slots. Forward passes read the
 * slots. Images are NHWC inside (tfjs' conv layout); the public model classes take and return NCHW
 * like diffusers. Linear weights are stored [in, out] and conv weights [kh, kw, in, out] (PyTorch:
 * [out, in] and [out, in, kh, kw]).
 *
 * References (diffusers commit 58eb52c0): `models/resnet.py` (ResnetBlock2D), `downsampling.py`
 * (Downsample2D), `upsampling.py` (Upsample2D), `attention_processor.py` (Attention +
 * AttnProcessor), `attention.py` (BasicTransformerBlock, FeedForward), `activations.py` (GEGLU),
 * `transformers/transformer_2d.py` (continuous input), `unets/unet_2d_blocks.py` (get_down_block,
 * get_up_block, the mid blocks), `embeddings.py` (get_timestep_embedding, Timesteps,
 * TimestepEmbedding, GaussianFourierProjection).
 */
import * as tf from '@tensorflow/tfjs-core';
import { type BudgetError, type ParamBudget, ParamTally } from '../budget.js';
import { DiffusersConfigError } from '../errors.js';
import {
  type Activation,
  activation,
  attention,
  conv,
  dense,
  groupNorm,
  layerNorm,
  upsample2x,
} from '../nn.js';
import type { DownBlockType, UpBlockType } from './config.js';

// ------------------------------------------------------------------------------ parameters

/** The budget's refusals as the diffusers port's typed error (`key` = the budget option). */
export const diffusersBudgetError: BudgetError = (field, value, message) =>
  new DiffusersConfigError(field, value, message);

/** How a PyTorch tensor is laid out in tfjs: Linear [out, in] -> [in, out]; Conv2d [o, i, kh, kw] -> [kh, kw, i, o]. */
export type Layout = 'linear' | 'conv' | 'plain';

/** One parameter: its state-dict key, its PyTorch shape, its layout, and (once loaded) its tensor. */
export interface Slot {
  readonly name: string;
  readonly shape: readonly number[];
  readonly layout: Layout;
  value: tf.Tensor | null;
}

/**
 * Every parameter of a model, in creation order, keyed by state-dict name. With a `budget` (the
 * toolkit's one parameter budget, `../budget.ts`: the caller's `maxParams`, lowered to what the
 * weight files hold when the loader has them), building stops with a typed error as soon as the
 * config implies more, so a hostile config cannot make a huge tree of shapes.
 */
export class Registry {
  readonly slots = new Map<string, Slot>();
  private readonly tally: ParamTally;

  constructor(budget?: ParamBudget) {
    this.tally = new ParamTally(budget, diffusersBudgetError);
  }

  add(name: string, shape: number[], layout: Layout): Slot {
    if (this.slots.has(name)) throw new Error(`internal: parameter '${name}' defined twice`);
    const slot: Slot = { name, shape, layout, value: null };
    this.tally.add(name, shape);
    this.slots.set(name, slot);
    return slot;
  }

  /** Number of scalar parameters (PyTorch's `sum(p.numel())`). */
  get numParameters(): number {
    return this.tally.size;
  }

  dispose(): void {
    for (const s of this.slots.values()) {
      s.value?.dispose();
      s.value = null;
    }
  }
}

const read = (s: Slot): tf.Tensor => {
  if (s.value === null) throw new Error(`internal: parameter '${s.name}' was not loaded`);
  return s.value;
};

/** A position in the module tree: creates parameters under `prefix`. */
export class Scope {
  constructor(
    readonly registry: Registry,
    readonly prefix = '',
  ) {}

  at(name: string | number): Scope {
    return new Scope(this.registry, this.prefix ? `${this.prefix}.${name}` : `${name}`);
  }

  param(name: string, shape: number[], layout: Layout = 'plain'): Slot {
    return this.registry.add(this.prefix ? `${this.prefix}.${name}` : name, shape, layout);
  }

  linear(name: string, inFeatures: number, outFeatures: number, bias = true): Linear {
    const s = this.at(name);
    return {
      weight: s.param('weight', [outFeatures, inFeatures], 'linear'),
      bias: bias ? s.param('bias', [outFeatures]) : null,
    };
  }

  conv(name: string, inChannels: number, outChannels: number, kernel: number, bias = true): Conv2d {
    const s = this.at(name);
    return {
      weight: s.param('weight', [outChannels, inChannels, kernel, kernel], 'conv'),
      bias: bias ? s.param('bias', [outChannels]) : null,
      kernel,
    };
  }

  groupNorm(name: string, channels: number, groups: number, eps: number): GroupNorm {
    if (channels % groups !== 0)
      throw new DiffusersConfigError(
        'norm_num_groups',
        groups,
        `${groups} groups do not divide the ${channels} channels of '${this.at(name).prefix}'`,
      );
    const s = this.at(name);
    return {
      weight: s.param('weight', [channels]),
      bias: s.param('bias', [channels]),
      groups,
      eps,
    };
  }

  layerNorm(name: string, dim: number, eps: number): LayerNorm {
    const s = this.at(name);
    return { weight: s.param('weight', [dim]), bias: s.param('bias', [dim]), eps };
  }
}

/** `nn.Linear`. */
export interface Linear {
  weight: Slot;
  bias: Slot | null;
}
/** `nn.Conv2d` with a square kernel. */
export interface Conv2d {
  weight: Slot;
  bias: Slot | null;
  kernel: number;
}
/** `nn.GroupNorm` (affine). */
export interface GroupNorm {
  weight: Slot;
  bias: Slot;
  groups: number;
  eps: number;
}
/** `nn.LayerNorm` (elementwise affine). */
export interface LayerNorm {
  weight: Slot;
  bias: Slot;
  eps: number;
}

/** y = x W^T + b on the last axis. */
export function linear(x: tf.Tensor, l: Linear): tf.Tensor {
  return dense(x, { w: read(l.weight), b: l.bias ? read(l.bias) : undefined });
}

/** A conv on NHWC with PyTorch's symmetric zero padding (default (k - 1) / 2). */
export function conv2d(x: tf.Tensor, c: Conv2d, stride = 1, pad = (c.kernel - 1) / 2): tf.Tensor {
  return conv(x, { w: read(c.weight), b: c.bias ? read(c.bias) : undefined }, stride, pad);
}

/** GroupNorm over NHWC (or [b, tokens, c]), then `act` (SiLU fused into the same kernel). */
export function applyGroupNorm(x: tf.Tensor, g: GroupNorm, act?: Activation): tf.Tensor {
  const p = { gamma: read(g.weight), beta: read(g.bias) };
  if (act === 'silu' || act === 'swish') return groupNorm(x, p, g.groups, 'silu', g.eps);
  const y = groupNorm(x, p, g.groups, 'none', g.eps);
  return act ? activation(y, act) : y;
}

export function applyLayerNorm(x: tf.Tensor, l: LayerNorm): tf.Tensor {
  return layerNorm(x, { gamma: read(l.weight), beta: read(l.bias) }, l.eps);
}

export function readSlot(s: Slot): tf.Tensor {
  return read(s);
}

/**
 * The two halves of x along its last axis (PyTorch's `chunk(2, dim)`), as two slices: one kernel
 * each, which also keeps the graph exportable (ONNX export maps Slice, not the multi-output SplitV).
 */
export function halves(x: tf.Tensor): [tf.Tensor, tf.Tensor] {
  const axis = x.rank - 1;
  const n = x.shape[axis]! / 2;
  const size = [...x.shape];
  size[axis] = n;
  const begin = x.shape.map(() => 0);
  const second = [...begin];
  second[axis] = n;
  return [tf.slice(x, begin, size), tf.slice(x, second, size)];
}

// ------------------------------------------------------------------------------ resampling

/**
 * Nearest-neighbour upsampling of NHWC, to twice the size or to `size` (PyTorch's
 * `F.interpolate(mode="nearest")`: source index floor(dst * in / out)).
 */
export function upsampleNearest(x: tf.Tensor, size?: readonly [number, number]): tf.Tensor {
  const [, h, w] = x.shape as [number, number, number, number];
  if (size === undefined || (size[0] === 2 * h && size[1] === 2 * w)) return upsample2x(x);
  return tf.image.resizeNearestNeighbor(x as tf.Tensor4D, [size[0], size[1]], false, false);
}

/** The (1, 3, 3, 1) FIR kernel of NCSN++ (Song et al. 2021), outer product, normalised, times `gain`. */
function firKernel(channels: number, gain: number): tf.Tensor4D {
  const k = [1, 3, 3, 1];
  const w = new Float32Array(16 * channels);
  for (let i = 0; i < 4; i++)
    for (let j = 0; j < 4; j++)
      for (let c = 0; c < channels; c++)
        w[(i * 4 + j) * channels + c] = (k[i]! * k[j]! * gain) / 64;
  return tf.tensor4d(w, [4, 4, channels, 1]);
}

/**
 * diffusers' `downsample_2d(x, kernel=(1, 3, 3, 1))` (upfirdn2d with down = 2, pad (1, 1)): the FIR
 * low-pass, every other pixel. NHWC.
 */
export function firDownsample(x: tf.Tensor): tf.Tensor {
  const c = x.shape[3]!;
  const padded = tf.pad(x, [
    [0, 0],
    [1, 1],
    [1, 1],
    [0, 0],
  ]);
  return tf.depthwiseConv2d(padded as tf.Tensor4D, firKernel(c, 1), 2, 'valid');
}

/**
 * diffusers' `upsample_2d(x, kernel=(1, 3, 3, 1))` (upfirdn2d with up = 2, pad (2, 1), gain 4):
 * zeros inserted after every pixel, then the FIR filter. NHWC.
 */
export function firUpsample(x: tf.Tensor): tf.Tensor {
  const [b, h, w, c] = x.shape as [number, number, number, number];
  const withRows = tf.concat([tf.reshape(x, [b, h, 1, w, 1, c]), tf.zeros([b, h, 1, w, 1, c])], 4);
  const withCols = tf.concat([withRows, tf.zeros([b, h, 1, w, 2, c])], 2);
  const up = tf.reshape(withCols, [b, 2 * h, 2 * w, c]);
  const padded = tf.pad(up, [
    [0, 0],
    [2, 1],
    [2, 1],
    [0, 0],
  ]);
  return tf.depthwiseConv2d(padded as tf.Tensor4D, firKernel(c, 4), 1, 'valid');
}

/** `Downsample2D(use_conv=True)`: a stride-2 conv; padding 0 first pads one zero row/column after. */
export class Downsample2D {
  readonly conv: Conv2d;
  constructor(
    s: Scope,
    channels: number,
    outChannels: number,
    readonly padding: number,
  ) {
    this.conv = s.conv('conv', channels, outChannels, 3);
  }

  forward(x: tf.Tensor): tf.Tensor {
    if (this.padding === 0) {
      const padded = tf.pad(x, [
        [0, 0],
        [0, 1],
        [0, 1],
        [0, 0],
      ]);
      return conv2d(padded, this.conv, 2, 0);
    }
    return conv2d(x, this.conv, 2, this.padding);
  }
}

/** `Upsample2D(use_conv=True)`: nearest 2x (or to `size`), then a 3x3 conv. */
export class Upsample2D {
  readonly conv: Conv2d;
  constructor(s: Scope, channels: number, outChannels: number) {
    this.conv = s.conv('conv', channels, outChannels, 3);
  }

  forward(x: tf.Tensor, size?: readonly [number, number]): tf.Tensor {
    return conv2d(upsampleNearest(x, size), this.conv);
  }
}

// ------------------------------------------------------------------------------ ResnetBlock2D

export interface ResnetOptions {
  inChannels: number;
  outChannels?: number;
  /** Size of the time embedding, or null for none (the VAE). */
  tembChannels: number | null;
  groups: number;
  groupsOut?: number;
  eps: number;
  act: Activation;
  timeEmbeddingNorm: 'default' | 'scale_shift';
  outputScaleFactor?: number;
  skipTimeAct?: boolean;
  up?: boolean;
  down?: boolean;
  /** Resample with the (1, 3, 3, 1) FIR kernel (diffusers' kernel="fir") instead of nearest / average. */
  fir?: boolean;
  /** A 1x1 shortcut conv even when the channel count stays (diffusers' use_in_shortcut=True). */
  useInShortcut?: boolean;
}

/**
 * `ResnetBlock2D` (diffusers `resnet.py`; DDPM's residual block, Ho et al. 2020, App. B):
 * h = conv1(act(norm1(x))) (resampled between the activation and conv1 when up/down);
 * 'default': h = norm2(h + proj(act(temb))); 'scale_shift': h = norm2(h) (1 + scale) + shift;
 * out = (shortcut(x) + conv2(act(h))) / output_scale_factor.
 */
export class ResnetBlock2D {
  readonly norm1: GroupNorm;
  readonly conv1: Conv2d;
  readonly timeEmbProj: Linear | null;
  readonly norm2: GroupNorm;
  readonly conv2: Conv2d;
  readonly convShortcut: Conv2d | null;
  private readonly o: Required<ResnetOptions>;

  constructor(s: Scope, options: ResnetOptions) {
    const out = options.outChannels ?? options.inChannels;
    this.o = {
      outChannels: out,
      groupsOut: options.groups,
      outputScaleFactor: 1,
      skipTimeAct: false,
      up: false,
      down: false,
      fir: false,
      useInShortcut: options.inChannels !== out,
      ...options,
    } as Required<ResnetOptions>;
    const o = this.o;
    this.norm1 = s.groupNorm('norm1', o.inChannels, o.groups, o.eps);
    this.conv1 = s.conv('conv1', o.inChannels, out, 3);
    this.timeEmbProj =
      o.tembChannels === null
        ? null
        : s.linear(
            'time_emb_proj',
            o.tembChannels,
            o.timeEmbeddingNorm === 'scale_shift' ? 2 * out : out,
          );
    this.norm2 = s.groupNorm('norm2', out, o.groupsOut, o.eps);
    this.conv2 = s.conv('conv2', out, out, 3);
    this.convShortcut = o.useInShortcut ? s.conv('conv_shortcut', o.inChannels, out, 1) : null;
  }

  forward(input: tf.Tensor, temb: tf.Tensor | null): tf.Tensor {
    const o = this.o;
    let x = input;
    let h = applyGroupNorm(x, this.norm1, o.act);
    if (o.up) {
      x = o.fir ? firUpsample(x) : upsampleNearest(x);
      h = o.fir ? firUpsample(h) : upsampleNearest(h);
    } else if (o.down) {
      x = o.fir ? firDownsample(x) : tf.avgPool(x as tf.Tensor4D, 2, 2, 'valid');
      h = o.fir ? firDownsample(h) : tf.avgPool(h as tf.Tensor4D, 2, 2, 'valid');
    }
    h = conv2d(h, this.conv1);
    let t: tf.Tensor | null = null;
    if (this.timeEmbProj !== null) {
      if (temb === null) throw new Error('internal: this block needs a time embedding');
      const e = linear(o.skipTimeAct ? temb : activation(temb, o.act), this.timeEmbProj);
      t = tf.reshape(e, [e.shape[0]!, 1, 1, e.shape[1]!]);
    }
    if (o.timeEmbeddingNorm === 'scale_shift' && t !== null) {
      const [scale, shift] = halves(t);
      h = applyGroupNorm(h, this.norm2);
      h = activation(tf.add(tf.mul(h, tf.add(scale, 1)), shift), o.act);
    } else {
      if (t !== null) h = tf.add(h, t);
      h = applyGroupNorm(h, this.norm2, o.act);
    }
    h = conv2d(h, this.conv2);
    if (this.convShortcut !== null) x = conv2d(x, this.convShortcut);
    const sum = tf.add(x, h);
    return o.outputScaleFactor === 1 ? sum : tf.div(sum, o.outputScaleFactor);
  }
}

// ------------------------------------------------------------------------------ Attention

export interface AttentionOptions {
  queryDim: number;
  /** Size of the context (encoder_hidden_states) features; null: self-attention. */
  crossAttentionDim?: number | null;
  heads: number;
  dimHead: number;
  bias?: boolean;
  outBias?: boolean;
  normGroups?: number | null;
  eps?: number;
  residual?: boolean;
  rescaleOutputFactor?: number;
}

/**
 * diffusers' `Attention` with the classic `AttnProcessor`: optional GroupNorm in front, q from the
 * input, k and v from the context (or the input), softmax(q k^T / sqrt(dim_head)) v per head,
 * `to_out.0`, optional residual, divided by `rescale_output_factor`. Takes NHWC maps or
 * [b, tokens, c] sequences.
 */
export class Attention {
  readonly groupNorm: GroupNorm | null;
  readonly toQ: Linear;
  readonly toK: Linear;
  readonly toV: Linear;
  readonly toOut: Linear;
  private readonly o: AttentionOptions;

  constructor(s: Scope, o: AttentionOptions) {
    if (!(o.heads >= 1))
      throw new DiffusersConfigError(
        'attention_head_dim',
        o.dimHead,
        `gives ${o.heads} attention heads at ${o.queryDim} channels ('${s.prefix}')`,
      );
    this.o = o;
    const inner = o.heads * o.dimHead;
    const ctx = o.crossAttentionDim ?? o.queryDim;
    this.groupNorm =
      o.normGroups != null
        ? s.groupNorm('group_norm', o.queryDim, o.normGroups, o.eps ?? 1e-5)
        : null;
    this.toQ = s.linear('to_q', o.queryDim, inner, o.bias ?? false);
    this.toK = s.linear('to_k', ctx, inner, o.bias ?? false);
    this.toV = s.linear('to_v', ctx, inner, o.bias ?? false);
    this.toOut = s.at('to_out').linear('0', inner, o.queryDim, o.outBias ?? true);
  }

  forward(x: tf.Tensor, context?: tf.Tensor | null): tf.Tensor {
    const o = this.o;
    let h = this.groupNorm ? applyGroupNorm(x, this.groupNorm) : x;
    const spatial = x.rank === 4;
    const [b, hh, ww, c] = x.shape as [number, number, number, number];
    if (spatial) h = tf.reshape(h, [b, hh * ww, c]);
    const src = context ?? h;
    const out = linear(
      attention(
        linear(h, this.toQ),
        linear(src, this.toK),
        linear(src, this.toV),
        o.heads,
        o.dimHead ** -0.5,
      ),
      this.toOut,
    );
    let y = spatial ? tf.reshape(out, [b, hh, ww, c]) : out;
    if (o.residual) y = tf.add(y, x);
    const rescale = o.rescaleOutputFactor ?? 1;
    return rescale === 1 ? y : tf.div(y, rescale);
  }
}

// ------------------------------------------------------------------------------ Transformer2DModel

/** `BasicTransformerBlock` with norm_type 'layer_norm' and a GEGLU feed-forward (Stable Diffusion's). */
export class BasicTransformerBlock {
  readonly norm1: LayerNorm;
  readonly attn1: Attention;
  readonly norm2: LayerNorm | null;
  readonly attn2: Attention | null;
  readonly norm3: LayerNorm;
  readonly ffIn: Linear;
  readonly ffOut: Linear;

  constructor(
    s: Scope,
    dim: number,
    heads: number,
    dimHead: number,
    crossAttentionDim: number | null,
    readonly onlyCrossAttention: boolean,
  ) {
    this.norm1 = s.layerNorm('norm1', dim, 1e-5);
    this.attn1 = new Attention(s.at('attn1'), {
      queryDim: dim,
      heads,
      dimHead,
      crossAttentionDim: onlyCrossAttention ? crossAttentionDim : null,
    });
    if (crossAttentionDim !== null) {
      this.norm2 = s.layerNorm('norm2', dim, 1e-5);
      this.attn2 = new Attention(s.at('attn2'), {
        queryDim: dim,
        heads,
        dimHead,
        crossAttentionDim,
      });
    } else {
      this.norm2 = null;
      this.attn2 = null;
    }
    this.norm3 = s.layerNorm('norm3', dim, 1e-5);
    const inner = dim * 4;
    this.ffIn = s.at('ff.net.0').linear('proj', dim, inner * 2);
    this.ffOut = s.at('ff.net').linear('2', inner, dim);
  }

  forward(x: tf.Tensor, context: tf.Tensor | null): tf.Tensor {
    let h = tf.add(
      this.attn1.forward(applyLayerNorm(x, this.norm1), this.onlyCrossAttention ? context : null),
      x,
    );
    if (this.attn2 && this.norm2)
      h = tf.add(this.attn2.forward(applyLayerNorm(h, this.norm2), context), h);
    // GEGLU (Shazeer 2020): a, gate = proj(x).chunk(2); a * gelu(gate), exact erf GELU.
    const [a, gate] = halves(linear(applyLayerNorm(h, this.norm3), this.ffIn));
    return tf.add(linear(tf.mul(a, activation(gate, 'gelu')), this.ffOut), h);
  }
}

/** `Transformer2DModel` on continuous (image) input: GroupNorm, proj_in, transformer blocks, proj_out, residual. */
export class Transformer2D {
  readonly norm: GroupNorm;
  readonly projIn: Linear | Conv2d;
  readonly blocks: BasicTransformerBlock[];
  readonly projOut: Linear | Conv2d;

  constructor(
    s: Scope,
    o: {
      heads: number;
      dimHead: number;
      inChannels: number;
      numLayers: number;
      crossAttentionDim: number | null;
      normGroups: number;
      useLinearProjection: boolean;
      onlyCrossAttention: boolean;
    },
    readonly useLinear = o.useLinearProjection,
  ) {
    const inner = o.heads * o.dimHead;
    this.norm = s.groupNorm('norm', o.inChannels, o.normGroups, 1e-6);
    this.projIn = useLinear
      ? s.linear('proj_in', o.inChannels, inner)
      : s.conv('proj_in', o.inChannels, inner, 1);
    this.blocks = Array.from(
      { length: o.numLayers },
      (_, i) =>
        new BasicTransformerBlock(
          s.at('transformer_blocks').at(i),
          inner,
          o.heads,
          o.dimHead,
          o.crossAttentionDim,
          o.onlyCrossAttention,
        ),
    );
    this.projOut = useLinear
      ? s.linear('proj_out', inner, o.inChannels)
      : s.conv('proj_out', inner, o.inChannels, 1);
  }

  forward(x: tf.Tensor, context: tf.Tensor | null): tf.Tensor {
    const [b, h, w] = x.shape as [number, number, number, number];
    let y = applyGroupNorm(x, this.norm);
    if (!this.useLinear) y = conv2d(y, this.projIn as Conv2d);
    const inner = this.useLinear ? y.shape[3]! : y.shape[3]!;
    y = tf.reshape(y, [b, h * w, inner]);
    if (this.useLinear) y = linear(y, this.projIn as Linear);
    for (const block of this.blocks) y = block.forward(y, context);
    if (this.useLinear) y = linear(y, this.projOut as Linear);
    y = tf.reshape(y, [b, h, w, y.shape[2]!]);
    if (!this.useLinear) y = conv2d(y, this.projOut as Conv2d);
    return tf.add(y, x);
  }
}

// ------------------------------------------------------------------------------ blocks

/** What `getDownBlock` / `getUpBlock` / the mid blocks take (diffusers' factory arguments). */
export interface BlockArgs {
  numLayers: number;
  inChannels: number;
  outChannels: number;
  tembChannels: number | null;
  eps: number;
  act: Activation;
  groups: number;
  timeScaleShift: 'default' | 'scale_shift';
  /** Per-head size of `Attn*` blocks (UNet2DModel's attention_head_dim). */
  attentionHeadDim?: number;
  /** Heads of `CrossAttn*` blocks (UNet2DConditionModel's attention_head_dim, diffusers' naming quirk). */
  numAttentionHeads?: number;
  crossAttentionDim?: number | null;
  transformerLayers?: number | number[];
  useLinearProjection?: boolean;
  onlyCrossAttention?: boolean;
  skipTimeAct?: boolean;
  outScaleFactor?: number;
}

type Mixer = Attention | Transformer2D;

const resnetOpts = (
  a: BlockArgs,
  inCh: number,
  extra: Partial<ResnetOptions> = {},
): ResnetOptions => ({
  inChannels: inCh,
  outChannels: a.outChannels,
  tembChannels: a.tembChannels,
  groups: a.groups,
  eps: a.eps,
  act: a.act,
  timeEmbeddingNorm: a.timeScaleShift,
  ...extra,
});

const layersAt = (t: number | number[] | undefined, i: number): number =>
  t === undefined ? 1 : typeof t === 'number' ? t : t[i]!;

function attnFor(s: Scope, a: BlockArgs, channels: number): Attention {
  const dimHead = a.attentionHeadDim ?? channels;
  return new Attention(s, {
    queryDim: channels,
    heads: Math.floor(channels / dimHead),
    dimHead,
    normGroups: a.groups,
    eps: a.eps,
    residual: true,
    bias: true,
  });
}

function transformerFor(s: Scope, a: BlockArgs, channels: number, i: number): Transformer2D {
  const heads = a.numAttentionHeads ?? 1;
  return new Transformer2D(s, {
    heads,
    dimHead: Math.floor(channels / heads),
    inChannels: channels,
    numLayers: layersAt(a.transformerLayers, i),
    crossAttentionDim: a.crossAttentionDim ?? null,
    normGroups: a.groups,
    useLinearProjection: a.useLinearProjection ?? false,
    onlyCrossAttention: a.onlyCrossAttention ?? false,
  });
}

/** A down block: resnets (each optionally followed by attention), then an optional downsampler. */
export class DownBlock {
  readonly resnets: ResnetBlock2D[] = [];
  readonly attentions: Mixer[] | null;
  readonly downsampler: Downsample2D | ResnetBlock2D | null;

  constructor(
    s: Scope,
    readonly type: DownBlockType,
    a: BlockArgs & {
      addDownsample: boolean;
      downsamplePadding: number;
      downsampleType: 'conv' | 'resnet';
    },
  ) {
    const resnetLike = type === 'ResnetDownsampleBlock2D';
    const extra: Partial<ResnetOptions> = resnetLike
      ? { skipTimeAct: a.skipTimeAct ?? false, outputScaleFactor: a.outScaleFactor ?? 1 }
      : {};
    const encoder = type === 'DownEncoderBlock2D' || type === 'AttnDownEncoderBlock2D';
    const tembs = encoder ? null : a.tembChannels;
    for (let i = 0; i < a.numLayers; i++)
      this.resnets.push(
        new ResnetBlock2D(
          s.at('resnets').at(i),
          resnetOpts(a, i === 0 ? a.inChannels : a.outChannels, { ...extra, tembChannels: tembs }),
        ),
      );
    this.attentions =
      type === 'AttnDownBlock2D' || type === 'AttnDownEncoderBlock2D'
        ? this.resnets.map((_, i) => attnFor(s.at('attentions').at(i), a, a.outChannels))
        : type === 'CrossAttnDownBlock2D'
          ? this.resnets.map((_, i) =>
              transformerFor(s.at('attentions').at(i), a, a.outChannels, i),
            )
          : null;
    const down = s.at('downsamplers').at(0);
    const downType = type === 'AttnDownBlock2D' ? a.downsampleType : resnetLike ? 'resnet' : 'conv';
    this.downsampler = !a.addDownsample
      ? null
      : downType === 'resnet'
        ? new ResnetBlock2D(
            down,
            resnetOpts(a, a.outChannels, { ...extra, tembChannels: tembs, down: true }),
          )
        : new Downsample2D(down, a.outChannels, a.outChannels, a.downsamplePadding);
  }

  get hasCrossAttention(): boolean {
    return this.type === 'CrossAttnDownBlock2D';
  }

  forward(
    input: tf.Tensor,
    temb: tf.Tensor | null,
    context: tf.Tensor | null,
  ): { h: tf.Tensor; states: tf.Tensor[] } {
    let h = input;
    const states: tf.Tensor[] = [];
    this.resnets.forEach((resnet, i) => {
      h = resnet.forward(h, temb);
      const mixer = this.attentions?.[i];
      if (mixer) h = mixer.forward(h, mixer instanceof Transformer2D ? context : null);
      states.push(h);
    });
    if (this.downsampler) {
      h =
        this.downsampler instanceof ResnetBlock2D
          ? this.downsampler.forward(h, temb)
          : this.downsampler.forward(h);
      states.push(h);
    }
    return { h, states };
  }
}

/** An up block: concatenates skips (not in the VAE decoder), resnets (+ attention), optional upsampler. */
export class UpBlock {
  readonly resnets: ResnetBlock2D[] = [];
  readonly attentions: Mixer[] | null;
  readonly upsampler: Upsample2D | ResnetBlock2D | null;

  constructor(
    s: Scope,
    readonly type: UpBlockType,
    a: BlockArgs & {
      prevOutputChannel: number;
      addUpsample: boolean;
      upsampleType: 'conv' | 'resnet';
    },
  ) {
    const resnetLike = type === 'ResnetUpsampleBlock2D';
    const extra: Partial<ResnetOptions> = resnetLike
      ? { skipTimeAct: a.skipTimeAct ?? false, outputScaleFactor: a.outScaleFactor ?? 1 }
      : {};
    const decoder = type === 'UpDecoderBlock2D' || type === 'AttnUpDecoderBlock2D';
    for (let i = 0; i < a.numLayers; i++) {
      const inCh = decoder
        ? i === 0
          ? a.inChannels
          : a.outChannels
        : (i === 0 ? a.prevOutputChannel : a.outChannels) +
          (i === a.numLayers - 1 ? a.inChannels : a.outChannels);
      this.resnets.push(new ResnetBlock2D(s.at('resnets').at(i), resnetOpts(a, inCh, extra)));
    }
    this.attentions =
      type === 'AttnUpBlock2D' || type === 'AttnUpDecoderBlock2D'
        ? this.resnets.map((_, i) => attnFor(s.at('attentions').at(i), a, a.outChannels))
        : type === 'CrossAttnUpBlock2D'
          ? this.resnets.map((_, i) =>
              transformerFor(s.at('attentions').at(i), a, a.outChannels, i),
            )
          : null;
    const up = s.at('upsamplers').at(0);
    const upType = type === 'AttnUpBlock2D' ? a.upsampleType : resnetLike ? 'resnet' : 'conv';
    this.upsampler = !a.addUpsample
      ? null
      : upType === 'resnet'
        ? new ResnetBlock2D(up, resnetOpts(a, a.outChannels, { ...extra, up: true }))
        : new Upsample2D(up, a.outChannels, a.outChannels);
  }

  get usesSkips(): boolean {
    return this.type !== 'UpDecoderBlock2D' && this.type !== 'AttnUpDecoderBlock2D';
  }

  /** `skips` are consumed from the end (the last down state first), as diffusers pops them. */
  forward(
    input: tf.Tensor,
    skips: tf.Tensor[],
    temb: tf.Tensor | null,
    context: tf.Tensor | null,
    upsampleSize?: readonly [number, number],
  ): tf.Tensor {
    let h = input;
    this.resnets.forEach((resnet, i) => {
      if (this.usesSkips) h = tf.concat([h, skips[skips.length - 1 - i]!], 3);
      h = resnet.forward(h, temb);
      const mixer = this.attentions?.[i];
      if (mixer) h = mixer.forward(h, mixer instanceof Transformer2D ? context : null);
    });
    if (this.upsampler)
      h =
        this.upsampler instanceof ResnetBlock2D
          ? this.upsampler.forward(h, temb)
          : this.upsampler.forward(h, upsampleSize);
    return h;
  }
}

const skipGroups = (c: number) => Math.min(Math.floor(c / 4), 32);
/** The Skip* blocks' fixed output_scale_factor, sqrt 2 (NCSN++'s skip_rescale), for resnets and attention. */
const SKIP_SCALE = Math.SQRT2;

/**
 * `SkipDownBlock2D` / `AttnSkipDownBlock2D` (NCSN++, Song et al. 2021): resnets (GroupNorm groups
 * min(channels / 4, 32), whatever norm_num_groups says, as diffusers), optional attention (32
 * groups), then a FIR-downsampling resnet, and the image-resolution skip path: the 3-channel input
 * FIR-downsampled and added through a 1x1 conv.
 */
export class SkipDownBlock {
  readonly resnets: ResnetBlock2D[] = [];
  readonly attentions: Attention[] | null;
  readonly resnetDown: ResnetBlock2D | null;
  readonly skipConv: Conv2d | null;

  constructor(
    s: Scope,
    readonly type: 'SkipDownBlock2D' | 'AttnSkipDownBlock2D',
    a: BlockArgs & { addDownsample: boolean },
  ) {
    const out = a.outChannels;
    for (let i = 0; i < a.numLayers; i++) {
      const inCh = i === 0 ? a.inChannels : out;
      this.resnets.push(
        new ResnetBlock2D(s.at('resnets').at(i), {
          ...resnetOpts(a, inCh),
          groups: skipGroups(inCh),
          groupsOut: skipGroups(out),
          outputScaleFactor: SKIP_SCALE,
        }),
      );
    }
    const dimHead = a.attentionHeadDim ?? out;
    this.attentions =
      type === 'AttnSkipDownBlock2D'
        ? this.resnets.map(
            (_, i) =>
              new Attention(s.at('attentions').at(i), {
                queryDim: out,
                heads: Math.floor(out / dimHead),
                dimHead,
                eps: a.eps,
                normGroups: 32,
                rescaleOutputFactor: SKIP_SCALE,
                residual: true,
                bias: true,
              }),
          )
        : null;
    this.resnetDown = a.addDownsample
      ? new ResnetBlock2D(s.at('resnet_down'), {
          ...resnetOpts(a, out),
          groups: skipGroups(out),
          outputScaleFactor: SKIP_SCALE,
          useInShortcut: true,
          down: true,
          fir: true,
        })
      : null;
    this.skipConv = a.addDownsample ? s.conv('skip_conv', 3, out, 1) : null;
  }

  forward(
    input: tf.Tensor,
    temb: tf.Tensor | null,
    skip: tf.Tensor,
  ): { h: tf.Tensor; states: tf.Tensor[]; skip: tf.Tensor } {
    let h = input;
    const states: tf.Tensor[] = [];
    this.resnets.forEach((resnet, i) => {
      h = resnet.forward(h, temb);
      const attn = this.attentions?.[i];
      if (attn) h = attn.forward(h);
      states.push(h);
    });
    let sk = skip;
    if (this.resnetDown && this.skipConv) {
      h = this.resnetDown.forward(h, temb);
      sk = firDownsample(sk);
      h = tf.add(conv2d(sk, this.skipConv), h);
      states.push(h);
    }
    return { h, states, skip: sk };
  }
}

/**
 * `SkipUpBlock2D` / `AttnSkipUpBlock2D`: resnets over the concatenated skips, one attention after
 * them (Attn*), the image-resolution skip path FIR-upsampled and, except in the last block, added to
 * conv(SiLU(GroupNorm(h))) before a FIR-upsampling resnet. diffusers' group counts are kept as they
 * are, including AttnSkipUpBlock2D's min(in + skip // 4, 32).
 */
export class SkipUpBlock {
  readonly resnets: ResnetBlock2D[] = [];
  readonly attention: Attention | null;
  readonly resnetUp: ResnetBlock2D | null;
  readonly skipConv: Conv2d | null;
  readonly skipNorm: GroupNorm | null;

  constructor(
    s: Scope,
    readonly type: 'SkipUpBlock2D' | 'AttnSkipUpBlock2D',
    a: BlockArgs & { prevOutputChannel: number; addUpsample: boolean },
  ) {
    const out = a.outChannels;
    for (let i = 0; i < a.numLayers; i++) {
      const resIn = i === 0 ? a.prevOutputChannel : out;
      const skipCh = i === a.numLayers - 1 ? a.inChannels : out;
      const groups =
        type === 'AttnSkipUpBlock2D'
          ? Math.min(resIn + Math.floor(skipCh / 4), 32)
          : skipGroups(resIn + skipCh);
      this.resnets.push(
        new ResnetBlock2D(s.at('resnets').at(i), {
          ...resnetOpts(a, resIn + skipCh),
          groups,
          groupsOut: skipGroups(out),
          outputScaleFactor: SKIP_SCALE,
        }),
      );
    }
    const dimHead = a.attentionHeadDim ?? out;
    this.attention =
      type === 'AttnSkipUpBlock2D'
        ? new Attention(s.at('attentions').at(0), {
            queryDim: out,
            heads: Math.floor(out / dimHead),
            dimHead,
            eps: a.eps,
            normGroups: 32,
            rescaleOutputFactor: SKIP_SCALE,
            residual: true,
            bias: true,
          })
        : null;
    if (a.addUpsample) {
      this.resnetUp = new ResnetBlock2D(s.at('resnet_up'), {
        ...resnetOpts(a, out),
        groups: skipGroups(out),
        groupsOut: skipGroups(out),
        outputScaleFactor: SKIP_SCALE,
        useInShortcut: true,
        up: true,
        fir: true,
      });
      this.skipConv = s.conv('skip_conv', out, 3, 3);
      this.skipNorm = s.groupNorm('skip_norm', out, skipGroups(out), a.eps);
    } else {
      this.resnetUp = null;
      this.skipConv = null;
      this.skipNorm = null;
    }
  }

  forward(
    input: tf.Tensor,
    skips: tf.Tensor[],
    temb: tf.Tensor | null,
    skip: tf.Tensor | null,
  ): { h: tf.Tensor; skip: tf.Tensor | null } {
    let h = input;
    this.resnets.forEach((resnet, i) => {
      h = tf.concat([h, skips[skips.length - 1 - i]!], 3);
      h = resnet.forward(h, temb);
    });
    if (this.attention) h = this.attention.forward(h);
    let sk = skip === null ? null : firUpsample(skip);
    if (this.resnetUp && this.skipConv && this.skipNorm) {
      const states = conv2d(applyGroupNorm(h, this.skipNorm, 'silu'), this.skipConv);
      sk = sk === null ? states : tf.add(sk, states);
      h = this.resnetUp.forward(h, temb);
    }
    return { h, skip: sk };
  }
}

/**
 * `UNetMidBlock2D` (resnet, then [attention, resnet] per layer; self-attention with GroupNorm and a
 * residual) and `UNetMidBlock2DCrossAttn` (the same with `Transformer2DModel`s).
 */
export class MidBlock {
  readonly resnets: ResnetBlock2D[] = [];
  readonly attentions: (Mixer | null)[] = [];

  constructor(
    s: Scope,
    readonly crossAttention: boolean,
    a: BlockArgs & {
      outputScaleFactor: number;
      addAttention: boolean;
      attnGroups?: number | null;
    },
  ) {
    const ch = a.inChannels;
    const opts = resnetOpts({ ...a, outChannels: ch }, ch, {
      outputScaleFactor: a.outputScaleFactor,
    });
    this.resnets.push(new ResnetBlock2D(s.at('resnets').at(0), opts));
    for (let i = 0; i < a.numLayers; i++) {
      const at = s.at('attentions').at(i);
      if (crossAttention)
        this.attentions.push(transformerFor(at, { ...a, outChannels: ch }, ch, i));
      else if (a.addAttention) {
        const dimHead = a.attentionHeadDim ?? ch;
        const groups =
          a.attnGroups !== undefined && a.attnGroups !== null
            ? a.attnGroups
            : a.timeScaleShift === 'default'
              ? a.groups
              : null;
        this.attentions.push(
          new Attention(at, {
            queryDim: ch,
            heads: Math.floor(ch / dimHead),
            dimHead,
            rescaleOutputFactor: a.outputScaleFactor,
            eps: a.eps,
            normGroups: groups,
            residual: true,
            bias: true,
          }),
        );
      } else this.attentions.push(null);
      this.resnets.push(new ResnetBlock2D(s.at('resnets').at(i + 1), opts));
    }
  }

  forward(input: tf.Tensor, temb: tf.Tensor | null, context: tf.Tensor | null): tf.Tensor {
    let h = this.resnets[0]!.forward(input, temb);
    this.attentions.forEach((mixer, i) => {
      if (mixer) h = mixer.forward(h, mixer instanceof Transformer2D ? context : null);
      h = this.resnets[i + 1]!.forward(h, temb);
    });
    return h;
  }
}

// ------------------------------------------------------------------------------ embeddings

/**
 * Sinusoidal timestep features (diffusers `get_timestep_embedding`; Vaswani et al. 2017, sec. 3.5):
 * freq_i = exp(-ln(max_period) i / (half - shift)), emb = [sin(t freq), cos(t freq)] (flipped to
 * [cos, sin] when `flip`), zero-padded to an odd `dim`. The frequencies are computed in float32 the
 * way PyTorch does (arange, multiply, divide, exp, each rounded to float32), so t freq matches.
 *
 * @example
 * const emb = timestepEmbedding(tf.tensor1d([981, 981]), 32, true, 0); // [2, 32]
 */
export function timestepEmbedding(
  timesteps: tf.Tensor,
  dim: number,
  flip: boolean,
  shift: number,
  scale = 1,
  maxPeriod = 10000,
): tf.Tensor {
  const half = Math.floor(dim / 2);
  const f = Math.fround;
  const freqs = new Float32Array(half);
  const logPeriod = f(-Math.log(maxPeriod));
  const denom = f(half - shift);
  for (let i = 0; i < half; i++) freqs[i] = f(Math.exp(f(f(logPeriod * i) / denom)));
  let args = tf.mul(
    tf.reshape(tf.cast(timesteps, 'float32'), [-1, 1]),
    tf.tensor2d(freqs, [1, half]),
  );
  if (scale !== 1) args = tf.mul(args, scale);
  const parts = flip ? [tf.cos(args), tf.sin(args)] : [tf.sin(args), tf.cos(args)];
  let emb = tf.concat(parts, 1);
  if (dim % 2 === 1)
    emb = tf.pad(emb, [
      [0, 0],
      [0, 1],
    ]);
  return emb;
}

/** `TimestepEmbedding`: linear_1, act, linear_2 (optional cond_proj added first, optional post_act). */
export class TimestepEmbedding {
  readonly linear1: Linear;
  readonly linear2: Linear;
  readonly condProj: Linear | null;

  constructor(
    s: Scope,
    inChannels: number,
    dim: number,
    readonly act: Activation,
    readonly postAct: Activation | null = null,
    condProjDim: number | null = null,
  ) {
    this.linear1 = s.linear('linear_1', inChannels, dim);
    this.condProj =
      condProjDim === null ? null : s.linear('cond_proj', condProjDim, inChannels, false);
    this.linear2 = s.linear('linear_2', dim, dim);
  }

  forward(x: tf.Tensor, condition?: tf.Tensor | null): tf.Tensor {
    let h = x;
    if (condition != null && this.condProj) h = tf.add(h, linear(condition, this.condProj));
    h = linear(activation(linear(h, this.linear1), this.act), this.linear2);
    return this.postAct ? activation(h, this.postAct) : h;
  }
}

/**
 * `GaussianFourierProjection` (Song et al. 2021, score SDE's NCSN++): x_proj = x W 2 pi with fixed
 * random W; [sin, cos] (or [cos, sin] when `flip`); `log` takes log(x) first.
 */
export class GaussianFourierProjection {
  readonly weight: Slot;
  constructor(
    s: Scope,
    size: number,
    readonly log: boolean,
    readonly flip: boolean,
  ) {
    this.weight = s.param('weight', [size]);
  }

  forward(x: tf.Tensor): tf.Tensor {
    const t = this.log ? tf.log(tf.cast(x, 'float32')) : tf.cast(x, 'float32');
    const proj = tf.mul(
      tf.mul(tf.mul(tf.reshape(t, [-1, 1]), tf.reshape(read(this.weight), [1, -1])), 2),
      Math.fround(Math.PI),
    );
    return tf.concat(this.flip ? [tf.cos(proj), tf.sin(proj)] : [tf.sin(proj), tf.cos(proj)], 1);
  }
}
