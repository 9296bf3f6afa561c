/**
 * Brownian-path step noise: k-diffusion's / diffusers' `BrownianTreeNoiseSampler` in distribution.
 */
import type { Random } from '@diffuse/backend';
import * as tf from '@tensorflow/tfjs-core';
import type { NoiseSource } from './run.js';

/** A `NoiseSource` that holds tensors: call `dispose()` when the run is over. */
export interface BrownianNoise extends NoiseSource {
  /** Frees the path's stored values. */
  dispose(): void;
}

/**
 * Step noise from one Brownian motion W over sigma: the request (sigma, sigmaNext) gets the normalised
 * increment (W(sigmaNext) - W(sigma)) / sqrt(|sigmaNext - sigma|), N(0, I) on its own, and correlated
 * with the other requests as the intervals overlap. This is what k-diffusion's (and diffusers')
 * `BrownianTreeNoiseSampler` gives in distribution (Kidger et al. 2021, "Efficient and accurate gradients
 * for neural SDEs", the Brownian interval; not torchsde's values): DPM-Solver++ SDE asks for
 * (sigma, sigma_mid) and then (sigma, sigma_next) in one step, two draws with correlation
 * sqrt((sigma - sigma_mid) / (sigma - sigma_next)); disjoint intervals are independent. W is fixed at
 * every level asked for; a new level between two known ones is drawn from the Brownian bridge
 * W(l) + (c - l) / (r - l) (W(r) - W(l)) + sqrt((c - l)(r - c) / (r - l)) z, one outside them from an
 * independent increment. The stored values are tensors of the state's shape (one per level asked for):
 * `dispose()` them when the run is over. A zero-length request gets fresh N(0, I) noise.
 *
 * @example
 * const noise = brownianNoise(Random.seed(3));
 * try {
 *   x = await sample(denoiser, { sampler: 'dpmpp_sde', steps: 20, shape: [64, 2], seed: 1, noiseSampler: noise });
 * } finally {
 *   noise.dispose();
 * }
 */
export function brownianNoise(rng: Random): BrownianNoise {
  const points = new Map<number, tf.Tensor>();
  const at = (c: number, shape: readonly number[]): tf.Tensor => {
    const known = points.get(c);
    if (known) return known;
    let lo = Number.NEGATIVE_INFINITY;
    let hi = Number.POSITIVE_INFINITY;
    for (const p of points.keys()) {
      if (p < c && p > lo) lo = p;
      if (p > c && p < hi) hi = p;
    }
    let w: tf.Tensor;
    if (points.size === 0) w = tf.zeros([...shape]);
    else {
      const z = rng.normal(shape);
      w = tf.tidy(() => {
        if (Number.isFinite(lo) && Number.isFinite(hi)) {
          const [wl, wr] = [points.get(lo)!, points.get(hi)!];
          const f = (c - lo) / (hi - lo);
          const sd = Math.sqrt(((c - lo) * (hi - c)) / (hi - lo));
          return tf.add(tf.add(wl, tf.mul(tf.sub(wr, wl), f)), tf.mul(z, sd));
        }
        const [p, d] = Number.isFinite(lo) ? [lo, c - lo] : [hi, hi - c];
        return tf.add(points.get(p)!, tf.mul(z, Math.sqrt(d)));
      });
      z.dispose();
    }
    points.set(c, tf.keep(w));
    return w;
  };
  const source = ((sigma: number, sigmaNext: number, shape: readonly number[]) => {
    if (sigma === sigmaNext) return rng.normal(shape);
    const a = at(sigma, shape);
    const b = at(sigmaNext, shape);
    return tf.tidy(() => tf.div(tf.sub(b, a), Math.sqrt(Math.abs(sigmaNext - sigma))));
  }) as BrownianNoise;
  source.dispose = () => {
    tf.dispose([...points.values()]);
    points.clear();
  };
  return source;
}
