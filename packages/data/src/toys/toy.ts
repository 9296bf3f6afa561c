/**
 * The shape every toy distribution shares, and the helper that turns a per-point recipe into one.
 *
 * Points are drawn in float64 JavaScript from a seeded `Random` (so the same seed gives the same
 * points on every backend) and uploaded once as a float32 tensor.
 */

import { InvalidArgumentError, type Random } from '@diffuse/backend';
import * as tf from '@tensorflow/tfjs-core';

/** A batch drawn from a toy distribution: points [n, dim] (float32) and class labels [n] (int32). */
export interface ToyBatch {
  x: tf.Tensor2D;
  labels: tf.Tensor1D;
}

/** A seeded sampler of low-dimensional data with class labels. */
export interface ToyDistribution {
  /** Registry name, e.g. `two-moons`. */
  readonly name: string;
  /** Dimension of one point. */
  readonly dim: number;
  /** Number of class labels (1 when the distribution has no classes: every label is 0). */
  readonly numClasses: number;
  /** Draws `n` points and their labels. The caller owns (and disposes) both tensors. */
  sample(n: number, rng: Random): ToyBatch;
}

/** Validates a sample count. */
export function checkCount(n: number): void {
  if (!Number.isInteger(n) || n < 1) {
    throw new InvalidArgumentError(`sample count must be a positive integer, got ${n}`);
  }
}

/** Validates a non-negative finite option. */
export function checkNonNegative(name: string, v: number): void {
  if (!(Number.isFinite(v) && v >= 0)) {
    throw new InvalidArgumentError(`${name} must be a finite number >= 0, got ${v}`);
  }
}

/** Validates a positive finite option. */
export function checkPositive(name: string, v: number): void {
  if (!(Number.isFinite(v) && v > 0)) {
    throw new InvalidArgumentError(`${name} must be a finite number > 0, got ${v}`);
  }
}

/**
 * A 2-D toy distribution from a recipe that draws one point: `draw(rng, out)` writes x and y into
 * `out[0]`, `out[1]` and returns the point's class label.
 *
 * @example
 * const disk = pointwiseToy('unit-square', 1, (rng, out) => { out[0] = rng.uniform01(); out[1] = rng.uniform01(); return 0; });
 * const { x, labels } = disk.sample(100, Random.seed(0));
 */
export function pointwiseToy(
  name: string,
  numClasses: number,
  draw: (rng: Random, out: Float64Array) => number,
): ToyDistribution {
  return {
    name,
    dim: 2,
    numClasses,
    sample(n: number, rng: Random): ToyBatch {
      checkCount(n);
      const xs = new Float32Array(2 * n);
      const ys = new Int32Array(n);
      const p = new Float64Array(2);
      for (let i = 0; i < n; i++) {
        ys[i] = draw(rng, p);
        xs[2 * i] = p[0]!;
        xs[2 * i + 1] = p[1]!;
      }
      return { x: tf.tensor2d(xs, [n, 2], 'float32'), labels: tf.tensor1d(ys, 'int32') };
    },
  };
}
