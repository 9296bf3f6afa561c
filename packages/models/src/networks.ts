/**
 * Trainable denoisers and a noise-conditional classifier in tfjs-core, with explicit `tf.Variable`
 * parameters. Every network conditions on the noise level through sinusoidal features of
 * logSNR = 2 log(alpha / sigma) (VDM sec. 3.3: the same input for every schedule), and optionally on
 * a class label through a learned embedding whose extra row is the null class of classifier-free
 * guidance (Ho & Salimans 2022).
 *
 * - `Mlp`: a residual MLP for low-dimensional data.
 * - `UNet`: the DDPM / ADM U-Net (Ho et al. 2020, appendix B; Dhariwal & Nichol 2021): residual blocks
 *   with GroupNorm and SiLU, a time embedding added in every block, self-attention at chosen
 *   resolutions, skip connections between levels.
 * - `NoiseConditionalClassifier`: p_phi(y | x_t) for classifier guidance (Dhariwal & Nichol 2021, sec. 4):
 *   the MLP trunk for vectors, the U-Net encoder with global pooling for images. Outputs logits and is
 *   differentiable in x.
 */

import { Random } from '@diffuse/backend';
import type { NoiseLevel, Prediction, Scalar } from '@diffuse/schedules';
import { PREDICTIONS } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { type BudgetOptions, checkActivationBudget, paramBudget } from './budget.js';
import type { Conditioning, Denoiser } from './denoiser.js';
import { ModelConfigError, ModelError } from './errors.js';
import {
  type AttentionParams,
  attentionParams,
  type Conv,
  classEmbedding,
  conv,
  type Dense,
  dense,
  groupNorm,
  type Norm,
  noiseFeatures,
  ParamStore,
  selfAttention,
  silu,
  upsample2x,
} from './nn.js';
import { edmPreconditioned, logSNRTensor, type NoiseConditionalNetwork } from './wrappers.js';

/** EDM preconditioning (the network is F; the model predicts x0). */
export interface EdmPreconditioningConfig {
  type: 'edm';
  sigmaData: number;
}

/** Configuration of `Mlp`: JSON, saved beside the weights. */
export interface MlpConfig {
  kind: 'mlp';
  /** Data dimension d. */
  dim: number;
  /** Hidden width. */
  width: number;
  /** Number of residual blocks. */
  depth: number;
  /** Width of the noise (and class) embedding. */
  embedDim: number;
  /** Number of classes (0: unconditional). The embedding has numClasses + 1 rows (null class last). */
  numClasses: number;
  /** What the network predicts (ignored, x0, with EDM preconditioning). */
  prediction: Prediction;
  preconditioning?: EdmPreconditioningConfig | null;
}

/** Configuration of `UNet`. */
export interface UNetConfig {
  kind: 'unet';
  /** [height, width, channels] of one image; height and width divisible by 2^(levels - 1). */
  imageShape: [number, number, number];
  /** Base channel count; level i has channels * channelMults[i]. */
  channels: number;
  channelMults: number[];
  /** Residual blocks per level (the up path has one more, as in DDPM). */
  numResBlocks: number;
  /** Resolutions (height) that get self-attention, e.g. [14] or [7]. */
  attentionResolutions: number[];
  /** GroupNorm groups (must divide every channel count). */
  groups: number;
  embedDim: number;
  numClasses: number;
  prediction: Prediction;
  preconditioning?: EdmPreconditioningConfig | null;
}

/** Configuration of `NoiseConditionalClassifier`. */
export interface ClassifierConfig {
  kind: 'classifier';
  /** One example's shape: [d] (MLP trunk) or [height, width, channels] (conv trunk). */
  inputShape: number[];
  numClasses: number;
  /** MLP trunk: hidden width and residual blocks. */
  width: number;
  depth: number;
  /** Conv trunk: base channels, multipliers per level, GroupNorm groups. */
  channels: number;
  channelMults: number[];
  groups: number;
  embedDim: number;
}

/**
 * Configuration of `ImageClassifier`: a plain convnet (no noise input) that reads clean images.
 * Every conv is 3x3 with ReLU; the first keeps the resolution, each later one has stride 2.
 */
export interface ImageClassifierConfig {
  kind: 'image-classifier';
  /** [height, width, channels] of one image. */
  inputShape: [number, number, number];
  numClasses: number;
  /** Output channels of the conv layers, in order (at least one). */
  channels: number[];
  /** Width of the hidden dense layer, whose ReLU output is `features` (the penultimate layer). */
  hidden: number;
}

export type ModelConfig = MlpConfig | UNetConfig | ClassifierConfig | ImageClassifierConfig;

/** Options when creating a network. */
export interface CreateOptions {
  /** Seed of the initial weights (default 0). */
  seed?: number;
  /** Draw random initial weights (default true); false leaves zeros, e.g. before loading weights. */
  initialize?: boolean;
  /**
   * Most scalar parameters the config may imply (default `DEFAULT_MAX_PARAMS`, 100 M = 400 MB of
   * float32). Checked from the config alone, before any tensor is allocated.
   */
  maxParams?: number;
  /**
   * Largest single activation tensor one example may need, in bytes of float32 (default
   * `DEFAULT_MAX_ACTIVATION_BYTES`, 1 GiB): a U-Net's feature maps and attention scores, estimated
   * from the config alone (see `largestActivation`). A config over it could be built but never run.
   */
  maxActivationBytes?: number;
}

export { DEFAULT_MAX_ACTIVATION_BYTES, DEFAULT_MAX_PARAMS } from './budget.js';

