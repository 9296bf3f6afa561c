/** Fixtures shared by the package's tests (Node and the browser page). */
import { Random } from '@diffuse/backend';
import * as tf from '@tensorflow/tfjs-core';

/**
 * Every parameter to N(0, std^2) from a seeded stream, so zero-initialised output layers do not
 * hide mistakes in an export.
 */
export function randomize(net: { params: tf.Variable[] }, seed: number, std = 0.2): void {
  const rng = Random.seed(seed);
  for (const p of net.params) {
    const v = tf.tidy(() => tf.mul(rng.normal(p.shape), std));
    p.assign(v);
    v.dispose();
  }
}
