/**
 * What the losses need from a continuous noise schedule, as a structural type: every continuous
 * schedule of `@diffuse/schedules` (VP, sub-VP, VE, cosine, logSNR-linear, EDM, the learned VDM
 * schedule) fits it, and so does any user object with the same methods. The losses never copy
 * schedule math; they only call these methods.
 *
 * A schedule is fixed, for the ELBO, by its logSNR curve (Kingma et al. 2021, VDM sec. 3):
 *
 *     lambda(t) = log SNR(t) = log(alpha_t^2 / sigma_t^2) = -gamma(t),   t in [0, 1], strictly decreasing,
 *
 * with lambda(0) = lambda_max (almost clean data) and lambda(1) = lambda_min (almost pure noise).
 * The losses put the data in variance-preserving form, alpha^2 = sigmoid(lambda),
 * sigma^2 = sigmoid(-lambda), which is what a `Denoiser` expects.
 */
import * as tf from '@tensorflow/tfjs-core';
import { LossError } from './errors.js';

/** A continuous schedule evaluated on numbers (fixed schedules). */
export interface LogSNRSchedule {
  /** lambda(t) = log SNR(t), strictly decreasing on [0, 1]. */
  logSNR(t: number): number;
  /** d lambda / dt, negative on [0, 1]. */
  dLogSNR(t: number): number;
}

/**
 * A continuous schedule evaluated on tensors, so that gradients reach its parameters (the learned VDM
 * schedule gamma(t) = -lambda(t) as a monotone network). `dLogSNRTensor` is used when present;
 * otherwise the derivative is taken with `tf.grad` (the schedule must act elementwise on t), and the
 * losses differentiate through it a second time when trained.
 */
export interface DifferentiableLogSNRSchedule {
  /** lambda(t) for a tensor of times (any shape), elementwise and differentiable. */
  logSNRTensor(t: tf.Tensor): tf.Tensor;
  /** d lambda / dt, elementwise and differentiable (optional). */
  dLogSNRTensor?(t: tf.Tensor): tf.Tensor;
}

/** Any continuous schedule the losses accept. */
export type ContinuousSchedule = LogSNRSchedule | DifferentiableLogSNRSchedule;

/** True when the schedule can be evaluated on tensors (and so be trained through the loss). */
export function isDifferentiableSchedule(s: ContinuousSchedule): s is DifferentiableLogSNRSchedule {
  return typeof (s as DifferentiableLogSNRSchedule).logSNRTensor === 'function';
}

/** Throws a `LossError` unless `s` looks like a continuous schedule. */
export function assertContinuousSchedule(
  s: unknown,
  what = 'schedule',
): asserts s is ContinuousSchedule {
  const o = s as Partial<LogSNRSchedule & DifferentiableLogSNRSchedule> | null;
  const numeric =
    o !== null &&
    typeof o === 'object' &&
    typeof o.logSNR === 'function' &&
    typeof o.dLogSNR === 'function';
  const tensor = o !== null && typeof o === 'object' && typeof o.logSNRTensor === 'function';
  if (!numeric && !tensor) {
    throw new LossError(
      `${what} must be a continuous schedule with logSNR(t) and dLogSNR(t), or logSNRTensor(t); got ${describe(s)}`,
    );
  }
}

/**
 * lambda(t) and d lambda / dt at the given times, as float32 tensors of t's shape. On the tensor path
 * both stay differentiable with respect to the schedule's variables.
 */
export function logSNRAndDerivative(
  schedule: ContinuousSchedule,
  t: Float64Array,
): { logSNR: tf.Tensor1D; dLogSNR: tf.Tensor1D } {
  if (isDifferentiableSchedule(schedule)) {
    return tf.tidy(() => {
      const tt = tf.tensor1d(Float32Array.from(t));
      const logSNR = schedule.logSNRTensor(tt) as tf.Tensor1D;
      const dLogSNR = (
        schedule.dLogSNRTensor
          ? schedule.dLogSNRTensor(tt)
          : tf.grad((u: tf.Tensor) => tf.sum(schedule.logSNRTensor(u)))(tt)
      ) as tf.Tensor1D;
      return { logSNR: tf.reshape(logSNR, [t.length]), dLogSNR: tf.reshape(dLogSNR, [t.length]) };
    });
  }
  const l = new Float32Array(t.length);
  const d = new Float32Array(t.length);
  for (let i = 0; i < t.length; i++) {
    const ti = t[i]!;
    l[i] = schedule.logSNR(ti);
    d[i] = schedule.dLogSNR(ti);
    if (!Number.isFinite(l[i]!))
      throw new LossError(`schedule.logSNR(${ti}) = ${l[i]} is not finite`);
    if (!(d[i]! < 0) || !Number.isFinite(d[i]!)) {
      throw new LossError(
        `schedule.dLogSNR(${ti}) = ${d[i]}: the logSNR of a schedule must strictly decrease in t (finite, negative derivative)`,
      );
    }
  }
  return { logSNR: tf.tensor1d(l), dLogSNR: tf.tensor1d(d) };
}

/**
 * lambda at one time (0 gives lambda_max, 1 gives lambda_min): a number for a numeric schedule, a
 * scalar tensor (differentiable) for a tensor schedule.
 */
export function logSNRAt(schedule: ContinuousSchedule, t: number): number | tf.Scalar {
  if (isDifferentiableSchedule(schedule)) {
    return tf.tidy(() => tf.reshape(schedule.logSNRTensor(tf.tensor1d([t])), []) as tf.Scalar);
  }
  const l = schedule.logSNR(t);
  if (!Number.isFinite(l)) throw new LossError(`schedule.logSNR(${t}) = ${l} is not finite`);
  return l;
}

/**
 * The variance-preserving noise level of a logSNR tensor (Luo 2022, eq. 69; VDM eq. 3-4):
 *
 *     alpha^2 = sigmoid(lambda),   sigma^2 = sigmoid(-lambda),
 *
 * reshaped to [batch, 1, ..., 1] so it broadcasts against data of rank `rank`.
 */
export function vpLevelTensor(
  logSNR: tf.Tensor,
  rank: number,
): { alpha: tf.Tensor; sigma: tf.Tensor } {
  return tf.tidy(() => {
    const shape = [logSNR.shape[0] ?? 1, ...Array<number>(Math.max(rank - 1, 0)).fill(1)];
    const l = tf.reshape(logSNR, shape);
    return { alpha: tf.sqrt(tf.sigmoid(l)), sigma: tf.sqrt(tf.sigmoid(tf.neg(l))) };
  });
}

/** A short description of a value for error messages. */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v instanceof tf.Tensor) return `a tensor of shape [${v.shape.join(', ')}]`;
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  if (typeof v === 'object') return `an object with keys {${Object.keys(v as object).join(', ')}}`;
  return `${typeof v} ${String(v)}`;
}