/**
 * The largest single activation of one example of a conv network, in float32 elements, from the
 * config alone: per level l (side H / 2^l x W / 2^l, channels c m_l), the feature map (twice the
 * channels where the up path concatenates a skip) and, where the level has self-attention (an
 * attention resolution, and the U-Net's middle block at the lowest level), the (H_l W_l)^2 matrix
 * of attention scores. Returns the size and the field that drives it.
 */
function largestActivation(c: ModelConfig): { elements: number; field: string } {
  if (c.kind === 'mlp' || (c.kind === 'classifier' && c.inputShape.length === 1))
    return { elements: 0, field: '' };
  if (c.kind === 'image-classifier') {
    // conv i maps to ceil(H / 2^i) x ceil(W / 2^i) x channels[i] (stride 1, then 2)
    let [h, w] = c.inputShape;
    let elements = 0;
    c.channels.forEach((ch, i) => {
      if (i > 0) {
        h = Math.ceil(h / 2);
        w = Math.ceil(w / 2);
      }
      elements = Math.max(elements, h * w * ch);
    });
    return { elements, field: 'image-classifier.inputShape' };
  }
  const [H, W] = (c.kind === 'unet' ? c.imageShape : c.inputShape) as number[];
  const shapeKey = c.kind === 'unet' ? 'imageShape' : 'inputShape';
  let best = { elements: 0, field: '' };
  const levels = c.channelMults.length;
  for (let l = 0; l < levels; l++) {
    const hw = (H! / 2 ** l) * (W! / 2 ** l);
    // the up path's first stage at level l concatenates level l + 1's channels with the skip
    const channels = c.channels * Math.max(c.channelMults[l]!, c.channelMults[l + 1] ?? 0);
    const map = hw * channels * (c.kind === 'unet' ? 2 : 1);
    if (map > best.elements) best = { elements: map, field: `${c.kind}.${shapeKey}` };
    if (c.kind !== 'unet') continue;
    const attention =
      c.attentionResolutions.includes(H! / 2 ** l) || l === levels - 1 ? hw * hw : 0;
    if (attention > best.elements)
      best = {
        elements: attention,
        field: c.attentionResolutions.includes(H! / 2 ** l)
          ? 'unet.attentionResolutions'
          : 'unet.imageShape',
      };
  }
  return best;
}

function checkActivations(c: ModelConfig, options: BudgetOptions): void {
  const { elements, field } = largestActivation(c);
  checkActivationBudget(
    {
      elements,
      field,
      value: (c as unknown as Record<string, unknown>)[field.slice(field.indexOf('.') + 1)],
    },
    options,
  );
}

/**
 * Validates, then builds a network's parameters: the layout runs once through a shape-only store
 * (checking the budget with no allocation), then for real; a failure half-way frees what was made.
 */
function buildParams<C extends ModelConfig, P>(
  c: C,
  options: CreateOptions,
  layout: (store: ParamStore, c: C) => P,
): { store: ParamStore; parts: P } {
  if (options === null || typeof options !== 'object')
    throw new ModelConfigError('options', options, 'create options must be an object');
  if (options.seed !== undefined && !Number.isFinite(options.seed))
    throw new ModelConfigError(
      'seed',
      options.seed,
      `seed must be a finite number, got ${show(options.seed)}`,
    );
  if (options.initialize !== undefined && typeof options.initialize !== 'boolean')
    throw new ModelConfigError('initialize', options.initialize, 'initialize must be a boolean');
  checkActivations(c, options);
  layout(new ParamStore(undefined, { allocate: false, budget: paramBudget(c.kind, options) }), c);
  const store = new ParamStore(
    options.initialize === false ? undefined : Random.seed(options.seed ?? 0),
  );
  try {
    return { store, parts: layout(store, c) };
  } catch (e) {
    store.dispose();
    throw e;
  }
}

// ------------------------------------------------------------------ config validation

/** A value for an error message: JSON, cut to 60 characters. */
function show(v: unknown): string {
  let text: string;
  try {
    text = typeof v === 'number' || v === undefined ? String(v) : JSON.stringify(v);
  } catch {
    text = String(v);
  }
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

const KEYS: Record<ModelConfig['kind'], readonly string[]> = {
  mlp: ['kind', 'dim', 'width', 'depth', 'embedDim', 'numClasses', 'prediction', 'preconditioning'],
  unet: [
    'kind',
    'imageShape',
    'channels',
    'channelMults',
    'numResBlocks',
    'attentionResolutions',
    'groups',
    'embedDim',
    'numClasses',
    'prediction',
    'preconditioning',
  ],
  classifier: [
    'kind',
    'inputShape',
    'numClasses',
    'width',
    'depth',
    'channels',
    'channelMults',
    'groups',
    'embedDim',
  ],
  'image-classifier': ['kind', 'inputShape', 'numClasses', 'channels', 'hidden'],
};

/** Reads the fields of an untrusted object, each check naming `<kind>.<field>`. */
class Fields {
  constructor(
    private readonly o: Record<string, unknown>,
    private readonly kind: string,
  ) {}

  fail(field: string, value: unknown, what: string): never {
    throw new ModelConfigError(
      `${this.kind}.${field}`,
      value,
      `${this.kind}.${field} ${what}, got ${show(value)}`,
    );
  }

  /** An integer >= `min` (safe: below 2^53). */
  int(field: string, min: number, value: unknown = this.o[field]): number {
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min)
      this.fail(
        field,
        value,
        min === 1 ? 'must be a positive integer' : `must be an integer >= ${min}`,
      );
    return value;
  }

  /** An array of at most `maxLength` integers >= `min`. */
  ints(field: string, min: number, minLength: number, maxLength: number): number[] {
    const v = this.o[field];
    if (!Array.isArray(v) || v.length < minLength || v.length > maxLength)
      this.fail(
        field,
        v,
        `must be an array of ${minLength === maxLength ? minLength : `${minLength} to ${maxLength}`} integers`,
      );
    // an index loop, not map(): map() skips the holes of a sparse array
    const out: number[] = [];
    for (let i = 0; i < v.length; i++) out.push(this.int(`${field}[${i}]`, min, v[i]));
    return out;
  }
}

