/**
 * A diffusers UNet plus its scheduler config as the toolkit's `Denoiser`, so every sampler, every
 * guidance wrapper and `logLikelihood` run on it.
 *
 * A diffusers UNet was trained on x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps at integer timesteps
 * t of the scheduler's beta table, and predicts `prediction_type` (epsilon, v_prediction or sample).
 * The denoiser is called with the same variance-preserving x_t and its level (alpha, sigma); the
 * timestep it passes to the UNet is the table's (fractional) timestep of that level: diffusers'
 * `_sigma_to_t` (linear in log sigma_VE between the two bracketing entries, sigma_VE = sigma / alpha),
 * which is exactly how diffusers' Euler / Heun / DPM++ (Karras sigmas) schedulers call their UNet.
 * At a table level it is the integer timestep. A level that is not variance-preserving (alpha^2 +
 * sigma^2 != 1, e.g. a VE embedding) is rescaled to the VP level of the same sigma_VE first, and a
 * v prediction converted back to the given level.
 *
 * Conditioning: `cond.labels` are the class labels of a class-conditional UNet2DModel. For a
 * UNet2DConditionModel, `context.encoderHiddenStates` is a table of prompt embeddings [P, tokens,
 * dim] (and `textEmbeds` [P, d] / `timeIds` [P or 1, n] for SDXL), and `cond.labels` pick a row per
 * example (default row 0). With P >= 2 the last row is the "unconditional" (negative or empty)
 * prompt and `numClasses` is P - 1, so `classifierFreeGuidance` of `@diffuse/guidance` (whose null
 * label is `numClasses`) does text CFG with negative prompts unchanged. `cond.encoderHiddenStates`
 * (a [batch, tokens, dim] tensor) bypasses the table.
 */
import {
  convertPrediction,
  type DiffusersScheduleConfig,
  type DiscreteSchedule,
  fromDiffusersConfig,
  type NoiseLevel,
  type Prediction,
  parseDiffusersJson,
  type Scalar,
} from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import type { Conditioning, Denoiser } from '../denoiser.js';
import { ModelError } from '../errors.js';
import type { UNet2DConditionModel, UNet2DModel } from './models.js';

/** Prompt embeddings of a text-conditioned UNet, one row per prompt (the last: the negative prompt). */
export interface PromptContext {
  /** [P, tokens, cross_attention_dim] (or encoder_hid_dim). */
  encoderHiddenStates: tf.Tensor;
  /** SDXL pooled embeddings [P, d]. */
  textEmbeds?: tf.Tensor;
  /** SDXL micro-conditioning [P, n] or [1, n] (shared). */
  timeIds?: tf.Tensor;
}

/** Options of `diffusersDenoiser`. */
export interface DiffusersDenoiserOptions {
  /** The scheduler's `scheduler_config.json` (text, object, or already parsed by `fromDiffusersConfig`). */
  scheduler: string | object | DiffusersScheduleConfig;
  /** Prompt embeddings (UNet2DConditionModel); see the module comment. Borrowed, not disposed. */
  context?: PromptContext;
  /** Override of `numClasses` (e.g. `num_class_embeds - 1` when the last class row is a learned null class). */
  numClasses?: number;
}

function parseScheduler(s: DiffusersDenoiserOptions['scheduler']): DiffusersScheduleConfig {
  if (typeof s === 'object' && s !== null && 'schedule' in s && 'prediction' in s)
    return s as DiffusersScheduleConfig;
  let json: unknown = s;
  if (typeof s === 'string') {
    try {
      json = parseDiffusersJson(s, 'scheduler config'); // diffusers writes bare -Infinity
    } catch (e) {
      throw new ModelError(`scheduler config is not valid JSON (${(e as Error).message})`);
    }
  }
  return fromDiffusersConfig(json);
}

const sampleShape = (size: number | [number, number] | null, channels: number) =>
  size === null
    ? undefined
    : typeof size === 'number'
      ? [channels, size, size]
      : [channels, size[0], size[1]];

/**
 * A diffusers UNet as a `Denoiser` (see the module comment). Samples are NCHW like the UNet's.
 *
 * @example
 * const unet = await loadDiffusersModel('ddpm-cifar10-32/unet');
 * const scheduler = await readFile('ddpm-cifar10-32/scheduler/scheduler_config.json', 'utf8');
 * const denoiser = new DiffusersDenoiser(unet as UNet2DModel, { scheduler });
 * const x = await sample(denoiser, { sampler: 'dpmpp_2m', steps: 20, batch: 4, seed: 0 });
 */
export class DiffusersDenoiser implements Denoiser {
  readonly prediction: Prediction;
  readonly shape: readonly number[] | undefined;
  readonly numClasses: number | undefined;
  /** The scheduler's training beta table (its levels are where the UNet was trained). */
  readonly schedule: DiscreteSchedule;
  /** The parsed scheduler config. */
  readonly scheduler: DiffusersScheduleConfig;

