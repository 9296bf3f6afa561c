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
import { type NoiseLevel, vpLevelFromLogSNRTensor } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { LossError } from './errors.js';

/** A continuous schedule evaluated on numbers (fixed schedules). */
export interface LogSNRSchedule {
  /** lambda(t) = log SNR(t), strictly decreasing on [0, 1]. */
  logSNR(t: number): number;
  /** d lambda / dt, negative on [0, 1]. */
  dLogSNRdt(t: number): number;
}

/**
 * A continuous schedule evaluated on tensors, so that gradients reach its parameters (the learned VDM
 * schedule gamma(t) = -lambda(t) as a monotone network). `dLogSNRdtTensor` is used when present;
 * otherwise the derivative is taken with `tf.grad` (the schedule must act elementwise on t), and the
 * losses differentiate through it a second time when trained.
 */
export interface DifferentiableLogSNRSchedule {
  /** lambda(t) for a tensor of times (any shape), elementwise and differentiable. */
  logSNRTensor(t: tf.Tensor): tf.Tensor;
  /** d lambda / dt, elementwise and differentiable (optional). */
  dLogSNRdtTensor?(t: tf.Tensor): tf.Tensor;
}

/** Any continuous schedule the losses accept (every continuous schedule of `@diffuse/schedules`). */
export type ContinuousSchedule = LogSNRSchedule | DifferentiableLogSNRSchedule;

function hasNumeric(s: unknown): s is LogSNRSchedule {
  const o = s as Partial<LogSNRSchedule> | null;
  return (
    o !== null &&
    typeof o === 'object' &&
    typeof o.logSNR === 'function' &&
    typeof o.dLogSNRdt === 'function'
  );
}

function hasTensor(s: unknown): s is DifferentiableLogSNRSchedule {
  const o = s as Partial<DifferentiableLogSNRSchedule> | null;
  return o !== null && typeof o === 'object' && typeof o.logSNRTensor === 'function';
}

/**
 * Whether the losses evaluate this schedule on tensors (so gradients reach its parameters): when it
 * has trainable variables (`trainableVariables`, as the learned VDM schedule), when it has only tensor
 * methods, or when `differentiable` forces it. Fixed schedules are evaluated on numbers, in float64,
 * with every lambda and d lambda / dt checked.
 *
 * @example
 * isDifferentiableSchedule(new LearnedVDMSchedule());     // true: it has trainableVariables
 * isDifferentiableSchedule(new CosineSchedule());          // false: evaluated on numbers
 * isDifferentiableSchedule(new CosineSchedule(), true);    // true: forced onto tensors
 */
export function isDifferentiableSchedule(
  s: ContinuousSchedule,
  differentiable?: boolean,
): s is DifferentiableLogSNRSchedule {
  if (!hasTensor(s)) return false;
  if (!hasNumeric(s)) return true;
  if (differentiable !== undefined) return differentiable;
  return Array.isArray((s as { trainableVariables?: unknown }).trainableVariables);
}

/** Throws a `LossError` unless `s` looks like a continuous schedule. */
export function assertContinuousSchedule(
  s: unknown,
  what = 'schedule',
): asserts s is ContinuousSchedule {
  if (!hasNumeric(s) && !hasTensor(s)) {
    throw new LossError(
      `${what} must be a continuous schedule with logSNR(t) and dLogSNRdt(t), or logSNRTensor(t); got ${describe(s)}`,
    );
  }
}

/**
 * lambda(t) and d lambda / dt at the given times, as float32 tensors [n]. On the tensor path both stay
 * differentiable with respect to the schedule's variables; on the number path each value is checked.
 */
