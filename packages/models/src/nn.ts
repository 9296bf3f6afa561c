/**
 * Building blocks of the networks, written with tfjs-core ops and explicit `tf.Variable`s (no
 * tfjs-layers): a named parameter store with seeded initialisers, dense and conv layers, SiLU and
 * the other activations diffusers uses, GroupNorm, LayerNorm, sinusoidal noise features, class
 * embeddings and multi-head scaled dot-product attention. Both the toolkit's own networks and the
 * diffusers checkpoints (`diffusers/`) are built from these, so each exists once.
 * Layout: images are NHWC; dense layers act on the last axis.
 */

import {
  silu as backendSilu,
  groupNorm as fusedGroupNorm,
  type GroupNormActivation,
  type Random,
} from '@diffuse/backend';
import * as tf from '@tensorflow/tfjs-core';
import { type ParamBudget, ParamTally } from './budget.js';
import { ModelError } from './errors.js';

export { formatBytes, type ParamBudget } from './budget.js';

/**
 * Named, ordered trainable parameters. Names are dotted paths ("blocks.0.dense.weight"); the order of
 * creation is the order of `params`, so two models built from the same config line up one to one.
 *
 * A store made with `allocate: false` only records names and shapes (no tensor, no memory): running a
 * network's layout code through it gives the parameter list a config implies, so a config can be
 * checked against a budget, and a weights file against the config, before anything is allocated.
 * With a `budget`, `add` refuses (a `ModelConfigError` on `maxParams`) as soon as the total would
 * exceed it, so even a config with depth 1e9 is rejected after at most `maxTensors` cheap steps.
 */
export class ParamStore {
  private readonly vars = new Map<string, tf.Variable>();
  private readonly shapes = new Map<string, number[]>();
  private readonly tally: ParamTally;
  constructor(
    private readonly rng: Random | undefined,
    private readonly options: { allocate?: boolean; budget?: ParamBudget } = {},
  ) {
    this.tally = new ParamTally(options.budget);
  }

  /** A new parameter: `zeros`, `ones`, or normal with standard deviation `std`. */
  add(name: string, shape: number[], init: 'zeros' | 'ones' | { std: number }): tf.Variable {
    if (this.shapes.has(name)) throw new ModelError(`parameter '${name}' defined twice`);
    const size = this.tally.add(name, shape);
    this.shapes.set(name, [...shape]);
    // Layout code only passes the handles around while building; a shape-only store has none.
    if (this.options.allocate === false) return undefined as unknown as tf.Variable;
    let values: Float32Array;
    if (init === 'zeros') values = new Float32Array(size);
    else if (init === 'ones') values = new Float32Array(size).fill(1);
    else {
      values = this.rng ? this.rng.normalArray(size) : new Float32Array(size);
      for (let i = 0; i < size; i++) values[i]! *= init.std;
    }
    const v = tf.tidy(() => tf.variable(tf.tensor(values, shape, 'float32'), true));
    this.vars.set(name, v);
    return v;
  }

  /** Every parameter's name and shape, in creation order (also for a shape-only store). */
  shapeList(): [string, number[]][] {
    return [...this.shapes.entries()].map(([n, s]) => [n, [...s]]);
  }

  /** Total scalar parameters added so far. */
  get size(): number {
    return this.tally.size;
  }

  /** Frees every variable made so far (a constructor that fails half-way calls this). */
  dispose(): void {
    for (const v of this.vars.values()) v.dispose();
    this.vars.clear();
  }

  /** A dense layer's weight [inDim, outDim] (He-normal scaled by `gain`) and zero bias. */
  dense(name: string, inDim: number, outDim: number, gain = 1): Dense {
    return {
      w: this.add(`${name}.weight`, [inDim, outDim], { std: gain * Math.sqrt(2 / inDim) }),
      b: this.add(`${name}.bias`, [outDim], 'zeros'),
    };
  }

  /** A k x k conv's filter [k, k, inCh, outCh] (He-normal scaled by `gain`) and zero bias. */
  conv(name: string, k: number, inCh: number, outCh: number, gain = 1): Conv {
    return {
      w: this.add(`${name}.weight`, [k, k, inCh, outCh], {
        std: gain * Math.sqrt(2 / (k * k * inCh)),
      }),
      b: this.add(`${name}.bias`, [outCh], 'zeros'),
    };
  }

  /** GroupNorm's scale (ones) and shift (zeros) over `channels`. */
  norm(name: string, channels: number): Norm {
    return {
      gamma: this.add(`${name}.gamma`, [channels], 'ones'),
      beta: this.add(`${name}.beta`, [channels], 'zeros'),
    };
  }

  entries(): [string, tf.Variable][] {
    return [...this.vars.entries()];
  }
}

export interface Dense {
  w: tf.Variable;
  b: tf.Variable;
}
export interface Conv {
  w: tf.Variable;
  b: tf.Variable;
}
export interface Norm {
  gamma: tf.Variable;
  beta: tf.Variable;
}