/** Checks the fields every denoiser shares: embedDim, numClasses, prediction, preconditioning. */
function denoiserFields(f: Fields, o: Record<string, unknown>, out: Record<string, unknown>): void {
  out.embedDim = f.int('embedDim', 2);
  if ((out.embedDim as number) % 2 !== 0) f.fail('embedDim', o.embedDim, 'must be even');
  out.numClasses = f.int('numClasses', 0);
  if (!PREDICTIONS.includes(o.prediction as Prediction))
    f.fail('prediction', o.prediction, `must be one of ${PREDICTIONS.join(', ')}`);
  out.prediction = o.prediction;
  const pre = o.preconditioning;
  if ('preconditioning' in o) out.preconditioning = pre ?? null;
  if (pre === undefined || pre === null) return;
  if (typeof pre !== 'object' || Array.isArray(pre))
    f.fail('preconditioning', pre, "must be null or { type: 'edm', sigmaData }");
  const p = pre as Record<string, unknown>;
  for (const k of Object.keys(p))
    if (k !== 'type' && k !== 'sigmaData')
      f.fail(`preconditioning.${k}`, p[k], 'is not a known key');
  if (p.type !== 'edm') f.fail('preconditioning.type', p.type, "must be 'edm'");
  if (typeof p.sigmaData !== 'number' || !(p.sigmaData > 0) || !Number.isFinite(p.sigmaData))
    f.fail('preconditioning.sigmaData', p.sigmaData, 'must be a finite number > 0');
  if (o.prediction !== 'x0')
    f.fail('prediction', o.prediction, "must be 'x0' with EDM preconditioning (it predicts x0)");
  out.preconditioning = { type: 'edm', sigmaData: p.sigmaData };
}

/** Checks a conv trunk: image shape, channels, multipliers, groups and their divisibility. */
function convFields(f: Fields, shapeKey: string, out: Record<string, unknown>): void {
  const shape = out[shapeKey] as number[];
  out.channels = f.int('channels', 1);
  out.channelMults = f.ints('channelMults', 1, 1, 8);
  out.groups = f.int('groups', 1);
  const channels = out.channels as number;
  const mults = out.channelMults as number[];
  const scale = 2 ** (mults.length - 1);
  if (shape[0]! % scale !== 0 || shape[1]! % scale !== 0)
    f.fail(
      shapeKey,
      shape,
      `must have height and width divisible by 2^(levels - 1) = ${scale} (channelMults has ${mults.length} levels)`,
    );
  mults.forEach((m, i) => {
    if (!Number.isSafeInteger(channels * m) || (channels * m) % (out.groups as number) !== 0)
      f.fail(
        'groups',
        out.groups,
        `must divide every channel count (channels x channelMults[${i}] = ${channels * m})`,
      );
  });
}

/**
 * Validates an untrusted network config (parsed from a file or a JSON, or built by a caller) before
 * anything is allocated, and returns a clean copy. Checks: a plain object whose `kind` is mlp, unet,
 * classifier or image-classifier; no key the kind does not know; every field's type and range (integers, not numeric
 * strings; image sides divisible by 2^(levels - 1); GroupNorm groups dividing every channel count; an
 * even embedding width; a known prediction; EDM preconditioning only with x0). Each failure is a
 * `ModelConfigError` whose `field` names the key. The size budget is checked separately, by
 * `modelParameterShapes` (and by every constructor).
 *
 * @example
 * const config = validateModelConfig(JSON.parse(text)); // throws ModelConfigError('mlp.width', ...)
 */
export function validateModelConfig(
  config: unknown,
  options: { kind?: ModelConfig['kind'] } = {},
): ModelConfig {
  if (config === null || typeof config !== 'object' || Array.isArray(config))
    throw new ModelConfigError(
      'config',
      config,
      `a model config must be an object, got ${show(config)}`,
    );
  const o = config as Record<string, unknown>;
  const kind = o.kind;
  if (typeof kind !== 'string' || !Object.hasOwn(KEYS, kind))
    throw new ModelConfigError(
      'kind',
      kind,
      `unknown model kind ${show(kind)}; expected mlp, unet, classifier or image-classifier`,
    );
  if (options.kind !== undefined && kind !== options.kind)
    throw new ModelConfigError(
      'kind',
      kind,
      `expected a ${options.kind} config, got kind ${show(kind)}`,
    );
  const known = KEYS[kind as ModelConfig['kind']];
  for (const k of Object.keys(o))
    if (!known.includes(k))
      throw new ModelConfigError(
        `${kind}.${k}`,
        o[k],
        `${kind}.${k} is not a ${kind} config key (known: ${known.join(', ')})`,
      );
  const f: Fields = new Fields(o, kind);
  const out: Record<string, unknown> = { kind };
  if (kind === 'mlp') {
    out.dim = f.int('dim', 1);
    out.width = f.int('width', 1);
    out.depth = f.int('depth', 0);
    denoiserFields(f, o, out);
  } else if (kind === 'image-classifier') {
    out.inputShape = f.ints('inputShape', 1, 3, 3);
    out.numClasses = f.int('numClasses', 1);
    out.channels = f.ints('channels', 1, 1, 16);
    out.hidden = f.int('hidden', 1);
  } else if (kind === 'unet') {
    out.imageShape = f.ints('imageShape', 1, 3, 3);
    convFields(f, 'imageShape', out);
    out.numResBlocks = f.int('numResBlocks', 1);
    out.attentionResolutions = f.ints('attentionResolutions', 1, 0, 64);
    denoiserFields(f, o, out);
  } else {
    const shape = o.inputShape;
    if (!Array.isArray(shape) || (shape.length !== 1 && shape.length !== 3))
      f.fail('inputShape', shape, 'must be [d] or [height, width, channels]');
    out.inputShape = f.ints('inputShape', 1, shape.length, shape.length);
    out.numClasses = f.int('numClasses', 1);
    out.width = f.int('width', 1);
    out.depth = f.int('depth', 0);
    out.embedDim = f.int('embedDim', 2);
    if ((out.embedDim as number) % 2 !== 0) f.fail('embedDim', o.embedDim, 'must be even');
    if (shape.length === 3) convFields(f, 'inputShape', out);
    else {
      out.channels = f.int('channels', 1);
      out.channelMults = f.ints('channelMults', 1, 1, 8);
      out.groups = f.int('groups', 1);
    }
  }
  return out as unknown as ModelConfig;
}

