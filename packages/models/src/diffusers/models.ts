/**
 * diffusers' `UNet2DModel`, `UNet2DConditionModel` and `AutoencoderKL`, built from the shared module
 * tree of `./modules.ts` with diffusers' state-dict keys. Inputs and outputs are NCHW like diffusers;
 * inside, tensors are NHWC. Every forward pass runs in one `tf.tidy` and returns a new tensor the
 * caller owns.
 *
 * References: diffusers `models/unets/unet_2d.py`, `unets/unet_2d_condition.py`,
 * `autoencoders/autoencoder_kl.py`, `autoencoders/vae.py` (commit 58eb52c0).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ParamBudget } from '../budget.js';
import { ModelError } from '../errors.js';
import { activation } from '../nn.js';
import type {
  AutoencoderKLConfig,
  DiffusersClassName,
  UNet2DConditionConfig,
  UNet2DConfig,
} from './config.js';
import {
  applyGroupNorm,
  type Conv2d,
  conv2d,
  DownBlock,
  GaussianFourierProjection,
  type GroupNorm,
  halves,
  type Linear,
  linear,
  MidBlock,
  Registry,
  readSlot,
  Scope,
  SkipDownBlock,
  SkipUpBlock,
  type Slot,
  TimestepEmbedding,
  timestepEmbedding,
  UpBlock,
} from './modules.js';

/** Extra conditioning of SDXL-style UNets (`addition_embed_type: "text_time"`). */
export interface AddedCondKwargs {
  /** Pooled text embeddings, [batch, dim]. */
  text_embeds?: tf.Tensor;
  /** Micro-conditioning ids (original size, crop, target size), [batch, n]. */
  time_ids?: tf.Tensor;
}

/** The arguments of a UNet forward pass (diffusers' `forward` keywords, camelCased). */
export interface UNetForwardInputs {
  /** Noisy sample, NCHW. */
  sample: tf.Tensor;
  /**
   * The timestep: a number (as a Python scalar: `UNet2DModel` makes it an int64, truncating a
   * fraction as diffusers does; `UNet2DConditionModel` keeps the fraction) or a 0-D / 1-D tensor of
   * length 1 or batch (int or float), as diffusers accepts.
   */
  timestep: number | tf.Tensor;
  /** Class labels: int [batch] for `num_class_embeds`, or float features for the other class embeddings. */
  classLabels?: tf.Tensor | number[];
  /** Cross-attention context, [batch, tokens, cross_attention_dim] (UNet2DConditionModel). */
  encoderHiddenStates?: tf.Tensor;
  /** `text_embeds` and `time_ids` for `addition_embed_type: "text_time"`. */
  addedCondKwargs?: AddedCondKwargs;
  /** `timestep_cond` for `time_cond_proj_dim` (guidance-distilled UNets). */
  timestepCond?: tf.Tensor;
}

/** What every loaded diffusers model has. */
abstract class DiffusersModelBase {
  abstract readonly className: DiffusersClassName;
  /** Every parameter under its diffusers state-dict key. */
  readonly registry: Registry;
  protected readonly root: Scope;

  constructor(budget?: ParamBudget) {
    this.registry = new Registry(budget);
    this.root = new Scope(this.registry);
  }

  /** Number of scalar parameters (PyTorch's `sum(p.numel() for p in model.parameters())`). */
  get numParameters(): number {
    return this.registry.numParameters;
  }

  /** Frees every weight. */
  dispose(): void {
    this.registry.dispose();
  }
}

const toNHWC = (x: tf.Tensor) => tf.transpose(x, [0, 2, 3, 1]);
const toNCHW = (x: tf.Tensor) => tf.transpose(x, [0, 3, 1, 2]);

function checkSample(x: tf.Tensor, channels: number, what = 'sample'): void {
  if (x.rank !== 4 || x.shape[1] !== channels)
    throw new ModelError(
      `${what} must be NCHW [batch, ${channels}, height, width], got [${x.shape.join(', ')}]`,
    );
  if (x.dtype !== 'float32') throw new ModelError(`${what} must be float32, got ${x.dtype}`);
}

/**
 * The timesteps as a 1-D tensor of length `batch` (diffusers broadcasts a scalar or a length-1
 * tensor over the batch).
 */
