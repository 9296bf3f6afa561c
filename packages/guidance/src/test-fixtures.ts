/** Shared fixtures for this package's tests (not exported from the package). */
import type { Conditioning, Denoiser } from '@diffuse/models';
import { GaussianMixture } from '@diffuse/models';
import type { NoiseLevel, Scalar } from '@diffuse/schedules';
import type * as tf from '@tensorflow/tfjs-core';

/**
 * A 2-D class-conditional mixture with 3 classes and 5 components (full covariances), the classes
 * overlapping enough that the exact classifier is uncertain over much of the plane.
 */
export function threeClassMixture(): GaussianMixture {
  return new GaussianMixture({
    weights: [0.2, 0.15, 0.25, 0.2, 0.2],
    means: [
      [-1, 0.2],
      [-0.4, 1],
      [0.8, 0.6],
      [0.3, -0.9],
      [1.1, -0.4],
    ],
    covs: [
      [
        [0.3, 0.1],
        [0.1, 0.2],
      ],
      [
        [0.15, -0.05],
        [-0.05, 0.25],
      ],
      [
        [0.2, 0],
        [0, 0.3],
      ],
      [
        [0.35, 0.12],
        [0.12, 0.18],
      ],
      [
        [0.1, 0.02],
        [0.02, 0.2],
      ],
    ],
    labels: [0, 0, 1, 2, 1],
  });
}

/** Records every call a denoiser receives (batch size and labels), to count forward passes. */
export interface Spy extends Denoiser {
  calls: { batch: number; labels: number[] | undefined; level: NoiseLevel<Scalar> }[];
}

/** Wraps `inner` so each `predict` call is recorded. */
export function spy(inner: Denoiser): Spy {
  const calls: Spy['calls'] = [];
  return {
    prediction: inner.prediction,
    ...(inner.shape ? { shape: inner.shape } : {}),
    ...(inner.numClasses !== undefined ? { numClasses: inner.numClasses } : {}),
    calls,
    predict(x: tf.Tensor, level: NoiseLevel<Scalar>, cond?: Conditioning): tf.Tensor {
      calls.push({
        batch: x.shape[0]!,
        labels: cond?.labels ? Array.from(cond.labels.dataSync()) : undefined,
        level,
      });
      return inner.predict(x, level, cond);
    },
  };
}
