/**
 * The one finiteness check of a run: one small boolean vector (a flag per named tensor) read back at
 * once, so `sample()` checks the state and the model output of a call, and a scheduler's `step` its
 * inputs (and on the last step its output), for the price of the single readback they already paid.
 */
import * as tf from '@tensorflow/tfjs-core';
import { NonFiniteError } from './errors.js';

/** [all(isFinite(t_0)), all(isFinite(t_1)), ...] as a bool tensor (the caller disposes it). */
export function finiteFlags(ts: readonly tf.Tensor[]): tf.Tensor {
  return tf.tidy(() => tf.stack(ts.map((t) => tf.all(tf.isFinite(t)))));
}

/**
 * Throws `NonFiniteError` naming the first of `named` whose tensor holds NaN or infinity, with `step`:
 * one asynchronous readback for all of them.
 *
 * @example
 * await assertAllFinite([['the state x', x], ['the model output', out]], 3);
 */
export async function assertAllFinite(
  named: readonly (readonly [string, tf.Tensor])[],
  step: number,
): Promise<void> {
  const flags = finiteFlags(named.map(([, t]) => t));
  const v = await flags.data();
  flags.dispose();
  const bad = named.findIndex((_, j) => !v[j]);
  if (bad >= 0) throw new NonFiniteError(named[bad]![0], step);
}