function timestepTensor(t: number | tf.Tensor, batch: number, intScalar: boolean): tf.Tensor {
  if (typeof t === 'number') {
    if (!Number.isFinite(t)) throw new ModelError(`timestep must be finite, got ${t}`);
    return intScalar
      ? tf.fill([batch], Math.trunc(t), 'int32')
      : tf.fill([batch], Math.fround(t), 'float32');
  }
  if (t.rank > 1 || (t.rank === 1 && t.shape[0] !== 1 && t.shape[0] !== batch))
    throw new ModelError(
      `timestep must be a number or a tensor of shape [], [1] or [${batch}], got [${t.shape.join(', ')}]`,
    );
  const flat = tf.reshape(t, [-1]);
  return flat.shape[0] === batch ? flat : tf.tile(flat, [batch]);
}

function labelTensor(labels: tf.Tensor | number[], batch: number): tf.Tensor {
  const t = Array.isArray(labels) ? tf.tensor1d(labels, 'int32') : labels;
  if (t.shape[0] !== batch)
    throw new ModelError(
      `classLabels must have one entry per sample (${batch}), got [${t.shape.join(', ')}]`,
    );
  return t;
}

function embeddingLookup(table: Slot, ids: tf.Tensor, key: string, labels?: number[]): tf.Tensor {
  const n = table.shape[0]!;
  if (labels?.some((l) => !Number.isInteger(l) || l < 0 || l >= n))
    throw new ModelError(
      `${key}: labels must be integers in [0, ${n}), got [${labels.join(', ')}]`,
    );
  return tf.gather(readSlot(table), tf.cast(ids, 'int32'));
}

// ------------------------------------------------------------------------------ UNet2DModel

/**
 * diffusers' `UNet2DModel` (DDPM / ADM / NCSN++-style pixel-space UNet), same keys and numbers.
 *
 * @example
 * const unet = await loadDiffusersModel('ddpm-cifar10-32/unet'); // from '@diffuse/models/node'
 * const eps = unet.forward({ sample: x, timestep: 981 }); // NCHW in, NCHW out
 */
export class UNet2DModel extends DiffusersModelBase {
  readonly className = 'UNet2DModel' as const;
  readonly timeProj: GaussianFourierProjection | Slot | null;
  readonly timeEmbedding: TimestepEmbedding;
  readonly classEmbedding: Slot | TimestepEmbedding | 'identity' | null;
  readonly convIn: Conv2d;
  readonly downBlocks: (DownBlock | SkipDownBlock)[] = [];
  readonly midBlock: MidBlock | null;
  readonly upBlocks: (UpBlock | SkipUpBlock)[] = [];
  readonly convNormOut: GroupNorm;
  readonly convOut: Conv2d;
  private readonly timeInputDim: number;

