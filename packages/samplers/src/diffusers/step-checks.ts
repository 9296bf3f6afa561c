/**
 * The argument and finiteness checks every scheduler's `step` shares: typed errors for wrong
 * arguments, and one readback per step for NaN / infinity in the tensors it is given (and returns).
 */
import * as tf from '@tensorflow/tfjs-core';
import { NonFiniteError, SamplerError } from '../errors.js';
import { finiteFlags } from '../finite.js';

/** Duck-typed: a tfjs tensor that is still alive (tensors of another tfjs copy count too). */
function isTensor(t: unknown): t is tf.Tensor {
  const x = t as Partial<tf.Tensor> | null;
  return (
    x != null &&
    typeof x === 'object' &&
    Array.isArray(x.shape) &&
    typeof x.dtype === 'string' &&
    typeof x.dispose === 'function'
  );
}

/** Typed errors for `step`'s arguments (wrong types, disposed tensors, unknown or invalid options). */
export function checkStepArguments(
  className: string,
  modelOutput: unknown,
  sample: unknown,
  options: unknown,
  k: number,
  t?: unknown,
): void {
  if (t !== undefined && typeof t !== 'number')
    throw new SamplerError(`${className}.step: the timestep must be a number, got ${typeof t}`, k);
  for (const [name, t] of [
    ['modelOutput', modelOutput],
    ['sample', sample],
  ] as const) {
    if (!isTensor(t)) {
      throw new SamplerError(
        `${className}.step: ${name} must be a tensor, got ${Array.isArray(t) ? 'an array' : typeof t}`,
        k,
      );
    }
    if (t.isDisposed) throw new SamplerError(`${className}.step: ${name} has been disposed`, k);
  }
  if (options === null || typeof options !== 'object' || Array.isArray(options))
    throw new SamplerError(`${className}.step: options must be an object`, k);
  const o = options as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!['noise', 'eta', 'order'].includes(key))
      throw new SamplerError(`${className}.step has no option '${key}'`, k);
  }
  if (o.noise !== undefined && !isTensor(o.noise))
    throw new SamplerError(`${className}.step: options.noise must be a tensor`, k);
  if (o.eta !== undefined && (typeof o.eta !== 'number' || !Number.isFinite(o.eta) || o.eta < 0)) {
    throw new SamplerError(
      `${className}.step: eta must be a finite number >= 0 (> 1 saturates at a full re-noise, as k-diffusion), got ${String(o.eta)}`,
      k,
    );
  }
  if (
    o.order !== undefined &&
    (typeof o.order !== 'number' || !Number.isInteger(o.order) || o.order < 1)
  )
    throw new SamplerError(
      `${className}.step: order must be a positive integer, got ${String(o.order)}`,
      k,
    );
}

/**
 * Throws `NonFiniteError` naming the first of `named` that holds NaN or infinity: one readback of a
 * small boolean vector for all of them (the scheduler's step is synchronous, hence `dataSync`).
 */
export function assertFiniteSync(
  named: readonly (readonly [string, tf.Tensor])[],
  step: number,
): void {
  const flags = finiteFlags(named.map(([, t]) => t));
  const v = flags.dataSync();
  flags.dispose();
  const bad = named.findIndex((_, j) => !v[j]);
  if (bad >= 0) throw new NonFiniteError(named[bad]![0], step);
}

/**
 * The last step's check (`checkFinite`): the step's inputs in `named` and the returned `prevSample`,
 * the final state, all finite in one readback; on a `NonFiniteError` the step's `outputs` are disposed
 * first, as the caller never receives them.
 */
export function assertFinalStepFinite(
  className: string,
  named: [string, tf.Tensor][],
  prevSample: tf.Tensor,
  outputs: readonly tf.Tensor[],
  t: number,
  step: number,
): void {
  named.push([`${className}: prevSample, the final state after timestep ${t}`, prevSample]);
  try {
    assertFiniteSync(named, step);
  } catch (e) {
    tf.dispose([...outputs]);
    throw e;
  }
}
