/**
 * Joint training of a learned noise schedule and a model through the continuous-time ELBO
 * (Kingma et al. 2021, VDM sec. 5 and appendix I.2).
 *
 * The continuous diffusion loss depends on the schedule only through its endpoints (VDM eq. 18):
 *
 *     L_inf = 1/2 int_{lambda_min}^{lambda_max} E||eps - eps_hat(z_lambda; lambda)||^2 d lambda,
 *
 * so the gradient of E[L_inf] with respect to the schedule's interior shape eta is zero, and its
 * Monte-Carlo estimate is pure noise. VDM instead trains eta to minimise the estimator's variance,
 * Var[L] = E[L^2] - E[L]^2, whose gradient is d/d eta E[L^2] = E[2 L dL/d eta] (E[L] does not move).
 * The endpoints (lambda_max = -gamma_0, lambda_min = -gamma_1) do change the bound and are trained on
 * it, with the model.
 */
import { Random } from '@diffuse/backend';
import * as tf from '@tensorflow/tfjs-core';
import type { DenoiserLike } from './denoising-loss.js';
import { continuousDiffusionLoss, negativeELBO } from './elbo.js';
import { LossError } from './errors.js';
import type { TimeSampling } from './sampler.js';
import { type DifferentiableLogSNRSchedule, describe } from './schedule.js';

/** What one `vdmJointStep` trains, and with what. */
export interface VDMJointStepOptions {
  /** The model; its variables are `modelVariables`. */
  denoiser: DenoiserLike;
  /** A batch of data [batch, ...dims]. */
  x0: tf.Tensor;
  /** The learned schedule, evaluated on tensors (e.g. `LearnedVDMSchedule` of `@diffuse/schedules`). */
  schedule: DifferentiableLogSNRSchedule;
  /** Draws the times and the noise (advanced by the step). */
  rng: Random;
  /** Updates the model and the endpoints with the gradient of the mean -ELBO. */
  optimizer: tf.Optimizer;
  /** Updates the schedule's shape with the gradient of E[L_diffusion^2] (default: `optimizer`). */
  scheduleOptimizer?: tf.Optimizer;
  /** The model's variables. */
  modelVariables: tf.Variable[];
  /** The schedule's endpoint variables (VDM: gamma_0, gamma_1), trained on the ELBO. */
  endpointVariables?: tf.Variable[];
  /** The schedule's shape variables (VDM: the monotone network's weights), trained on the variance. */
  shapeVariables?: tf.Variable[];
  /** Default `low-discrepancy` (VDM). */
  sampling?: TimeSampling;
  cond?: Record<string, unknown>;
}

/**
 * One step of VDM's joint training: the model and the schedule's endpoints descend the mean -ELBO
 * (nats per example, continuous time); the schedule's shape descends E[L_inf^2], i.e. the variance of
 * the diffusion loss. Both objectives are evaluated on the same times and noise (the second pass
 * replays the first one's random draws). Returns the two objectives as scalars the caller owns
 * (no readback inside the step).
 *
 * @example
 * const schedule = new LearnedVDMSchedule({ gammaMin: -13.3, gammaMax: 5 });
 * const { negativeELBO, diffusionSecondMoment } = vdmJointStep({
 *   denoiser: model, x0, schedule, rng, optimizer: tf.train.adam(1e-3),
 *   modelVariables: model.variables,
 *   endpointVariables: [schedule.gamma0, schedule.gamma1],
 *   shapeVariables: [schedule.w1, schedule.b1, schedule.w2, schedule.b2, schedule.w3],
 * });
 */
export function vdmJointStep(options: VDMJointStepOptions): {
  negativeELBO: tf.Scalar;
  diffusionSecondMoment: tf.Scalar;
} {
  const { denoiser, x0, schedule, rng, optimizer } = options;
  if (typeof (schedule as DifferentiableLogSNRSchedule)?.logSNRTensor !== 'function') {
    throw new LossError(
      `vdmJointStep needs a schedule with logSNRTensor(t) (a learned schedule), got ${describe(schedule)}`,
    );
  }
  if (optimizer === undefined || typeof optimizer.applyGradients !== 'function') {
    throw new LossError(
      `vdmJointStep needs an optimizer (e.g. tf.train.adam(1e-3)), got ${describe(optimizer)}`,
    );
  }
  const first = [...options.modelVariables, ...(options.endpointVariables ?? [])];
  const shape = options.shapeVariables ?? [];
  for (const v of [...first, ...shape]) {
    if (!(v instanceof tf.Variable))
      throw new LossError(`every trained variable must be a tf.Variable, got ${describe(v)}`);
  }
  const overlap = shape.filter((v) => first.includes(v));
  if (overlap.length > 0) {
    throw new LossError(
      `variable '${overlap[0]!.name}' is in both the ELBO group (model / endpoints) and the variance group (shape)`,
    );
  }
  if (first.length === 0 && shape.length === 0)
    throw new LossError('vdmJointStep has no variables to train');
  const replay = rng.state();
  const common = {
    schedule,
    differentiable: true,
    ...(options.sampling === undefined ? {} : { sampling: options.sampling }),
    ...(options.cond === undefined ? {} : { cond: options.cond }),
  };

  let elbo: tf.Scalar;
  if (first.length > 0) {
    const { value, grads } = tf.variableGrads(
      () => tf.mean(negativeELBO(denoiser, x0, { ...common, rng }).total) as tf.Scalar,
      first,
    );
    optimizer.applyGradients(grads);
    tf.dispose(grads);
    elbo = value;
  } else {
    elbo = tf.tidy(
      () => tf.mean(negativeELBO(denoiser, x0, { ...common, rng }).total) as tf.Scalar,
    );
  }

  let second: tf.Scalar;
  const objective = () =>
    tf.tidy(() => {
      const l = continuousDiffusionLoss(denoiser, x0, { ...common, rng: Random.fromState(replay) });
      return tf.mean(tf.square(l)) as tf.Scalar;
    });
  if (shape.length > 0) {
    const { value, grads } = tf.variableGrads(objective, shape);
    (options.scheduleOptimizer ?? optimizer).applyGradients(grads);
    tf.dispose(grads);
    second = value;
  } else {
    second = objective();
  }
  return { negativeELBO: elbo, diffusionSecondMoment: second };
}