  /** Builds the module tree (no tensors); a `budget` stops a config over it early (see `createDiffusersModel`). */
  constructor(
    readonly config: UNet2DConfig,
    budget?: ParamBudget,
  ) {
    super(budget);
    const c = config;
    const s = this.root;
    const ch = c.block_out_channels;
    const temb = c.time_embedding_dim ?? ch[0]! * 4;
    this.convIn = s.conv('conv_in', c.in_channels, ch[0]!, 3);
    if (c.time_embedding_type === 'fourier') {
      this.timeProj = new GaussianFourierProjection(s.at('time_proj'), ch[0]!, true, false);
      this.timeInputDim = 2 * ch[0]!;
    } else if (c.time_embedding_type === 'learned') {
      this.timeProj = s.at('time_proj').param('weight', [c.num_train_timesteps!, ch[0]!]);
      this.timeInputDim = ch[0]!;
    } else {
      this.timeProj = null;
      this.timeInputDim = ch[0]!;
    }
    this.timeEmbedding = new TimestepEmbedding(
      s.at('time_embedding'),
      this.timeInputDim,
      temb,
      'silu',
    );
    if (c.class_embed_type === null && c.num_class_embeds !== null)
      this.classEmbedding = s.at('class_embedding').param('weight', [c.num_class_embeds, temb]);
    else if (c.class_embed_type === 'timestep')
      this.classEmbedding = new TimestepEmbedding(
        s.at('class_embedding'),
        this.timeInputDim,
        temb,
        'silu',
      );
    else if (c.class_embed_type === 'identity') this.classEmbedding = 'identity';
    else this.classEmbedding = null;

    const common = {
      tembChannels: temb,
      eps: c.norm_eps,
      act: c.act_fn,
      groups: c.norm_num_groups,
      timeScaleShift: c.resnet_time_scale_shift,
    };
    let out = ch[0]!;
    c.down_block_types.forEach((type, i) => {
      const input = out;
      out = ch[i]!;
      const args = {
        ...common,
        numLayers: c.layers_per_block,
        inChannels: input,
        outChannels: out,
        addDownsample: i !== ch.length - 1,
        attentionHeadDim: c.attention_head_dim ?? out,
        downsamplePadding: c.downsample_padding,
        downsampleType: c.downsample_type,
      };
      const at = s.at('down_blocks').at(i);
      this.downBlocks.push(
        type === 'SkipDownBlock2D' || type === 'AttnSkipDownBlock2D'
          ? new SkipDownBlock(at, type, args)
          : new DownBlock(at, type, args),
      );
    });
    const last = ch[ch.length - 1]!;
    this.midBlock =
      c.mid_block_type === null
        ? null
        : new MidBlock(s.at('mid_block'), false, {
            ...common,
            numLayers: 1,
            inChannels: last,
            outChannels: last,
            outputScaleFactor: c.mid_block_scale_factor,
            attentionHeadDim: c.attention_head_dim ?? last,
            attnGroups: c.attn_norm_num_groups,
            addAttention: c.add_attention,
          });
    const rev = [...ch].reverse();
    out = rev[0]!;
    c.up_block_types.forEach((type, i) => {
      const prev = out;
      out = rev[i]!;
      const args = {
        ...common,
        numLayers: c.layers_per_block + 1,
        inChannels: rev[Math.min(i + 1, ch.length - 1)]!,
        outChannels: out,
        prevOutputChannel: prev,
        addUpsample: i !== ch.length - 1,
        attentionHeadDim: c.attention_head_dim ?? out,
        upsampleType: c.upsample_type,
      };
      const at = s.at('up_blocks').at(i);
      this.upBlocks.push(
        type === 'SkipUpBlock2D' || type === 'AttnSkipUpBlock2D'
          ? new SkipUpBlock(at, type, args)
          : new UpBlock(at, type, args),
      );
    });
    this.convNormOut = s.groupNorm('conv_norm_out', ch[0]!, c.norm_num_groups, c.norm_eps);
    this.convOut = s.conv('conv_out', ch[0]!, c.out_channels, 3);
  }

  /**
   * diffusers' `UNet2DModel.forward(sample, timestep, class_labels).sample`.
   *
   * @example
   * const out = unet.forward({ sample, timestep: tf.tensor1d([981, 500]) });
   */
  forward(inputs: UNetForwardInputs): tf.Tensor {
    const c = this.config;
    const { sample } = inputs;
    checkSample(sample, c.in_channels);
    if (inputs.encoderHiddenStates !== undefined || inputs.addedCondKwargs !== undefined)
      throw new ModelError('UNet2DModel takes no encoderHiddenStates or addedCondKwargs');
    const [batch, , height, width] = sample.shape as [number, number, number, number];
    const factor = 2 ** (c.block_out_channels.length - 1);
    if (height % factor !== 0 || width % factor !== 0)
      throw new ModelError(
        `UNet2DModel needs height and width divisible by ${factor}, got ${height}x${width}`,
      );
    if (this.classEmbedding !== null && inputs.classLabels === undefined)
      throw new ModelError('class_labels should be provided when doing class conditioning');
    if (this.classEmbedding === null && inputs.classLabels !== undefined)
      throw new ModelError('classLabels given, but this UNet2DModel has no class embedding');
    return tf.tidy(() => {
      let x = toNHWC(sample);
      if (c.center_input_sample) x = tf.sub(tf.mul(x, 2), 1);
      const timesteps = timestepTensor(inputs.timestep, batch, true);
      let tEmb: tf.Tensor;
      if (this.timeProj instanceof GaussianFourierProjection)
        tEmb = this.timeProj.forward(timesteps);
      else if (this.timeProj !== null)
        tEmb = embeddingLookup(this.timeProj, timesteps, 'time_proj');
      else tEmb = timestepEmbedding(timesteps, this.timeInputDim, c.flip_sin_to_cos, c.freq_shift);
      let emb = this.timeEmbedding.forward(tEmb);
      if (this.classEmbedding !== null) {
        const labels = labelTensor(inputs.classLabels!, batch);
        let classEmb: tf.Tensor;
        if (this.classEmbedding === 'identity') classEmb = labels;
        else if (this.classEmbedding instanceof TimestepEmbedding)
          classEmb = this.classEmbedding.forward(
            timestepEmbedding(labels, this.timeInputDim, c.flip_sin_to_cos, c.freq_shift),
          );
        else
          classEmb = embeddingLookup(
            this.classEmbedding,
            labels,
            'class_embedding',
            Array.isArray(inputs.classLabels) ? inputs.classLabels : undefined,
          );
        emb = tf.add(emb, tf.cast(classEmb, 'float32'));
      }
      let skip: tf.Tensor | null = x; // the image-resolution path of the Skip* blocks (NCSN++)
      let h = conv2d(x, this.convIn);
      const states: tf.Tensor[] = [h];
      for (const block of this.downBlocks) {
        if (block instanceof SkipDownBlock) {
          const r = block.forward(h, emb, skip!);
          h = r.h;
          skip = r.skip;
          states.push(...r.states);
        } else {
          const r = block.forward(h, emb, null);
          h = r.h;
          states.push(...r.states);
        }
      }
      if (this.midBlock) h = this.midBlock.forward(h, emb, null);
      skip = null;
      for (const block of this.upBlocks) {
        const n = block.resnets.length;
        const skips = states.splice(states.length - n, n);
        if (block instanceof SkipUpBlock) {
          const r = block.forward(h, skips, emb, skip);
          h = r.h;
          skip = r.skip;
        } else h = block.forward(h, skips, emb, null);
      }
      h = conv2d(applyGroupNorm(h, this.convNormOut, 'silu'), this.convOut);
      if (skip !== null) h = tf.add(h, skip);
      if (c.time_embedding_type === 'fourier')
        h = tf.div(h, tf.reshape(tf.cast(timesteps, 'float32'), [batch, 1, 1, 1]));
      return toNCHW(h);
    });
  }
}