const LAYOUTS: Record<ModelConfig['kind'], (store: ParamStore, c: never) => unknown> = {
  mlp: (store, c: MlpConfig) => mlpLayout(store, c),
  unet: (store, c: UNetConfig) => unetLayout(store, c),
  classifier: (store, c: ClassifierConfig) => classifierLayout(store, c),
  'image-classifier': (store, c: ImageClassifierConfig) => imageClassifierLayout(store, c),
};

/**
 * The parameters an untrusted config implies, as [name, shape] in the order the network creates
 * them, computed without allocating anything: validates the config (`validateModelConfig`), checks
 * that one example's largest activation fits `maxActivationBytes` (default 1 GiB), then runs the
 * network's layout through a shape-only store that stops at the budget (`maxParams`, default
 * `DEFAULT_MAX_PARAMS`). `loadModel` compares a weights file's tensor list with this before it builds.
 *
 * @example
 * const shapes = modelParameterShapes(mlpConfig({ dim: 2, depth: 1 }));
 * shapes[0]; // ['embed.fc1.weight', [64, 64]]
 */
export function modelParameterShapes(
  config: unknown,
  options: { maxParams?: number; maxActivationBytes?: number } = {},
): [string, number[]][] {
  const c = validateModelConfig(config);
  checkActivations(c, options);
  const store = new ParamStore(undefined, {
    allocate: false,
    budget: paramBudget(c.kind, options),
  });
  (LAYOUTS[c.kind] as (store: ParamStore, c: ModelConfig) => unknown)(store, c);
  return store.shapeList();
}

/**
 * What every network here has: its JSON config, its ordered trainable parameters, and `dispose()`.
 */
export abstract class Model {
  abstract readonly config: ModelConfig;
  /** Trainable parameters, in a fixed order (the order of `namedParams`). */
  readonly params: tf.Variable[];
  private readonly named: [string, tf.Variable][];

  protected constructor(store: ParamStore) {
    this.named = store.entries();
    this.params = this.named.map(([, v]) => v);
  }

  /** [name, variable] pairs; names are what the safetensors file stores. */
  namedParams(): [string, tf.Variable][] {
    return [...this.named];
  }

  /** Number of scalar parameters. */
  get numParams(): number {
    return this.params.reduce((n, v) => n + v.size, 0);
  }

  /** Frees every parameter. */
  dispose(): void {
    for (const v of this.params) v.dispose();
  }
}

/** A network that is a `Denoiser` (via `predict`) and a raw `NoiseConditionalNetwork` (via `apply`). */
export abstract class NetworkDenoiser extends Model implements Denoiser, NoiseConditionalNetwork {
  abstract override readonly config: MlpConfig | UNetConfig;

  /** The declared prediction: x0 under EDM preconditioning, else `config.prediction`. */
  get prediction(): Prediction {
    return this.config.preconditioning ? 'x0' : this.config.prediction;
  }

  get numClasses(): number | undefined {
    return this.config.numClasses > 0 ? this.config.numClasses : undefined;
  }

  /** The label meaning "no class" (classifier-free guidance's null class): `numClasses`. */
  get nullLabel(): number {
    return this.config.numClasses;
  }

  abstract get shape(): readonly number[];

  /** The raw network F(x; noise, cond), `noise` per example [batch], or [1] shared by the batch. */
  apply(x: tf.Tensor, noise: tf.Tensor, cond?: Conditioning): tf.Tensor {
    return tf.tidy(() => {
      this.checkInput(x);
      return this.forward(x, noise, cond?.labels);
    });
  }

  /**
   * The prediction at noise level (alpha, sigma): F(x; logSNR) or, with EDM preconditioning,
   * c_skip x + c_out F(c_in x; c_noise).
   */
  predict(x: tf.Tensor, level: NoiseLevel<Scalar>, cond?: Conditioning): tf.Tensor {
    const pre = this.config.preconditioning;
    if (pre) return edmPreconditioned(this, { sigmaData: pre.sigmaData }).predict(x, level, cond);
    return tf.tidy(() => {
      this.checkInput(x);
      return this.forward(x, noiseInput(level, x.shape[0]!), cond?.labels);
    });
  }

