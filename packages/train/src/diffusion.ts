/**
 * The glue between a denoiser, a noise schedule, a loss weighting and the `Trainer`: a loss function
 * of a batch `{ x, labels? }` that draws noise levels and noise from the trainer's seeded stream.
 */

import { InvalidArgumentError, type Random } from '@diffuse/backend';
import {
  type DenoiserLike,
  denoisingLoss,
  flowMatchingLoss,
  type LogSNRSample,
  type LogSNRSampler,
  type Reduction,
  type Weighting,
} from '@diffuse/losses';
import * as tf from '@tensorflow/tfjs-core';

/** A training batch of a diffusion model: data x0 [batch, ...] and optional int32 labels [batch]. */
export interface DiffusionBatch {
  x: tf.Tensor;
  labels?: tf.Tensor;
}

/** Options of `diffusionLoss`. */
export interface DiffusionLossOptions {
  /** Draws the noise level (logSNR and its density) of each example, e.g. `uniformTimeSampler(new CosineSchedule())`. */
  sampler: LogSNRSampler;
  /** Loss weighting (default: uniform on epsilon, Ho et al. 2020). */
  weighting?: Weighting;
  /** Reduction over data dimensions (default `mean`). */
  reduction?: Reduction;
  /**
   * Probability of replacing a label by the null label `numClasses` (conditioning dropout, Ho &
   * Salimans 2022, Algorithm 1), so one network learns p(x | y) and p(x) for classifier-free guidance.
   * Default 0.1 for conditional models.
   */
  condDropout?: number;
}

/** A denoiser the objective can train: `Denoiser`-shaped, with the class count of its conditioning. */
export interface TrainableDenoiser extends DenoiserLike {
  readonly numClasses?: number | undefined;
}

/**
 * The Monte-Carlo diffusion loss of a batch, mean over examples:
 *
 *     L = mean_i w(lambda_i) || target_i - target_hat(alpha_i x0_i + sigma_i eps_i; lambda_i, y_i) ||^2,
 *     lambda_i ~ p(lambda), eps_i ~ N(0, I), y_i -> null with probability `condDropout`
 *
 * (Luo 2022, eq. 130-151; `denoisingLoss` of `@diffuse/losses` does the work). Labels are used when
 * the model is class-conditional (`numClasses` > 0) and the batch has them.
 *
 * @example
 * const model = new Mlp(mlpConfig({ dim: 2, numClasses: 8 }));
 * const loss = diffusionLoss(model, { sampler: uniformTimeSampler(new CosineSchedule()) });
 * const trainer = new Trainer({ params: model.params, loss, data: (rng) => toy.sample(256, rng), seed: 0 });
 */
export function diffusionLoss(
  model: TrainableDenoiser,
  options: DiffusionLossOptions,
): (batch: DiffusionBatch, rng: Random) => tf.Scalar {
  const draw = diffusionDrawer(model, options);
  return (batch, rng) => {
    const d = draw(batch, rng);
    try {
      return tf.tidy(() =>
        tf.mean(
          denoisingLoss(model, batch.x, {
            rng,
            sample: d.levels,
            noise: d.noise,
            ...(options.weighting !== undefined ? { weighting: options.weighting } : {}),
            ...(options.reduction !== undefined ? { reduction: options.reduction } : {}),
            ...(d.labels !== undefined ? { cond: { labels: d.labels } } : {}),
          }),
        ),
      ) as tf.Scalar;
    } finally {
      tf.dispose([d.noise, ...(d.labels !== undefined ? [d.labels] : [])]);
    }
  };
}

/** Everything random in one step of `diffusionLoss`, drawn for the whole batch. */
export interface DiffusionDraw {
  /** Labels after conditioning dropout (int32 [batch]), for a conditional model given labels. */
  labels?: tf.Tensor;
  /** The noise levels lambda_i (and their densities) from the sampler. */
  levels: LogSNRSample;
  /** eps ~ N(0, I), shaped like x0. */
  noise: tf.Tensor;
}

/**
 * The random draws of `diffusionLoss` for a batch, in its order: conditioning dropout (one uniform
 * per example), the noise levels (`sampler.sample`), then the noise eps. `diffusionLoss` and the
 * worker-thread `ParallelGradients` both draw through this, so they see the same numbers for one seed.
 * The caller owns the returned tensors.
 *
 * @example
 * const draw = diffusionDrawer(model, { sampler: uniformTimeSampler(new CosineSchedule()) });
 * const { levels, noise } = draw({ x }, Random.seed(0));
 */
export function diffusionDrawer(
  model: TrainableDenoiser,
  options: DiffusionLossOptions,
): (batch: DiffusionBatch, rng: Random) => DiffusionDraw {
  const numClasses = model.numClasses ?? 0;
  const dropout = options.condDropout ?? (numClasses > 0 ? 0.1 : 0);
  if (!(dropout >= 0 && dropout <= 1)) {
    throw new InvalidArgumentError(`condDropout must be in [0, 1], got ${dropout}`);
  }
  if (options.sampler === null || typeof options.sampler?.sample !== 'function') {
    throw new InvalidArgumentError('diffusionLoss needs a LogSNRSampler as `sampler`');
  }
  return (batch, rng) => {
    const n = batch.x.shape[0]!;
    let labels: tf.Tensor | undefined;
    if (numClasses > 0 && batch.labels !== undefined) {
      const drop = new Int32Array(n);
      for (let i = 0; i < n; i++) drop[i] = rng.uniform01() < dropout ? 1 : 0;
      labels = tf.tidy(() =>
        tf.where(
          tf.tensor1d(drop, 'bool'),
          tf.fill([n], numClasses, 'int32'),
          tf.cast(batch.labels!, 'int32'),
        ),
      );
    }
    try {
      const levels = options.sampler.sample(n, rng);
      const noise = rng.normal(batch.x.shape);
      return { levels, noise, ...(labels !== undefined ? { labels } : {}) };
    } catch (e) {
      labels?.dispose();
      throw e;
    }
  };
}

/** Options of `flowMatchingTrainingLoss`. */
export interface FlowMatchingTrainingOptions {
  /** `uniform` (default) or SD 3's `logit-normal` flow times. */
  timeSampling?: 'uniform' | 'logit-normal';
  /** Reduction over data dimensions (default `mean`). */
  reduction?: Reduction;
}

/**
 * The conditional flow-matching objective of a batch, mean over examples (`flowMatchingLoss` of
 * `@diffuse/losses`: x_t = (1 - t) x0 + t eps, target u = eps - x0, the model's output converted to the
 * velocity whatever it predicts), with t and eps drawn from the trainer's seeded stream. Unconditional.
 *
 * @example
 * const model = new Mlp(mlpConfig({ dim: 2, prediction: 'flow' }));
 * const trainer = new Trainer({ params: model.params, loss: flowMatchingTrainingLoss(model), data, seed: 0 });
 */
export function flowMatchingTrainingLoss(
  model: TrainableDenoiser,
  options: FlowMatchingTrainingOptions = {},
): (batch: DiffusionBatch, rng: Random) => tf.Scalar {
  return (batch, rng) =>
    tf.tidy(() =>
      tf.mean(
        flowMatchingLoss(model, batch.x, {
          rng,
          ...(options.timeSampling !== undefined ? { timeSampling: options.timeSampling } : {}),
          ...(options.reduction !== undefined ? { reduction: options.reduction } : {}),
        }),
      ),
    ) as tf.Scalar;
}