// ------------------------------------------------------------------------------ UNet2DConditionModel

const perBlock = <T>(v: T | T[], n: number): T[] =>
  Array.isArray(v) ? [...v] : Array.from({ length: n }, () => v);

/**
 * diffusers' `UNet2DConditionModel` (Stable Diffusion 1.x / 2.x / XL latent UNets), same keys and
 * numbers. Note diffusers' naming quirk: `attention_head_dim` is the number of heads of the
 * cross-attention blocks.
 *
 * @example
 * const eps = unet.forward({ sample: latents, timestep: 981, encoderHiddenStates: text });
 */
export class UNet2DConditionModel extends DiffusersModelBase {
  readonly className = 'UNet2DConditionModel' as const;
  readonly convIn: Conv2d;
  readonly timeProj: GaussianFourierProjection | null;
  readonly timeEmbedding: TimestepEmbedding;
  readonly encoderHidProj: Linear | null;
  readonly classEmbedding: Slot | TimestepEmbedding | Linear | 'identity' | null;
  readonly addEmbedding: TimestepEmbedding | null;
  readonly downBlocks: DownBlock[] = [];
  readonly midBlock: MidBlock | null;
  readonly upBlocks: UpBlock[] = [];
  readonly convNormOut: GroupNorm;
  readonly convOut: Conv2d;
  private readonly timeInputDim: number;