/** Weights of a dense layer as `dense` reads them: w [inDim, outDim], optional bias [outDim]. */
export interface DenseWeights {
  w: tf.Tensor;
  b?: tf.Tensor;
}
/** Weights of a conv as `conv` reads them: w [kh, kw, inCh, outCh], optional bias [outCh]. */
export interface ConvWeights {
  w: tf.Tensor;
  b?: tf.Tensor;
}
/** Per-channel scale and shift of a normalisation layer. */
export interface NormWeights {
  gamma: tf.Tensor;
  beta: tf.Tensor;
}

/** x W (+ b) on the last axis of x (any rank). */
export function dense(x: tf.Tensor, p: DenseWeights): tf.Tensor {
  const [inDim, outDim] = p.w.shape as [number, number];
  const mm = (a: tf.Tensor) => {
    const y = tf.matMul(a as tf.Tensor2D, p.w as tf.Tensor2D);
    return p.b ? tf.add(y, p.b) : y;
  };
  if (x.rank === 2) return mm(x);
  const lead = x.shape.slice(0, -1);
  return tf.reshape(mm(tf.reshape(x, [-1, inDim])), [...lead, outDim]);
}

/**
 * A conv (NHWC) with optional bias. `pad` is 'same' (TensorFlow's rule, the default) or a number p
 * of zero rows/columns on every side, as PyTorch's `Conv2d(padding=p)`: the two differ for strided
 * convs ('same' pads only after the input when the total padding is odd).
 */
export function conv(
  x: tf.Tensor,
  p: ConvWeights,
  stride = 1,
  pad: 'same' | number = 'same',
): tf.Tensor {
  const padding:
    | 'same'
    | 'valid'
    | [[number, number], [number, number], [number, number], [number, number]] =
    pad === 'same'
      ? 'same'
      : pad === 0
        ? 'valid'
        : [
            [0, 0],
            [pad, pad],
            [pad, pad],
            [0, 0],
          ];
  const y = tf.conv2d(x as tf.Tensor4D, p.w as tf.Tensor4D, stride, padding);
  return p.b ? tf.add(y, p.b) : y;
}

/**
 * SiLU(x) = x sigmoid(x) (Elfwing et al. 2018; tfjs-core has no silu op): `silu` of
 * `@diffuse/backend`, one fused kernel each way on wasm, `tf.mul(x, tf.sigmoid(x))` elsewhere, with
 * the same float32 results.
 */
export function silu(x: tf.Tensor): tf.Tensor {
  return backendSilu(x);
}

/** The activations diffusers' `get_activation` knows ('swish' is SiLU). */
export const ACTIVATIONS = ['silu', 'swish', 'mish', 'gelu', 'relu'] as const;
/** One of `ACTIVATIONS`. */
export type Activation = (typeof ACTIVATIONS)[number];

/**
 * An activation by name, as PyTorch defines it: SiLU x sigmoid(x); Mish x tanh(softplus(x)) (Misra
 * 2019); exact GELU x Phi(x) = x (1 + erf(x / sqrt 2)) / 2 (Hendrycks & Gimpel 2016, `nn.GELU()`);
 * ReLU max(x, 0).
 *
 * @example
 * const y = activation(tf.tensor1d([-1, 0, 1]), 'gelu'); // [-0.1587, 0, 0.8413]
 */
export function activation(x: tf.Tensor, name: Activation): tf.Tensor {
  switch (name) {
    case 'silu':
    case 'swish':
      return silu(x);
    case 'mish':
      return tf.mul(x, tf.tanh(tf.softplus(x)));
    case 'gelu':
      return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2))));
    case 'relu':
      return tf.relu(x);
  }
}

/**
 * LayerNorm (Ba et al. 2016) over the last axis: (x - mean) / sqrt(var + eps), then scale and shift
 * when `p` is given (PyTorch's `nn.LayerNorm`, biased variance).
 *
 * @example
 * const y = layerNorm(tf.tensor2d([[1, 2, 3]]), undefined, 1e-5); // [[-1.2247, 0, 1.2247]]
 */
export function layerNorm(x: tf.Tensor, p: NormWeights | undefined, eps: number): tf.Tensor {
  const { mean, variance } = tf.moments(x, -1, true);
  const y = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps)));
  return p ? tf.add(tf.mul(y, p.gamma), p.beta) : y;
}

/**
 * GroupNorm (Wu & He 2018) over NHWC, optionally followed by SiLU: normalise each of `groups` channel
 * groups by its mean and variance over (H, W, channels in the group), scale and shift per channel,
 * then `activation`. One fused kernel each way on wasm and cpu (`groupNorm` of `@diffuse/backend`,
 * with its analytic gradient); composed tfjs ops on webgl and webgpu.
 */
export function groupNorm(
  x: tf.Tensor,
  p: NormWeights,
  groups: number,
  activation: GroupNormActivation = 'none',
  eps = 1e-5,
): tf.Tensor {
  return fusedGroupNorm(x, p.gamma, p.beta, { groups, epsilon: eps, activation });
}