  protected abstract forward(
    x: tf.Tensor,
    noise: tf.Tensor,
    labels: tf.Tensor | undefined,
  ): tf.Tensor;

  protected checkInput(x: tf.Tensor): void {
    const shape = this.shape;
    if (x.rank !== shape.length + 1 || shape.some((d, i) => x.shape[i + 1] !== d)) {
      throw new ModelError(
        `${this.config.kind} expects x of shape [batch, ${shape.join(', ')}], got [${x.shape.join(', ')}]`,
      );
    }
  }
}

/**
 * The logSNR noise input of a level: [1] when alpha and sigma are numbers or one-element tensors
 * (one level for the whole batch, as when sampling), so the noise embedding runs once; [batch]
 * for per-example levels (training).
 */
function noiseInput(level: NoiseLevel<Scalar>, batch: number): tf.Tensor {
  const shared = (v: Scalar) => typeof v === 'number' || v.size === 1;
  return logSNRTensor(level, shared(level.alpha) && shared(level.sigma) ? 1 : batch);
}

/** The noise embedding MLP, plus the class embedding table when conditional. */
interface Embedding {
  fc1: Dense;
  fc2: Dense;
  classes: tf.Variable | null;
  dim: number;
}

function embeddingParams(store: ParamStore, embedDim: number, numClasses: number): Embedding {
  return {
    fc1: store.dense('embed.fc1', embedDim, embedDim),
    fc2: store.dense('embed.fc2', embedDim, embedDim),
    classes:
      numClasses > 0 ? store.add('embed.classes', [numClasses + 1, embedDim], { std: 1 }) : null,
    dim: embedDim,
  };
}

/**
 * emb = fc2(silu(fc1(features(noise)))) + classEmbedding(labels): [batch, embedDim], or [1, embedDim]
 * when the noise input is shared (one value) and there are no class embeddings. A shared noise input
 * (sampling: one level for the whole batch) runs the noise MLP on one row, broadcast afterwards.
 */
function embed(
  e: Embedding,
  noise: tf.Tensor,
  labels: tf.Tensor | undefined,
  batch: number,
  kind: string,
): tf.Tensor {
  if (noise.size !== batch && noise.size !== 1)
    throw new ModelError(
      `${kind}: noise input must have one value per example (${batch}) or one shared value, got ${noise.size}`,
    );
  let h = dense(silu(dense(noiseFeatures(noise, e.dim), e.fc1)), e.fc2);
  if (e.classes) h = tf.add(h, classEmbedding(e.classes, labels, batch));
  else if (labels !== undefined)
    throw new ModelError(`${kind} is unconditional (numClasses 0) but labels were given`);
  return h;
}

// ------------------------------------------------------------------ MLP

interface MlpBlock {
  fc1: Dense;
  emb: Dense;
  fc2: Dense;
}

interface MlpTrunk {
  input: Dense;
  blocks: MlpBlock[];
}

function mlpTrunkParams(
  store: ParamStore,
  inDim: number,
  width: number,
  depth: number,
  embedDim: number,
): MlpTrunk {
  const input = store.dense('in', inDim, width);
  const blocks: MlpBlock[] = [];
  for (let i = 0; i < depth; i++) {
    blocks.push({
      fc1: store.dense(`blocks.${i}.fc1`, width, width),
      emb: store.dense(`blocks.${i}.emb`, embedDim, width),
      fc2: store.dense(`blocks.${i}.fc2`, width, width, 0.5),
    });
  }
  return { input, blocks };
}

/** h = in(x); h += fc2(silu(fc1(silu(h)) + emb(silu(e)))) per block. */
function mlpTrunk(t: MlpTrunk, x: tf.Tensor, emb: tf.Tensor): tf.Tensor {
  let h = dense(x, t.input);
  const e = silu(emb);
  for (const b of t.blocks)
    h = tf.add(h, dense(silu(tf.add(dense(silu(h), b.fc1), dense(e, b.emb))), b.fc2));
  return h;
}

/** Default MLP config for d-dimensional data. */
export function mlpConfig(config: Partial<MlpConfig> & { dim: number }): MlpConfig {
  return {
    kind: 'mlp',
    width: 128,
    depth: 3,
    embedDim: 64,
    numClasses: 0,
    prediction: 'epsilon',
    preconditioning: null,
    ...config,
  };
}

function mlpLayout(store: ParamStore, c: MlpConfig) {
  return {
    e: embeddingParams(store, c.embedDim, c.numClasses),
    trunk: mlpTrunkParams(store, c.dim, c.width, c.depth, c.embedDim),
    out: store.dense('out', c.width, c.dim, 0.1),
  };
}

/**
 * A residual MLP denoiser for low-dimensional data: x [batch, d] to a prediction [batch, d].
 *
 * @example
 * const net = new Mlp(mlpConfig({ dim: 2, numClasses: 3 }), { seed: 1 });
 * const eps = net.predict(x, { alpha: 0.8, sigma: 0.6 }, { labels }); // [batch, 2]
 * net.dispose();
 */
export class Mlp extends NetworkDenoiser {
  readonly config: MlpConfig;
  private readonly e: Embedding;
  private readonly trunk: MlpTrunk;
  private readonly out: Dense;

  constructor(config: MlpConfig, options: CreateOptions = {}) {
    const c = validateModelConfig(config, { kind: 'mlp' }) as MlpConfig;
    const { store, parts } = buildParams(c, options, mlpLayout);
    super(store);
    this.config = c;
    this.e = parts.e;
    this.trunk = parts.trunk;
    this.out = parts.out;
  }