  /** Builds the module tree (no tensors); a `budget` stops a config over it early (see `createDiffusersModel`). */
  constructor(
    readonly config: UNet2DConditionConfig,
    budget?: ParamBudget,
  ) {
    super(budget);
    const c = config;
    const s = this.root;
    const ch = c.block_out_channels;
    const n = ch.length;
    const groups = c.norm_num_groups as number;
    this.convIn = s.conv('conv_in', c.in_channels, ch[0]!, c.conv_in_kernel);
    let temb: number;
    if (c.time_embedding_type === 'fourier') {
      temb = c.time_embedding_dim ?? ch[0]! * 2;
      this.timeProj = new GaussianFourierProjection(
        s.at('time_proj'),
        temb / 2,
        false,
        c.flip_sin_to_cos,
      );
      this.timeInputDim = temb;
    } else {
      temb = c.time_embedding_dim ?? ch[0]! * 4;
      this.timeProj = null;
      this.timeInputDim = ch[0]!;
    }
    this.timeEmbedding = new TimestepEmbedding(
      s.at('time_embedding'),
      this.timeInputDim,
      temb,
      c.act_fn,
      c.timestep_post_act,
      c.time_cond_proj_dim,
    );
    this.encoderHidProj =
      c.encoder_hid_dim_type === 'text_proj'
        ? s.linear('encoder_hid_proj', c.encoder_hid_dim!, c.cross_attention_dim as number)
        : null;
    const ce = s.at('class_embedding');
    if (c.class_embed_type === null && c.num_class_embeds !== null)
      this.classEmbedding = ce.param('weight', [c.num_class_embeds, temb]);
    else if (c.class_embed_type === 'timestep')
      this.classEmbedding = new TimestepEmbedding(ce, this.timeInputDim, temb, c.act_fn);
    else if (c.class_embed_type === 'identity') this.classEmbedding = 'identity';
    else if (c.class_embed_type === 'projection')
      this.classEmbedding = new TimestepEmbedding(
        ce,
        c.projection_class_embeddings_input_dim!,
        temb,
        'silu',
      );
    else if (c.class_embed_type === 'simple_projection')
      this.classEmbedding = s.linear(
        'class_embedding',
        c.projection_class_embeddings_input_dim!,
        temb,
      );
    else this.classEmbedding = null;
    this.addEmbedding =
      c.addition_embed_type === 'text_time'
        ? new TimestepEmbedding(
            s.at('add_embedding'),
            c.projection_class_embeddings_input_dim!,
            temb,
            'silu',
          )
        : null;

    const onlyCross = perBlock(c.only_cross_attention, n);
    const heads = perBlock(c.attention_head_dim, n);
    const crossDims = perBlock(c.cross_attention_dim, n);
    const layers = perBlock(c.layers_per_block, n);
    const tLayers = perBlock<number | number[]>(c.transformer_layers_per_block, n);
    const blockTemb = c.class_embeddings_concat ? temb * 2 : temb;
    const common = {
      tembChannels: blockTemb,
      eps: c.norm_eps,
      act: c.act_fn,
      groups,
      timeScaleShift: c.resnet_time_scale_shift,
      useLinearProjection: c.use_linear_projection,
      skipTimeAct: c.resnet_skip_time_act,
      outScaleFactor: c.resnet_out_scale_factor,
    };
    let out = ch[0]!;
    c.down_block_types.forEach((type, i) => {
      const input = out;
      out = ch[i]!;
      this.downBlocks.push(
        new DownBlock(s.at('down_blocks').at(i), type, {
          ...common,
          numLayers: layers[i]!,
          transformerLayers: tLayers[i]!,
          inChannels: input,
          outChannels: out,
          addDownsample: i !== n - 1,
          crossAttentionDim: crossDims[i]!,
          numAttentionHeads: heads[i]!,
          attentionHeadDim: heads[i]!,
          downsamplePadding: c.downsample_padding,
          downsampleType: 'conv',
          onlyCrossAttention: onlyCross[i]!,
        }),
      );
    });
    const last = ch[n - 1]!;
    const midArgs = {
      ...common,
      inChannels: last,
      outChannels: last,
      outputScaleFactor: c.mid_block_scale_factor,
      transformerLayers: tLayers[n - 1]!,
      numAttentionHeads: heads[n - 1]!,
      crossAttentionDim: crossDims[n - 1]!,
      onlyCrossAttention: false,
    };
    this.midBlock =
      c.mid_block_type === 'UNetMidBlock2DCrossAttn'
        ? new MidBlock(s.at('mid_block'), true, { ...midArgs, numLayers: 1, addAttention: true })
        : c.mid_block_type === 'UNetMidBlock2D'
          ? new MidBlock(s.at('mid_block'), false, {
              ...midArgs,
              numLayers: 0,
              addAttention: false,
            })
          : null;
    const rev = [...ch].reverse();
    const revHeads = [...heads].reverse();
    const revLayers = [...layers].reverse();
    const revCross = [...crossDims].reverse();
    const revTLayers = c.reverse_transformer_layers_per_block ?? [...tLayers].reverse();
    const revOnlyCross = [...onlyCross].reverse();
    out = rev[0]!;
    c.up_block_types.forEach((type, i) => {
      const prev = out;
      out = rev[i]!;
      this.upBlocks.push(
        new UpBlock(s.at('up_blocks').at(i), type, {
          ...common,
          numLayers: revLayers[i]! + 1,
          transformerLayers: revTLayers[i]!,
          inChannels: rev[Math.min(i + 1, n - 1)]!,
          outChannels: out,
          prevOutputChannel: prev,
          addUpsample: i !== n - 1,
          crossAttentionDim: revCross[i]!,
          numAttentionHeads: revHeads[i]!,
          // diffusers passes attention_head_dim[i] (not reversed) to the up blocks' Attn* variants.
          attentionHeadDim: heads[i]!,
          upsampleType: 'conv',
          onlyCrossAttention: revOnlyCross[i]!,
        }),
      );
    });
    this.convNormOut = s.groupNorm('conv_norm_out', ch[0]!, groups, c.norm_eps);
    this.convOut = s.conv('conv_out', ch[0]!, c.out_channels, c.conv_out_kernel);
  }