export function logSNRAndDerivative(
  schedule: ContinuousSchedule,
  t: Float64Array,
  differentiable?: boolean,
): { logSNR: tf.Tensor1D; dLogSNRdt: tf.Tensor1D } {
  if (isDifferentiableSchedule(schedule, differentiable)) {
    return tf.tidy(() => {
      const tt = tf.tensor1d(Float32Array.from(t));
      const logSNR = schedule.logSNRTensor(tt);
      const dLogSNRdt = schedule.dLogSNRdtTensor
        ? schedule.dLogSNRdtTensor(tt)
        : tf.grad((u: tf.Tensor) => tf.sum(schedule.logSNRTensor(u)))(tt);
      return {
        logSNR: tf.reshape(logSNR, [t.length]) as tf.Tensor1D,
        dLogSNRdt: tf.reshape(dLogSNRdt, [t.length]) as tf.Tensor1D,
      };
    });
  }
  if (!hasNumeric(schedule)) {
    throw new LossError('this schedule has no logSNR(t) / dLogSNRdt(t) to evaluate on numbers');
  }
  const l = new Float32Array(t.length);
  const d = new Float32Array(t.length);
  for (let i = 0; i < t.length; i++) {
    const ti = t[i]!;
    const li = schedule.logSNR(ti);
    const di = schedule.dLogSNRdt(ti);
    if (!Number.isFinite(li)) throw new LossError(`schedule.logSNR(${ti}) = ${li} is not finite`);
    if (!(di < 0) || !Number.isFinite(di)) {
      throw new LossError(
        `schedule.dLogSNRdt(${ti}) = ${di}: the logSNR of a schedule must strictly decrease in t (finite, negative derivative)`,
      );
    }
    l[i] = li;
    d[i] = di;
  }
  return { logSNR: tf.tensor1d(l), dLogSNRdt: tf.tensor1d(d) };
}

/**
 * lambda at the given times: float32 [n], differentiable on the tensor path, checked to be finite
 * on the number path.
 */
export function logSNRValues(
  schedule: ContinuousSchedule,
  t: Float64Array,
  differentiable?: boolean,
): tf.Tensor1D {
  if (isDifferentiableSchedule(schedule, differentiable)) {
    return tf.tidy(
      () =>
        tf.reshape(schedule.logSNRTensor(tf.tensor1d(Float32Array.from(t))), [
          t.length,
        ]) as tf.Tensor1D,
    );
  }
  if (!hasNumeric(schedule))
    throw new LossError('this schedule has no logSNR(t) to evaluate on numbers');
  const l = new Float64Array(t.length);
  for (let i = 0; i < t.length; i++) {
    const li = schedule.logSNR(t[i]!);
    if (!Number.isFinite(li)) throw new LossError(`schedule.logSNR(${t[i]}) = ${li} is not finite`);
    l[i] = li;
  }
  return tf.tensor1d(Float32Array.from(l));
}

/**
 * lambda at one time (0 gives lambda_max, 1 gives lambda_min): a number (checked finite) on the number
 * path, a scalar tensor (differentiable) on the tensor path.
 */
export function logSNRAt(
  schedule: ContinuousSchedule,
  t: number,
  differentiable?: boolean,
): number | tf.Scalar {
  if (isDifferentiableSchedule(schedule, differentiable)) {
    return tf.tidy(() => tf.reshape(schedule.logSNRTensor(tf.tensor1d([t])), []) as tf.Scalar);
  }
  if (!hasNumeric(schedule))
    throw new LossError('this schedule has no logSNR(t) to evaluate on numbers');
  const l = schedule.logSNR(t);
  if (!Number.isFinite(l)) {
    throw new LossError(
      `schedule.logSNR(${t}) = ${l} is not finite; the ELBO needs finite endpoints lambda(0) and lambda(1) (pass tMin, e.g. tMin: 1e-5 for score SDE's VP-linear, to start the time range where lambda is finite)`,
    );
  }
  return l;
}

/**
 * The variance-preserving noise level of a logSNR tensor [batch] (`vpLevelFromLogSNRTensor` of
 * `@diffuse/schedules`: alpha^2 = sigmoid(lambda), sigma^2 = sigmoid(-lambda); Luo 2022, eq. 69;
 * VDM eq. 3-4), with lambda reshaped to [batch, 1, ..., 1] so the level broadcasts against data of
 * rank `rank`.
 */
export function perExampleVPLevel(logSNR: tf.Tensor, rank: number): NoiseLevel<tf.Tensor> {
  return tf.tidy(() => {
    const shape = [logSNR.shape[0] ?? 1, ...Array<number>(Math.max(rank - 1, 0)).fill(1)];
    const { alpha, sigma } = vpLevelFromLogSNRTensor(tf.reshape(logSNR, shape));
    return { alpha, sigma };
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
