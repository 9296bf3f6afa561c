/**
 * The 2-D data the playground works on: a toy distribution from `@diffuse/data`, a fixed seeded set
 * of its points, and an exact oracle of it.
 *
 * Mixture toys (eight Gaussians) carry their exact oracle. For the others (two moons, swiss roll,
 * ...) the oracle is exact for the *empirical* distribution of the shown points: a mixture of narrow
 * Gaussians centred on them, whose posterior mean E[x0 | x_t] is the softmax-weighted average of the
 * points. It is the denoiser a network would converge to if it memorised these points, so it is the
 * right "ground truth" to put beside the trained model.
 */
import { Random } from '@diffuse/backend';
import { gaussianMixture, TOYS, type ToyDistribution, toyDistribution } from '@diffuse/data';
import type { GaussianMixture } from '@diffuse/models';
import * as tf from '@tensorflow/tfjs-core';

export const DATASETS = Object.keys(TOYS);

/** Variance of each narrow component of an empirical oracle. */
const EMPIRICAL_VAR = 0.003;

export interface PlaygroundData {
  name: string;
  toy: ToyDistribution;
  /** Shown points, flat [n*2]. */
  points: Float32Array;
  labels: Int32Array;
  n: number;
  /** Exact denoiser of the data (of the true distribution, or of the shown points). */
  oracle: GaussianMixture;
  /** True when `oracle` is the true distribution's, false when it is the empirical one. */
  exactOracle: boolean;
}

/** Draws `n` seeded points of the named toy and builds its oracle. */
export async function loadDataset(
  name: string,
  n = 512,
  oracleComponents = n,
): Promise<PlaygroundData> {
  const toy = toyDistribution(name);
  const { x, labels } = toy.sample(n, Random.seed(2022));
  const points = (await x.data()) as Float32Array;
  const labs = (await labels.data()) as Int32Array;
  x.dispose();
  labels.dispose();
  let oracle: GaussianMixture;
  let exactOracle = true;
  if ('mixture' in toy) {
    oracle = (toy as { mixture: GaussianMixture }).mixture;
  } else {
    exactOracle = false;
    const m = Math.min(n, oracleComponents);
    oracle = gaussianMixture({
      weights: Array.from({ length: m }, () => 1 / m),
      means: Array.from({ length: m }, (_, i) => [points[2 * i]!, points[2 * i + 1]!]),
      covs: Array.from({ length: m }, () => [
        [EMPIRICAL_VAR, 0],
        [0, EMPIRICAL_VAR],
      ]),
    }).mixture;
  }
  return {
    name,
    toy,
    points: Float32Array.from(points),
    labels: Int32Array.from(labs),
    n,
    oracle,
    exactOracle,
  };
}

/** The shown points as a tensor [n, 2] (the caller disposes it). */
export function pointsTensor(d: PlaygroundData): tf.Tensor2D {
  return tf.tensor2d(d.points, [d.n, 2]);
}