  /**
   * diffusers' `UNet2DConditionModel.forward(sample, timestep, encoder_hidden_states,
   * class_labels, timestep_cond, added_cond_kwargs=...).sample`.
   *
   * @example
   * const eps = unet.forward({ sample: latents, timestep: 981, encoderHiddenStates: text });
   */
  forward(inputs: UNetForwardInputs): tf.Tensor {
    const c = this.config;
    const { sample, encoderHiddenStates: ehs } = inputs;
    checkSample(sample, c.in_channels);
    const [batch, , height, width] = sample.shape as [number, number, number, number];
    const needsContext =
      this.downBlocks.some((b) => b.hasCrossAttention) ||
      this.upBlocks.some((b) => b.type === 'CrossAttnUpBlock2D') ||
      c.mid_block_type === 'UNetMidBlock2DCrossAttn';
    if (needsContext) {
      if (ehs === undefined)
        throw new ModelError('UNet2DConditionModel needs encoderHiddenStates [batch, tokens, dim]');
      if (ehs.rank !== 3 || ehs.shape[0] !== batch)
        throw new ModelError(
          `encoderHiddenStates must be [${batch}, tokens, dim], got [${ehs.shape.join(', ')}]`,
        );
    }
    if (this.classEmbedding !== null && inputs.classLabels === undefined)
      throw new ModelError('class_labels should be provided when num_class_embeds > 0');
    const added = inputs.addedCondKwargs;
    if (
      this.addEmbedding !== null &&
      (added?.text_embeds === undefined || added.time_ids === undefined)
    )
      throw new ModelError(
        "addition_embed_type 'text_time' needs addedCondKwargs.text_embeds and addedCondKwargs.time_ids",
      );
    return tf.tidy(() => {
      const upFactor = 2 ** this.upBlocks.filter((b) => b.upsampler !== null).length;
      const forwardSize = height % upFactor !== 0 || width % upFactor !== 0;
      let x = toNHWC(sample);
      if (c.center_input_sample) x = tf.sub(tf.mul(x, 2), 1);
      const timesteps = timestepTensor(inputs.timestep, batch, false);
      const tEmb = this.timeProj
        ? this.timeProj.forward(timesteps)
        : timestepEmbedding(timesteps, this.timeInputDim, c.flip_sin_to_cos, c.freq_shift);
      let emb = this.timeEmbedding.forward(tEmb, inputs.timestepCond);
      if (this.classEmbedding !== null) {
        const labels = labelTensor(inputs.classLabels!, batch);
        let classEmb: tf.Tensor;
        if (this.classEmbedding === 'identity') classEmb = labels;
        else if (this.classEmbedding instanceof TimestepEmbedding)
          classEmb = this.classEmbedding.forward(
            c.class_embed_type === 'timestep'
              ? timestepEmbedding(labels, this.timeInputDim, c.flip_sin_to_cos, c.freq_shift)
              : tf.cast(labels, 'float32'),
          );
        else if ('shape' in this.classEmbedding)
          classEmb = embeddingLookup(
            this.classEmbedding,
            labels,
            'class_embedding',
            Array.isArray(inputs.classLabels) ? inputs.classLabels : undefined,
          );
        else classEmb = linear(tf.cast(labels, 'float32'), this.classEmbedding);
        classEmb = tf.cast(classEmb, 'float32');
        emb = c.class_embeddings_concat ? tf.concat([emb, classEmb], -1) : tf.add(emb, classEmb);
      }
      if (this.addEmbedding !== null) {
        const textEmbeds = added!.text_embeds!;
        const ids = tf.reshape(added!.time_ids!, [-1]);
        const timeEmbeds = tf.reshape(
          timestepEmbedding(ids, c.addition_time_embed_dim!, c.flip_sin_to_cos, c.freq_shift),
          [textEmbeds.shape[0]!, -1],
        );
        const addEmbeds = tf.concat([tf.cast(textEmbeds, 'float32'), timeEmbeds], -1);
        if (addEmbeds.shape[1] !== c.projection_class_embeddings_input_dim)
          throw new ModelError(
            `text_embeds and time_ids give ${addEmbeds.shape[1]} features, projection_class_embeddings_input_dim is ${c.projection_class_embeddings_input_dim}`,
          );
        emb = tf.add(emb, this.addEmbedding.forward(addEmbeds));
      }
      if (c.time_embedding_act_fn !== null) emb = activation(emb, c.time_embedding_act_fn);
      let context = ehs ?? null;
      if (context !== null && this.encoderHidProj) context = linear(context, this.encoderHidProj);

      let h = conv2d(x, this.convIn);
      const states: tf.Tensor[] = [h];
      for (const block of this.downBlocks) {
        const r = block.forward(h, emb, context);
        h = r.h;
        states.push(...r.states);
      }
      if (this.midBlock) h = this.midBlock.forward(h, emb, context);
      this.upBlocks.forEach((block, i) => {
        const n = block.resnets.length;
        const skips = states.splice(states.length - n, n);
        let size: [number, number] | undefined;
        if (i !== this.upBlocks.length - 1 && forwardSize) {
          const next = states[states.length - 1]!;
          size = [next.shape[1]!, next.shape[2]!];
        }
        h = block.forward(h, skips, emb, context, size);
      });
      h = conv2d(applyGroupNorm(h, this.convNormOut, c.act_fn), this.convOut);
      return toNCHW(h);
    });
  }
}