  constructor(
    readonly unet: UNet2DModel | UNet2DConditionModel,
    private readonly options: DiffusersDenoiserOptions,
  ) {
    this.scheduler = parseScheduler(options.scheduler);
    this.schedule = this.scheduler.schedule;
    this.prediction = this.scheduler.prediction;
    const c = unet.config;
    this.shape = sampleShape(c.sample_size, c.in_channels);
    const ctx = options.context;
    if (ctx !== undefined) {
      if (unet.className !== 'UNet2DConditionModel')
        throw new ModelError('context (prompt embeddings) needs a UNet2DConditionModel');
      const rows = ctx.encoderHiddenStates.shape[0]!;
      if (ctx.encoderHiddenStates.rank !== 3)
        throw new ModelError(
          `context.encoderHiddenStates must be [prompts, tokens, dim], got [${ctx.encoderHiddenStates.shape.join(', ')}]`,
        );
      if (ctx.textEmbeds !== undefined && ctx.textEmbeds.shape[0] !== rows)
        throw new ModelError(
          `context.textEmbeds needs ${rows} rows, got ${ctx.textEmbeds.shape[0]}`,
        );
      if (ctx.timeIds !== undefined && ctx.timeIds.shape[0] !== rows && ctx.timeIds.shape[0] !== 1)
        throw new ModelError(
          `context.timeIds needs 1 or ${rows} rows, got ${ctx.timeIds.shape[0]}`,
        );
    }
    const tableRows = ctx?.encoderHiddenStates.shape[0];
    this.numClasses =
      options.numClasses ??
      (unet.className === 'UNet2DModel'
        ? (unet.config.num_class_embeds ?? undefined)
        : tableRows !== undefined && tableRows >= 2
          ? tableRows - 1
          : undefined);
  }

  /** The UNet timestep of a VE noise level sigma / alpha (diffusers' `_sigma_to_t`). */
  timestepOf(sigmaVE: number): number {
    return this.schedule.timestepFromSigma(sigmaVE);
  }

  predict(x: tf.Tensor, level: NoiseLevel<Scalar>, cond: Conditioning = {}): tf.Tensor {
    const batch = x.shape[0]!;
    const alphas = perExample(level.alpha, batch, 'alpha');
    const sigmas = perExample(level.sigma, batch, 'sigma');
    const sigmaVE = alphas.map((a, i) => {
      const s = sigmas[i]!;
      if (!(a >= 0 && s >= 0) || (a === 0 && s === 0))
        throw new ModelError(`noise level (alpha ${a}, sigma ${s}) is not a valid level`);
      return a === 0 ? Number.POSITIVE_INFINITY : s / a;
    });
    const timesteps = sigmaVE.map((s) => this.timestepOf(s));
    const vp = alphas.every((a, i) => Math.abs(a * a + sigmas[i]! ** 2 - 1) < 1e-6);
    return tf.tidy(() => {
      // The VP level of the same sigma_VE, and x rescaled to it.
      const vpAlpha = sigmaVE.map((s) => (Number.isFinite(s) ? 1 / Math.sqrt(1 + s * s) : 0));
      const vpSigma = sigmaVE.map((s) => (Number.isFinite(s) ? s / Math.sqrt(1 + s * s) : 1));
      const bshape = [batch, ...x.shape.slice(1).map(() => 1)];
      const xin = vp
        ? x
        : tf.mul(
            x,
            tf.tensor(
              vpAlpha.map((a, i) => a / alphas[i]!),
              bshape,
              'float32',
            ),
          );
      const out = this.unet.forward({
        sample: xin,
        timestep: tf.tensor1d(timesteps, 'float32'),
        ...this.conditioning(cond, batch),
      });
      if (vp || this.prediction !== 'v') return out;
      const vpLevel = {
        alpha: tf.tensor(vpAlpha, bshape, 'float32'),
        sigma: tf.tensor(vpSigma, bshape, 'float32'),
      };
      const eps = convertPrediction(out, 'v', 'epsilon', xin, vpLevel);
      return convertPrediction(eps, 'epsilon', 'v', x, level);
    });
  }

  /** The UNet's keyword inputs for `cond`. */
  private conditioning(cond: Conditioning, batch: number) {
    const unet = this.unet;
    if (unet.className === 'UNet2DModel') {
      const labels = cond.labels;
      return labels === undefined ? {} : { classLabels: labels };
    }
    const ctx = this.options.context;
    const direct = cond.encoderHiddenStates;
    if (direct instanceof tf.Tensor) return { encoderHiddenStates: direct };
    if (ctx === undefined) return {};
    const rows = cond.labels ?? tf.zeros([batch], 'int32');
    const ids = tf.cast(rows, 'int32');
    const encoderHiddenStates = tf.gather(ctx.encoderHiddenStates, ids);
    const addedCondKwargs =
      ctx.textEmbeds !== undefined && ctx.timeIds !== undefined
        ? {
            text_embeds: tf.gather(ctx.textEmbeds, ids),
            time_ids:
              ctx.timeIds.shape[0] === 1
                ? tf.tile(ctx.timeIds, [batch, 1])
                : tf.gather(ctx.timeIds, ids),
          }
        : undefined;
    return { encoderHiddenStates, addedCondKwargs };
  }
}

/** A level component as one number per example (tensors are read back: one small sync per call). */
function perExample(v: Scalar, batch: number, what: string): number[] {
  if (typeof v === 'number') return Array.from({ length: batch }, () => v);
  const data = Array.from(v.dataSync());
  if (data.length === 1) return Array.from({ length: batch }, () => data[0]!);
  if (data.length !== batch)
    throw new ModelError(`level.${what} must hold 1 or ${batch} values, got ${data.length}`);
  return data;
}

/**
 * A diffusers UNet plus its scheduler config as a `Denoiser` (shorthand for `new DiffusersDenoiser`).
 *
 * @example
 * const denoiser = diffusersDenoiser(unet, { scheduler: schedulerConfigJson });
 */
export function diffusersDenoiser(
  unet: UNet2DModel | UNet2DConditionModel,
  options: DiffusersDenoiserOptions,
): DiffusersDenoiser {
  return new DiffusersDenoiser(unet, options);
}