  get shape(): readonly number[] {
    return [this.config.dim];
  }

  protected forward(x: tf.Tensor, noise: tf.Tensor, labels: tf.Tensor | undefined): tf.Tensor {
    const emb = embed(this.e, noise, labels, x.shape[0]!, 'mlp');
    return dense(silu(mlpTrunk(this.trunk, x, emb)), this.out);
  }
}

// ------------------------------------------------------------------ U-Net

interface ResBlock {
  norm1: Norm;
  conv1: Conv;
  emb: Dense;
  norm2: Norm;
  conv2: Conv;
  skip: Dense | null;
}

function resBlockParams(
  store: ParamStore,
  name: string,
  inCh: number,
  outCh: number,
  embedDim: number,
): ResBlock {
  return {
    norm1: store.norm(`${name}.norm1`, inCh),
    conv1: store.conv(`${name}.conv1`, 3, inCh, outCh),
    emb: store.dense(`${name}.emb`, embedDim, outCh),
    norm2: store.norm(`${name}.norm2`, outCh),
    conv2: store.conv(`${name}.conv2`, 3, outCh, outCh, 0.2),
    skip: inCh === outCh ? null : store.dense(`${name}.skip`, inCh, outCh),
  };
}

/** h = conv1(silu(gn(x))) + emb(silu(e)); h = conv2(silu(gn(h))); return skip(x) + h (DDPM's ResnetBlock). */
function resBlock(p: ResBlock, x: tf.Tensor, e: tf.Tensor, groups: number): tf.Tensor {
  const outCh = p.conv1.w.shape[3]!;
  let h = conv(groupNorm(x, p.norm1, groups, 'silu'), p.conv1);
  h = tf.add(h, tf.reshape(dense(e, p.emb), [-1, 1, 1, outCh]));
  h = conv(groupNorm(h, p.norm2, groups, 'silu'), p.conv2);
  return tf.add(p.skip ? dense(x, p.skip) : x, h);
}

interface Stage {
  res: ResBlock;
  attn: AttentionParams | null;
}

/** Default U-Net config (small: fits MNIST training on 2 CPU cores). */
export function unetConfig(config: Partial<UNetConfig> = {}): UNetConfig {
  return {
    kind: 'unet',
    imageShape: [28, 28, 1],
    channels: 32,
    channelMults: [1, 2],
    numResBlocks: 1,
    attentionResolutions: [14],
    groups: 8,
    embedDim: 128,
    numClasses: 0,
    prediction: 'epsilon',
    preconditioning: null,
    ...config,
  };
}

function unetLayout(store: ParamStore, c: UNetConfig) {
  const e = embeddingParams(store, c.embedDim, c.numClasses);
  const [H, , C] = c.imageShape;
  const convIn = store.conv('conv_in', 3, C, c.channels);
  const levels = c.channelMults.length;
  const down: { stages: Stage[]; downsample: Conv | null }[] = [];
  const skipChannels: number[] = [c.channels];
  let ch = c.channels;
  let res = H;
  for (let l = 0; l < levels; l++) {
    const out = c.channels * c.channelMults[l]!;
    const stages: Stage[] = [];
    for (let r = 0; r < c.numResBlocks; r++) {
      stages.push({
        res: resBlockParams(store, `down.${l}.res.${r}`, ch, out, c.embedDim),
        attn: c.attentionResolutions.includes(res)
          ? attentionParams(store, `down.${l}.attn.${r}`, out)
          : null,
      });
      ch = out;
      skipChannels.push(ch);
    }
    let downsample: Conv | null = null;
    if (l < levels - 1) {
      downsample = store.conv(`down.${l}.downsample`, 3, ch, ch);
      skipChannels.push(ch);
      res /= 2;
    }
    down.push({ stages, downsample });
  }
  const mid = {
    res1: resBlockParams(store, 'mid.res1', ch, ch, c.embedDim),
    attn: attentionParams(store, 'mid.attn', ch),
    res2: resBlockParams(store, 'mid.res2', ch, ch, c.embedDim),
  };
  const up: { stages: Stage[]; upsample: Conv | null }[] = [];
  for (let l = levels - 1; l >= 0; l--) {
    const out = c.channels * c.channelMults[l]!;
    const stages: Stage[] = [];
    for (let r = 0; r < c.numResBlocks + 1; r++) {
      const skip = skipChannels.pop()!;
      stages.push({
        res: resBlockParams(store, `up.${l}.res.${r}`, ch + skip, out, c.embedDim),
        attn: c.attentionResolutions.includes(res)
          ? attentionParams(store, `up.${l}.attn.${r}`, out)
          : null,
      });
      ch = out;
    }
    let upsample: Conv | null = null;
    if (l > 0) {
      upsample = store.conv(`up.${l}.upsample`, 3, ch, ch);
      res *= 2;
    }
    up.push({ stages, upsample });
  }
  const normOut = store.norm('norm_out', ch);
  const convOut = store.conv('conv_out', 3, ch, C, 0.1);
  return { e, convIn, down, mid, up, normOut, convOut };
}

/**
 * A U-Net denoiser for images x [batch, height, width, channels] (NHWC).
 *
 * @example
 * const net = new UNet(unetConfig({ numClasses: 10 }), { seed: 0 });
 * const eps = net.predict(images, { alpha: 0.9, sigma: 0.44 }, { labels }); // [batch, 28, 28, 1]
 */