// ------------------------------------------------------------------------------ AutoencoderKL

/** The diagonal Gaussian q(z | x) of `AutoencoderKL.encode`, NCHW. */
export interface LatentDistribution {
  mean: tf.Tensor;
  std: tf.Tensor;
  /** log-variance, clamped to [-30, 20] as diffusers' `DiagonalGaussianDistribution`. */
  logvar: tf.Tensor;
}

/**
 * diffusers' `AutoencoderKL` (the Stable Diffusion VAE; Rombach et al. 2022), same keys and
 * numbers. `encode` gives q(z | x); `decode` maps latents back to images. `scaling_factor` and
 * `shift_factor` are not applied here (as in diffusers; pipelines apply them).
 *
 * @example
 * const { mean, std } = vae.encode(images); const recon = vae.decode(mean);
 */
export class AutoencoderKL extends DiffusersModelBase {
  readonly className = 'AutoencoderKL' as const;
  private readonly enc: {
    convIn: Conv2d;
    down: DownBlock[];
    mid: MidBlock;
    normOut: GroupNorm;
    convOut: Conv2d;
  };
  private readonly dec: {
    convIn: Conv2d;
    mid: MidBlock;
    up: UpBlock[];
    normOut: GroupNorm;
    convOut: Conv2d;
  };
  readonly quantConv: Conv2d | null;
  readonly postQuantConv: Conv2d | null;

