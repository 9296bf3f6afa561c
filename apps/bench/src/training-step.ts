/**
 * One Adam step of epsilon-prediction denoising training, the workload the training suite times.
 *
 * Loss (Ho et al. 2020, eq. 14; Luo 2022, eq. 130): E_{t, x0, eps} || eps_theta(alpha_t x0 + sigma_t eps, t) - eps ||^2,
 * with t ~ U(0, 1) under the cosine schedule alpha_t = cos(pi t / 2), sigma_t = sin(pi t / 2).
 * Data are fixed standard-normal examples held in memory: the suite measures speed, not learning.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { BenchModel } from './models.js';

export interface TrainStep {
  /** Runs one Adam step and returns its loss (read back, so the step has finished). */
  step(): Promise<number>;
  dispose(): void;
}

export function createTrainStep(
  model: BenchModel,
  batch: number,
  seed: number,
  learningRate = 1e-4,
): TrainStep {
  const optimizer = tf.train.adam(learningRate);
  const x0 = tf.randomNormal([batch, ...model.dataShape], 0, 1, 'float32', seed);
  const levelShape = [batch, ...model.dataShape.map(() => 1)];
  return {
    async step() {
      const cost = optimizer.minimize(
        () =>
          tf.tidy(() => {
            const t = tf.randomUniform(levelShape, 0.001, 0.999);
            const alpha = tf.cos(tf.mul(t, Math.PI / 2));
            const sigma = tf.sin(tf.mul(t, Math.PI / 2));
            const eps = tf.randomNormal(x0.shape);
            const xt = tf.add(tf.mul(alpha, x0), tf.mul(sigma, eps));
            const pred = model.denoiser.predict(xt, { alpha, sigma });
            return tf.mean(tf.square(tf.sub(pred, eps))) as tf.Scalar;
          }),
        true,
        model.variables,
      );
      if (cost === null) throw new Error('optimizer.minimize returned no cost');
      const v = (await cost.data())[0]!;
      cost.dispose();
      return v;
    },
    dispose() {
      optimizer.dispose();
      x0.dispose();
    },
  };
}