export class UNet extends NetworkDenoiser {
  readonly config: UNetConfig;
  private readonly e: Embedding;
  private readonly convIn: Conv;
  private readonly down: { stages: Stage[]; downsample: Conv | null }[];
  private readonly mid: { res1: ResBlock; attn: AttentionParams; res2: ResBlock };
  private readonly up: { stages: Stage[]; upsample: Conv | null }[];
  private readonly normOut: Norm;
  private readonly convOut: Conv;

  constructor(config: UNetConfig, options: CreateOptions = {}) {
    const c = validateModelConfig(config, { kind: 'unet' }) as UNetConfig;
    const { store, parts } = buildParams(c, options, unetLayout);
    super(store);
    this.config = c;
    this.e = parts.e;
    this.convIn = parts.convIn;
    this.down = parts.down;
    this.mid = parts.mid;
    this.up = parts.up;
    this.normOut = parts.normOut;
    this.convOut = parts.convOut;
  }

  get shape(): readonly number[] {
    return this.config.imageShape;
  }

  protected forward(x: tf.Tensor, noise: tf.Tensor, labels: tf.Tensor | undefined): tf.Tensor {
    const g = this.config.groups;
    const e = silu(embed(this.e, noise, labels, x.shape[0]!, 'unet'));
    let h = conv(x, this.convIn);
    const skips: tf.Tensor[] = [h];
    for (const level of this.down) {
      for (const s of level.stages) {
        h = resBlock(s.res, h, e, g);
        if (s.attn) h = selfAttention(h, s.attn, g);
        skips.push(h);
      }
      if (level.downsample) {
        h = conv(h, level.downsample, 2);
        skips.push(h);
      }
    }
    h = resBlock(this.mid.res1, h, e, g);
    h = selfAttention(h, this.mid.attn, g);
    h = resBlock(this.mid.res2, h, e, g);
    for (const level of this.up) {
      for (const s of level.stages) {
        h = resBlock(s.res, tf.concat([h, skips.pop()!], 3), e, g);
        if (s.attn) h = selfAttention(h, s.attn, g);
      }
      if (level.upsample) h = conv(upsample2x(h), level.upsample);
    }
    return conv(groupNorm(h, this.normOut, g, 'silu'), this.convOut);
  }
}

// ------------------------------------------------------------------ classifier

/** Default classifier config for inputs of `inputShape`. */
export function classifierConfig(
  config: Partial<ClassifierConfig> & { inputShape: number[]; numClasses: number },
): ClassifierConfig {
  return {
    kind: 'classifier',
    width: 128,
    depth: 2,
    channels: 16,
    channelMults: [1, 2],
    groups: 8,
    embedDim: 64,
    ...config,
  };
}

function classifierLayout(store: ParamStore, c: ClassifierConfig) {
  const e = embeddingParams(store, c.embedDim, 0);
  let trunk: MlpTrunk | null = null;
  let convIn: Conv | null = null;
  const levels: { res: ResBlock; downsample: Conv | null }[] = [];
  let normOut: Norm | null = null;
  let head: Dense;
  if (c.inputShape.length === 1) {
    trunk = mlpTrunkParams(store, c.inputShape[0]!, c.width, c.depth, c.embedDim);
    head = store.dense('head', c.width, c.numClasses, 0.1);
  } else {
    convIn = store.conv('conv_in', 3, c.inputShape[2]!, c.channels);
    let ch = c.channels;
    c.channelMults.forEach((m, l) => {
      const out = c.channels * m;
      levels.push({
        res: resBlockParams(store, `down.${l}.res`, ch, out, c.embedDim),
        downsample:
          l < c.channelMults.length - 1 ? store.conv(`down.${l}.downsample`, 3, out, out) : null,
      });
      ch = out;
    });
    normOut = store.norm('norm_out', ch);
    head = store.dense('head', ch, c.numClasses, 0.1);
  }
  return { e, trunk, convIn, levels, normOut, head };
}

/**
 * A noise-conditional classifier p_phi(y | x_t, logSNR): logits [batch, numClasses], differentiable
 * in x (for classifier guidance, grad_x log p_phi(y | x_t)).
 *
 * @example
 * const clf = new NoiseConditionalClassifier(classifierConfig({ inputShape: [2], numClasses: 3 }));
 * const logp = clf.classLogPosterior(x, { alpha: 0.8, sigma: 0.6 }); // [batch, 3]
 */
export class NoiseConditionalClassifier extends Model {
  readonly config: ClassifierConfig;
  private readonly e: Embedding;
  private readonly trunk: MlpTrunk | null;
  private readonly convIn: Conv | null;
  private readonly levels: { res: ResBlock; downsample: Conv | null }[];
  private readonly normOut: Norm | null;
  private readonly head: Dense;

  constructor(config: ClassifierConfig, options: CreateOptions = {}) {
    const c = validateModelConfig(config, { kind: 'classifier' }) as ClassifierConfig;
    const { store, parts } = buildParams(c, options, classifierLayout);
    super(store);
    this.config = c;
    this.e = parts.e;
    this.trunk = parts.trunk;
    this.convIn = parts.convIn;
    this.levels = parts.levels;
    this.normOut = parts.normOut;
    this.head = parts.head;
  }

  get numClasses(): number {
    return this.config.numClasses;
  }