  /** Builds the module tree (no tensors); a `budget` stops a config over it early (see `createDiffusersModel`). */
  constructor(
    readonly config: AutoencoderKLConfig,
    budget?: ParamBudget,
  ) {
    super(budget);
    const c = config;
    const ch = c.block_out_channels;
    const n = ch.length;
    const last = ch[n - 1]!;
    const common = {
      tembChannels: null,
      eps: 1e-6,
      act: c.act_fn,
      groups: c.norm_num_groups,
      timeScaleShift: 'default' as const,
    };
    const e = this.root.at('encoder');
    const down: DownBlock[] = [];
    let out = ch[0]!;
    c.down_block_types.forEach((type, i) => {
      const input = out;
      out = ch[i]!;
      down.push(
        new DownBlock(e.at('down_blocks').at(i), type, {
          ...common,
          numLayers: c.layers_per_block,
          inChannels: input,
          outChannels: out,
          addDownsample: i !== n - 1,
          attentionHeadDim: out,
          downsamplePadding: 0,
          downsampleType: 'conv',
        }),
      );
    });
    const midArgs = {
      ...common,
      numLayers: 1,
      inChannels: last,
      outChannels: last,
      outputScaleFactor: 1,
      attentionHeadDim: last,
      addAttention: c.mid_block_add_attention,
    };
    this.enc = {
      convIn: e.conv('conv_in', c.in_channels, ch[0]!, 3),
      down,
      mid: new MidBlock(e.at('mid_block'), false, midArgs),
      normOut: e.groupNorm('conv_norm_out', last, c.norm_num_groups, 1e-6),
      convOut: e.conv('conv_out', last, 2 * c.latent_channels, 3),
    };
    this.quantConv = c.use_quant_conv
      ? this.root.conv('quant_conv', 2 * c.latent_channels, 2 * c.latent_channels, 1)
      : null;
    this.postQuantConv = c.use_post_quant_conv
      ? this.root.conv('post_quant_conv', c.latent_channels, c.latent_channels, 1)
      : null;
    const d = this.root.at('decoder');
    const convIn = d.conv('conv_in', c.latent_channels, last, 3);
    const mid = new MidBlock(d.at('mid_block'), false, midArgs);
    const up: UpBlock[] = [];
    const rev = [...ch].reverse();
    out = rev[0]!;
    c.up_block_types.forEach((type, i) => {
      const prev = out;
      out = rev[i]!;
      up.push(
        new UpBlock(d.at('up_blocks').at(i), type, {
          ...common,
          numLayers: c.layers_per_block + 1,
          inChannels: prev,
          outChannels: out,
          prevOutputChannel: prev,
          addUpsample: i !== n - 1,
          attentionHeadDim: out,
          upsampleType: 'conv',
        }),
      );
    });
    this.dec = {
      convIn,
      mid,
      up,
      normOut: d.groupNorm('conv_norm_out', ch[0]!, c.norm_num_groups, 1e-6),
      convOut: d.conv('conv_out', ch[0]!, c.out_channels, 3),
    };
  }

  /** Latent channels per image. */
  get latentChannels(): number {
    return this.config.latent_channels;
  }

  /** The spatial downsampling factor image -> latent (2^(blocks - 1)). */
  get downsampleFactor(): number {
    return 2 ** (this.config.block_out_channels.length - 1);
  }

  /**
   * q(z | x) for images x (NCHW, usually in [-1, 1]): `encode(x).latent_dist`'s mean, std and
   * clamped log-variance. The caller owns (and disposes) the three tensors.
   *
   * @example
   * const { mean, std, logvar } = vae.encode(x);
   */
  encode(x: tf.Tensor): LatentDistribution {
    checkSample(x, this.config.in_channels, 'x');
    const [mean, logvar, std] = tf.tidy(() => {
      let h = conv2d(toNHWC(x), this.enc.convIn);
      for (const block of this.enc.down) h = block.forward(h, null, null).h;
      h = this.enc.mid.forward(h, null, null);
      h = conv2d(applyGroupNorm(h, this.enc.normOut, 'silu'), this.enc.convOut);
      if (this.quantConv) h = conv2d(h, this.quantConv);
      const [m, lv] = halves(h);
      const logvar = tf.clipByValue(lv, -30, 20);
      return [toNCHW(m), toNCHW(logvar), toNCHW(tf.exp(tf.mul(logvar, 0.5)))];
    });
    return { mean: mean!, std: std!, logvar: logvar! };
  }

  /**
   * Images from latents z (NCHW, unscaled: divide by `scaling_factor` first when z came from a
   * diffusion model): `decode(z).sample`.
   *
   * @example
   * const img = vae.decode(tf.div(latents, vae.config.scaling_factor));
   */
  decode(z: tf.Tensor): tf.Tensor {
    checkSample(z, this.config.latent_channels, 'z');
    return tf.tidy(() => {
      let h = toNHWC(z);
      if (this.postQuantConv) h = conv2d(h, this.postQuantConv);
      h = conv2d(h, this.dec.convIn);
      h = this.dec.mid.forward(h, null, null);
      for (const block of this.dec.up) h = block.forward(h, [], null, null);
      h = conv2d(applyGroupNorm(h, this.dec.normOut, 'silu'), this.dec.convOut);
      return toNCHW(h);
    });
  }

  /**
   * diffusers' `AutoencoderKL.forward(sample).sample` = decode(encode(sample).mode()) (the mean).
   *
   * @example
   * const recon = vae.forward(images);
   */
  forward(x: tf.Tensor): tf.Tensor {
    const { mean, std, logvar } = this.encode(x);
    try {
      return this.decode(mean);
    } finally {
      tf.dispose([mean, std, logvar]);
    }
  }
}

/** A loaded diffusers model of any of the three classes (`className` tells which). */
export type DiffusersModel = UNet2DModel | UNet2DConditionModel | AutoencoderKL;
