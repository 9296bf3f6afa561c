/** Input checks shared by the guidance wrappers: each throws a `GuidanceError` that names the argument. */
import * as tf from '@tensorflow/tfjs-core';
import { GuidanceError } from './errors.js';

/** What people coming from diffusers or the papers type instead of this package's option names. */
const SPELLINGS: Record<string, string> = {
  guidance_scale:
    "guidanceScale (diffusers' guidance_scale s: u + s (c - u)) or w (the paper's weight, s = 1 + w)",
  cfg_scale:
    "guidanceScale (diffusers' guidance_scale s: u + s (c - u)) or w (the paper's weight, s = 1 + w)",
  cfgScale:
    "guidanceScale (diffusers' guidance_scale s: u + s (c - u)) or w (the paper's weight, s = 1 + w)",
  scale:
    "guidanceScale (diffusers' guidance_scale s: u + s (c - u)) or w (the paper's weight, s = 1 + w)",
  weight: "w (the paper's guidance weight) or guidanceScale (diffusers')",
  guidance_rescale: 'rescale',
  guidanceRescale: 'rescale',
  negative_labels: 'negativeLabels',
  null_label: 'nullLabel',
};

/**
 * Throws unless `options` is a plain object whose keys are all in `known`; an unknown key names
 * itself (with the right spelling for diffusers' names such as `guidance_scale`).
 */
export function assertOptions(fn: string, options: unknown, known: readonly string[]): void {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new GuidanceError(
      `${fn} options must be an object, got ${Array.isArray(options) ? 'an array' : String(options)}`,
    );
  }
  for (const k of Object.keys(options as object)) {
    if (known.includes(k)) continue;
    const hint = SPELLINGS[k] ? `; did you mean ${SPELLINGS[k]}?` : '';
    throw new GuidanceError(`${fn} has no option '${k}'${hint} (its options: ${known.join(', ')})`);
  }
}

/** Throws unless `value` is undefined or a boolean. */
export function assertOptionalBoolean(name: string, value: unknown): void {
  if (value !== undefined && typeof value !== 'boolean')
    throw new GuidanceError(`${name} must be a boolean, got ${String(value)}`);
}

/** Throws unless `value` is a finite number. */
export function assertFinite(name: string, value: unknown): asserts value is number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new GuidanceError(`${name} must be a finite number, got ${String(value)}`);
  }
}

/** Throws unless `value` is a finite number in [lo, hi]. */
export function assertInRange(
  name: string,
  value: unknown,
  lo: number,
  hi: number,
): asserts value is number {
  assertFinite(name, value);
  if (value < lo || value > hi) {
    throw new GuidanceError(`${name} must lie in [${lo}, ${hi}], got ${String(value)}`);
  }
}

/** Throws unless `label` is an integer in [0, limit). */
export function assertLabel(
  name: string,
  label: unknown,
  limit: number | undefined,
): asserts label is number {
  if (typeof label !== 'number' || !Number.isInteger(label) || label < 0) {
    throw new GuidanceError(
      `${name} must be a non-negative integer class label, got ${String(label)}`,
    );
  }
  if (limit !== undefined && label >= limit) {
    throw new GuidanceError(
      `${name} ${label} is out of range: the model accepts labels 0..${limit - 1}`,
    );
  }
}

/**
 * Label tensors already checked, with the bound they were checked against. Samplers pass the same
 * `cond.labels` tensor at every step, so its values are read back once, not once per step.
 */
const checkedLabels = new WeakMap<tf.Tensor, number>();

/**
 * Throws unless `labels` is an int32 tensor of shape [batch] whose values lie in [0, limit)
 * (`limit` undefined: only non-negative). The values are read once per tensor and cached.
 */
export function assertLabelTensor(
  name: string,
  labels: unknown,
  batch: number,
  limit: number | undefined,
): asserts labels is tf.Tensor {
  if (!(labels instanceof tf.Tensor)) {
    throw new GuidanceError(
      `${name} must be an int32 tensor of shape [${batch}], got ${String(labels)}`,
    );
  }
  if (labels.isDisposed) throw new GuidanceError(`${name} has been disposed`);
  if (labels.dtype !== 'int32' || labels.rank !== 1 || labels.shape[0] !== batch) {
    throw new GuidanceError(
      `${name} must be an int32 tensor of shape [${batch}] (one label per example), got ${labels.dtype} [${labels.shape.join(', ')}]`,
    );
  }
  const bound = limit ?? Number.POSITIVE_INFINITY;
  const checked = checkedLabels.get(labels);
  if (checked !== undefined && checked <= bound) return;
  const values = labels.dataSync();
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v < 0 || v >= bound) {
      throw new GuidanceError(
        `${name}[${i}] = ${v} is out of range: the model accepts labels 0..${bound - 1}`,
      );
    }
  }
  checkedLabels.set(labels, bound);
}

/** The batch size of `x`, with a clear error for a scalar. */
export function batchOf(x: tf.Tensor): number {
  if (x.rank < 1) throw new GuidanceError(`x must have a batch axis, got a scalar`);
  return x.shape[0]!;
}