/**
 * Sinusoidal features of a per-example noise input n ([batch]): [sin(f_i n), cos(f_i n)] with
 * frequencies f_i geometric from 1/16 to 8 (Vaswani et al. 2017, sec. 3.5; VDM conditions on logSNR,
 * whose useful range is about [-20, 20]). Shape [batch, dim].
 */
export function noiseFeatures(noise: tf.Tensor, dim: number): tf.Tensor {
  const half = Math.floor(dim / 2);
  const freqs = new Float32Array(half);
  for (let i = 0; i < half; i++)
    freqs[i] = Math.exp(Math.log(1 / 16) + (Math.log(128) * i) / Math.max(1, half - 1));
  const angles = tf.mul(tf.reshape(noise, [-1, 1]), tf.tensor2d(freqs, [1, half]));
  return tf.concat([tf.sin(angles), tf.cos(angles)], 1);
}

/**
 * Rows of a class-embedding table [numClasses + 1, dim] for int labels [batch] (the last row is the
 * learned null class of classifier-free guidance, used when labels are absent). One-hot times the
 * table, so the gradient is a matMul on every backend. Labels stay on the device (no readback), so a
 * label outside [0, numClasses] is not detected: its one-hot row is zero.
 */
export function classEmbedding(
  table: tf.Tensor,
  labels: tf.Tensor | undefined,
  batch: number,
): tf.Tensor {
  const rows = table.shape[0]!;
  const ids =
    labels === undefined
      ? tf.fill([batch], rows - 1, 'int32')
      : tf.cast(tf.reshape(labels, [-1]), 'int32');
  if (ids.shape[0] !== batch) throw new ModelError(`expected ${batch} labels, got ${ids.shape[0]}`);
  // tf.oneHot(..., 'float32') returns int32 bit patterns on wasm (tfjs 4.22); cast the int32 one-hot instead.
  return tf.matMul(tf.cast(tf.oneHot(ids, rows), 'float32'), table as tf.Tensor2D);
}

/**
 * Multi-head scaled dot-product attention (Vaswani et al. 2017, sec. 3.2.2): q [b, n, heads * d],
 * k [b, m, heads * d], v [b, m, heads * dv] to softmax(scale q_h k_h^T) v_h per head, concatenated
 * back to [b, n, heads * dv]. The same math as diffusers' classic `AttnProcessor` (scores =
 * scale * q k^T, softmax over keys, times v); with one head no reshapes are made.
 *
 * @example
 * const out = attention(q, k, v, 4, 1 / Math.sqrt(8)); // 4 heads of size 8
 */
export function attention(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  heads: number,
  scale: number,
): tf.Tensor {
  if (heads === 1) return tf.matMul(tf.softmax(tf.mul(tf.matMul(q, k, false, true), scale)), v);
  const [b, n] = q.shape as [number, number, number];
  const split = (t: tf.Tensor) => {
    const [, len, dim] = t.shape as [number, number, number];
    const d = dim / heads;
    return tf.reshape(tf.transpose(tf.reshape(t, [b, len, heads, d]), [0, 2, 1, 3]), [
      b * heads,
      len,
      d,
    ]);
  };
  const out = tf.matMul(
    tf.softmax(tf.mul(tf.matMul(split(q), split(k), false, true), scale)),
    split(v),
  );
  const dv = out.shape[2]!;
  return tf.reshape(tf.transpose(tf.reshape(out, [b, heads, n, dv]), [0, 2, 1, 3]), [
    b,
    n,
    heads * dv,
  ]);
}

/** Single-head self-attention over the H x W positions of an NHWC map, with a residual connection. */
export function selfAttention(x: tf.Tensor, p: AttentionParams, groups: number): tf.Tensor {
  const [b, h, w, c] = x.shape as [number, number, number, number];
  const tokens = tf.reshape(groupNorm(x, p.norm, groups), [b, h * w, c]);
  const q = dense(tokens, p.q);
  const k = dense(tokens, p.k);
  const v = dense(tokens, p.v);
  const out = dense(attention(q, k, v, 1, 1 / Math.sqrt(c)), p.out);
  return tf.add(x, tf.reshape(out, [b, h, w, c]));
}

export interface AttentionParams {
  norm: Norm;
  q: Dense;
  k: Dense;
  v: Dense;
  out: Dense;
}

export function attentionParams(store: ParamStore, name: string, c: number): AttentionParams {
  return {
    norm: store.norm(`${name}.norm`, c),
    q: store.dense(`${name}.q`, c, c, Math.SQRT1_2),
    k: store.dense(`${name}.k`, c, c, Math.SQRT1_2),
    v: store.dense(`${name}.v`, c, c, Math.SQRT1_2),
    out: store.dense(`${name}.out`, c, c, 0.1),
  };
}

/** Nearest-neighbour 2x upsampling of NHWC by broadcasting (differentiable on every backend). */
export function upsample2x(x: tf.Tensor): tf.Tensor {
  const [b, h, w, c] = x.shape as [number, number, number, number];
  const y = tf.mul(tf.reshape(x, [b, h, 1, w, 1, c]), tf.ones([1, 1, 2, 1, 2, 1]));
  return tf.reshape(y, [b, 2 * h, 2 * w, c]);
}
