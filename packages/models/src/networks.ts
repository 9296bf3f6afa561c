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
import { assertPrediction } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import type { Conditioning, Denoiser } from './denoiser.js';
import { ModelError } from './errors.js';
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

export type ModelConfig = MlpConfig | UNetConfig | ClassifierConfig;

/** Options when creating a network. */
export interface CreateOptions {
  /** Seed of the initial weights (default 0). */
  seed?: number;
  /** Draw random initial weights (default true); false leaves zeros, e.g. before loading weights. */
  initialize?: boolean;
}

function storeFor(options: CreateOptions): ParamStore {
  return new ParamStore(options.initialize === false ? undefined : Random.seed(options.seed ?? 0));
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

function checkCommon(c: { embedDim: number; numClasses: number }, kind: string): void {
  positiveInt(c.embedDim, `${kind}.embedDim`);
  if (c.embedDim % 2 !== 0)
    throw new ModelError(`${kind}.embedDim must be even, got ${c.embedDim}`);
  if (!Number.isInteger(c.numClasses) || c.numClasses < 0)
    throw new ModelError(`${kind}.numClasses must be an integer >= 0, got ${c.numClasses}`);
}

function checkDenoiserConfig(c: MlpConfig | UNetConfig): void {
  assertPrediction(c.prediction);
  if (c.preconditioning) {
    if (c.preconditioning.type !== 'edm')
      throw new ModelError(`unknown preconditioning '${String(c.preconditioning.type)}'`);
    if (!(c.preconditioning.sigmaData > 0))
      throw new ModelError('preconditioning.sigmaData must be > 0');
    if (c.prediction !== 'x0')
      throw new ModelError(
        `EDM preconditioning predicts x0; set prediction 'x0' (got '${c.prediction}')`,
      );
  }
}

function positiveInt(v: unknown, name: string): void {
  if (!Number.isInteger(v) || (v as number) <= 0)
    throw new ModelError(`${name} must be a positive integer, got ${String(v)}`);
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
    const c = { ...config };
    positiveInt(c.dim, 'mlp.dim');
    positiveInt(c.width, 'mlp.width');
    if (!Number.isInteger(c.depth) || c.depth < 0)
      throw new ModelError(`mlp.depth must be an integer >= 0, got ${c.depth}`);
    checkCommon(c, 'mlp');
    checkDenoiserConfig(c);
    const store = storeFor(options);
    const e = embeddingParams(store, c.embedDim, c.numClasses);
    const trunk = mlpTrunkParams(store, c.dim, c.width, c.depth, c.embedDim);
    const out = store.dense('out', c.width, c.dim, 0.1);
    super(store);
    this.config = c;
    this.e = e;
    this.trunk = trunk;
    this.out = out;
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

function checkConvConfig(
  kind: string,
  shape: readonly number[],
  channels: number,
  mults: number[],
  groups: number,
): void {
  if (shape.length !== 3)
    throw new ModelError(
      `${kind} needs an image shape [height, width, channels], got [${shape.join(', ')}]`,
    );
  for (const d of shape) positiveInt(d, `${kind} image dimension`);
  positiveInt(channels, `${kind}.channels`);
  positiveInt(groups, `${kind}.groups`);
  if (mults.length === 0) throw new ModelError(`${kind}.channelMults needs at least one level`);
  const scale = 2 ** (mults.length - 1);
  if (shape[0]! % scale !== 0 || shape[1]! % scale !== 0) {
    throw new ModelError(
      `${kind}: image ${shape[0]}x${shape[1]} must be divisible by 2^(levels - 1) = ${scale}`,
    );
  }
  for (const m of mults) {
    positiveInt(m, `${kind}.channelMults entry`);
    if ((channels * m) % groups !== 0)
      throw new ModelError(
        `${kind}: groups (${groups}) must divide every channel count (${channels * m})`,
      );
  }
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
    const c: UNetConfig = {
      ...config,
      imageShape: [...config.imageShape],
      channelMults: [...config.channelMults],
      attentionResolutions: [...config.attentionResolutions],
    };
    checkConvConfig('unet', c.imageShape, c.channels, c.channelMults, c.groups);
    if (!Number.isInteger(c.numResBlocks) || c.numResBlocks < 1)
      throw new ModelError(`unet.numResBlocks must be >= 1, got ${c.numResBlocks}`);
    checkCommon(c, 'unet');
    checkDenoiserConfig(c);
    const store = storeFor(options);
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
    super(store);
    this.config = c;
    this.e = e;
    this.convIn = convIn;
    this.down = down;
    this.mid = mid;
    this.up = up;
    this.normOut = normOut;
    this.convOut = convOut;
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
    const c: ClassifierConfig = {
      ...config,
      inputShape: [...config.inputShape],
      channelMults: [...config.channelMults],
    };
    positiveInt(c.numClasses, 'classifier.numClasses');
    checkCommon({ embedDim: c.embedDim, numClasses: 0 }, 'classifier');
    const store = storeFor(options);
    const e = embeddingParams(store, c.embedDim, 0);
    let trunk: MlpTrunk | null = null;
    let convIn: Conv | null = null;
    const levels: { res: ResBlock; downsample: Conv | null }[] = [];
    let normOut: Norm | null = null;
    let head: Dense;
    if (c.inputShape.length === 1) {
      positiveInt(c.inputShape[0], 'classifier input dimension');
      positiveInt(c.width, 'classifier.width');
      trunk = mlpTrunkParams(store, c.inputShape[0]!, c.width, c.depth, c.embedDim);
      head = store.dense('head', c.width, c.numClasses, 0.1);
    } else {
      checkConvConfig('classifier', c.inputShape, c.channels, c.channelMults, c.groups);
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
    super(store);
    this.config = c;
    this.e = e;
    this.trunk = trunk;
    this.convIn = convIn;
    this.levels = levels;
    this.normOut = normOut;
    this.head = head;
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
 * Builds the network a config describes (`kind`: mlp, unet or classifier).
 *
 * @example
 * const net = createModel(mlpConfig({ dim: 2 }), { seed: 3 });
 */
export function createModel(
  config: ModelConfig,
  options: CreateOptions = {},
): Mlp | UNet | NoiseConditionalClassifier {
  switch (config?.kind) {
    case 'mlp':
      return new Mlp(config, options);
    case 'unet':
      return new UNet(config, options);
    case 'classifier':
      return new NoiseConditionalClassifier(config, options);
    default:
      throw new ModelError(
        `unknown model kind '${String((config as { kind?: unknown })?.kind)}'; expected mlp, unet or classifier`,
      );
  }
}
