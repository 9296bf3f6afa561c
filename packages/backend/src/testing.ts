/** Test and debugging helpers used across the toolkit: leak checks and readbacks. */
import * as tf from '@tensorflow/tfjs-core';
import { TensorLeakError } from './errors.js';

/** The number of tensors the engine holds right now. */
export function liveTensors(): number {
  return tf.memory().numTensors;
}

function countTensors(value: unknown, seen = new Set<unknown>()): number {
  if (value === null || typeof value !== 'object' || seen.has(value)) return 0;
  seen.add(value);
  if (value instanceof tf.Tensor) return value.isDisposed ? 0 : 1;
  let n = 0;
  for (const v of Array.isArray(value) ? value : Object.values(value)) n += countTensors(v, seen);
  return n;
}

/**
 * Runs `fn` and throws a `TensorLeakError` if it left more tensors alive than it returned.
 * Tensors in the result (also nested in arrays or plain objects) are the caller's and not counted.
 *
 * @example
 * const y = await assertNoLeaks(() => tf.tidy(() => tf.add(x, 1)), 'add');
 */
export async function assertNoLeaks<T>(fn: () => T | Promise<T>, label = 'block'): Promise<T> {
  const before = liveTensors();
  const result = await fn();
  const leaked = liveTensors() - before - countTensors(result);
  if (leaked > 0) throw new TensorLeakError(label, leaked);
  return result;
}

/** Synchronous variant of `assertNoLeaks`. */
export function assertNoLeaksSync<T>(fn: () => T, label = 'block'): T {
  const before = liveTensors();
  const result = fn();
  const leaked = liveTensors() - before - countTensors(result);
  if (leaked > 0) throw new TensorLeakError(label, leaked);
  return result;
}

/**
 * Reads a tensor back as a Float32Array (asynchronously, so webgl/webgpu do not block).
 * Disposes the tensor when `dispose` is true.
 */
export async function readFloat32(t: tf.Tensor, dispose = false): Promise<Float32Array> {
  try {
    const data = await t.data();
    return data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>);
  } finally {
    if (dispose) t.dispose();
  }
}

/** Reads a tensor back as a nested JS array (rank >= 1) or a number (rank 0). */
export async function readArray(t: tf.Tensor, dispose = false): Promise<unknown> {
  try {
    return await t.array();
  } finally {
    if (dispose) t.dispose();
  }
}

/** Largest absolute difference between two arrays of equal length. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`length mismatch: ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