  /** Unnormalised class scores at noise level (alpha, sigma): [batch, numClasses]. */
  logits(x: tf.Tensor, level: NoiseLevel<Scalar>): tf.Tensor {
    return tf.tidy(() => {
      const shape = this.config.inputShape;
      if (x.rank !== shape.length + 1 || shape.some((d, i) => x.shape[i + 1] !== d)) {
        throw new ModelError(
          `classifier expects x of shape [batch, ${shape.join(', ')}], got [${x.shape.join(', ')}]`,
        );
      }
      const batch = x.shape[0]!;
      const emb = embed(this.e, noiseInput(level, batch), undefined, batch, 'classifier');
      if (this.trunk) return dense(silu(mlpTrunk(this.trunk, x, emb)), this.head);
      const g = this.config.groups;
      const e = silu(emb);
      let h = conv(x, this.convIn!);
      for (const l of this.levels) {
        h = resBlock(l.res, h, e, g);
        if (l.downsample) h = conv(h, l.downsample, 2);
      }
      h = tf.mean(groupNorm(h, this.normOut!, g, 'silu'), [1, 2]);
      return dense(h, this.head);
    });
  }

  /** log p_phi(y | x_t) = logSoftmax(logits): [batch, numClasses] (the oracle's `classLogPosterior` API). */
  classLogPosterior(x: tf.Tensor, level: NoiseLevel<Scalar>): tf.Tensor {
    return tf.tidy(() => tf.logSoftmax(this.logits(x, level)));
  }
}

/**
 * Default `ImageClassifier` config: 16 / 32 / 32 channels (28 -> 14 -> 7 for MNIST), hidden 128.
 *
 * @example
 * const config = imageClassifierConfig({ inputShape: [28, 28, 1], numClasses: 10 });
 */
export function imageClassifierConfig(
  config: Partial<ImageClassifierConfig> & {
    inputShape: [number, number, number];
    numClasses: number;
  },
): ImageClassifierConfig {
  return { kind: 'image-classifier', channels: [16, 32, 32], hidden: 128, ...config };
}

function imageClassifierLayout(store: ParamStore, c: ImageClassifierConfig) {
  let [h, w, inCh] = c.inputShape;
  const convs = c.channels.map((out, i) => {
    const p = store.conv(`conv.${i}`, 3, inCh, out);
    inCh = out;
    if (i > 0) {
      h = Math.ceil(h / 2);
      w = Math.ceil(w / 2);
    }
    return p;
  });
  const fc = store.dense('fc', h * w * inCh, c.hidden);
  const head = store.dense('head', c.hidden, c.numClasses, 0.1);
  return { convs, fc, head };
}

/**
 * A plain convolutional classifier of clean images (LeCun et al. 1998's LeNet shape, with strided
 * 3x3 convs in place of pooling): h = ReLU(conv_k(h)) for each entry of `channels` (stride 1, then
 * 2), flatten, `features` = ReLU(dense(h)) [batch, hidden], logits = dense(features). The sample
 * judge of MNIST: its class decides whether a sample reads as the digit asked for, and its
 * penultimate `features` are the space of the Fréchet distance (the MNIST stand-in for FID, Heusel
 * et al. 2017).
 *
 * @example
 * const clf = new ImageClassifier(imageClassifierConfig({ inputShape: [28, 28, 1], numClasses: 10 }));
 * const logits = clf.logits(images); // [batch, 10]
 * const feats = clf.features(images); // [batch, 128]
 */
export class ImageClassifier extends Model {
  readonly config: ImageClassifierConfig;
  private readonly convs: Conv[];
  private readonly fc: Dense;
  private readonly head: Dense;

  constructor(config: ImageClassifierConfig, options: CreateOptions = {}) {
    const c = validateModelConfig(config, { kind: 'image-classifier' }) as ImageClassifierConfig;
    const { store, parts } = buildParams(c, options, imageClassifierLayout);
    super(store);
    this.config = c;
    this.convs = parts.convs;
    this.fc = parts.fc;
    this.head = parts.head;
  }

  get numClasses(): number {
    return this.config.numClasses;
  }

  /** The penultimate layer: ReLU(dense(flattened conv features)), [batch, hidden]. */
  features(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const shape = this.config.inputShape;
      if (x.rank !== 4 || shape.some((d, i) => x.shape[i + 1] !== d)) {
        throw new ModelError(
          `image-classifier expects x of shape [batch, ${shape.join(', ')}], got [${x.shape.join(', ')}]`,
        );
      }
      let h = x;
      this.convs.forEach((p, i) => {
        h = tf.relu(conv(h, p, i === 0 ? 1 : 2));
      });
      return tf.relu(dense(tf.reshape(h, [x.shape[0]!, -1]), this.fc));
    });
  }

  /** Unnormalised class scores: [batch, numClasses]. */
  logits(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => dense(this.features(x), this.head));
  }

  /** Logits from `features` already computed (one forward pass for both). */
  logitsOfFeatures(features: tf.Tensor): tf.Tensor {
    return tf.tidy(() => dense(features, this.head));
  }
}

/**
 * Builds the network a config describes (`kind`: mlp, unet, classifier or image-classifier).
 *
 * @example
 * const net = createModel(mlpConfig({ dim: 2 }), { seed: 3 });
 */
export function createModel(
  config: ModelConfig,
  options: CreateOptions = {},
): Mlp | UNet | NoiseConditionalClassifier | ImageClassifier {
  switch ((config as { kind?: unknown } | null | undefined)?.kind) {
    case 'mlp':
      return new Mlp(config as MlpConfig, options);
    case 'unet':
      return new UNet(config as UNetConfig, options);
    case 'classifier':
      return new NoiseConditionalClassifier(config as ClassifierConfig, options);
    case 'image-classifier':
      return new ImageClassifier(config as ImageClassifierConfig, options);
    default:
      validateModelConfig(config); // throws the typed error naming what is wrong
      throw new ModelError('unreachable: a valid config has a known kind');
  }
}
