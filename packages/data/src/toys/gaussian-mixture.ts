import type { Random } from '@diffuse/backend';
import { GaussianMixture, type GaussianMixtureSpec } from '@diffuse/models';
import * as tf from '@tensorflow/tfjs-core';
import { checkCount, checkPositive, type ToyBatch, type ToyDistribution } from './toy.js';

/** A toy distribution that is a Gaussian mixture, with its exact oracle (score, x0, log p_t, ...). */
export interface MixtureToy extends ToyDistribution {
  /** The exact model of this data: `mixture.score(x, level)`, `mixture.logProb(x, level)`, ... */
  readonly mixture: GaussianMixture;
}

/**
 * A Gaussian mixture as a toy data set. Samples come from the mixture itself
 * (`GaussianMixture.sampleWithLabels` in `@diffuse/models`), so the data has an exact score,
 * posterior mean and log-density at every noise level through `mixture`. Labels are the
 * components' classes (all 0 when the mixture has no labels).
 *
 * @example
 * const toy = gaussianMixture({ weights: [0.5, 0.5], means: [[-1, 0], [1, 0]],
 *   covs: [[[0.1, 0], [0, 0.1]], [[0.1, 0], [0, 0.1]]], labels: [0, 1] });
 * const { x, labels } = toy.sample(256, Random.seed(0));
 * const score = toy.mixture.score(x, { alpha: 0.8, sigma: 0.6 }); // exact grad log p_t
 */
export function gaussianMixture(
  spec: GaussianMixtureSpec | GaussianMixture,
  name = 'gaussian-mixture',
): MixtureToy {
  const mixture = spec instanceof GaussianMixture ? spec : new GaussianMixture(spec);
  return {
    name,
    dim: mixture.dim,
    numClasses: Math.max(1, mixture.numClasses),
    mixture,
    sample(n: number, rng: Random): ToyBatch {
      checkCount(n);
      const { x, classes } = mixture.sampleArray(n, rng);
      return {
        x: tf.tensor2d(x, [n, mixture.dim], 'float32'),
        labels: tf.tensor1d(classes, 'int32'),
      };
    },
  };
}

/** Options of `eightGaussians`. */
export interface EightGaussiansOptions {
  /** Radius of the circle the means lie on (default 2). */
  radius?: number;
  /** Standard deviation of each component (default 0.2). */
  std?: number;
}

/**
 * Eight equally weighted isotropic Gaussians with means evenly spaced on a circle (the FFJORD toy
 * set), component k at angle k pi / 4 with class label k. An exact Gaussian mixture, so it carries
 * its oracle. Mean 0, covariance (radius^2 / 2 + std^2) I.
 *
 * @example
 * const toy = eightGaussians();
 * const { x, labels } = toy.sample(800, Random.seed(4)); // labels in 0..7
 */
export function eightGaussians(options: EightGaussiansOptions = {}): MixtureToy {
  const radius = options.radius ?? 2;
  const std = options.std ?? 0.2;
  checkPositive('eightGaussians radius', radius);
  checkPositive('eightGaussians std', std);
  const angles = Array.from({ length: 8 }, (_, k) => (k * Math.PI) / 4);
  return gaussianMixture(
    {
      weights: angles.map(() => 1 / 8),
      means: angles.map((a) => [radius * Math.cos(a), radius * Math.sin(a)]),
      covs: angles.map(() => [
        [std * std, 0],
        [0, std * std],
      ]),
      labels: angles.map((_, k) => k),
    },
    'eight-gaussians',
  );
}
