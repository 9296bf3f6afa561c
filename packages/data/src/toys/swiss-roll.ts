import { checkNonNegative, checkPositive, pointwiseToy, type ToyDistribution } from './toy.js';

/** Options of `swissRoll`. */
export interface SwissRollOptions {
  /** Standard deviation of the Gaussian noise added after scaling (default 0.05). */
  noise?: number;
  /** Factor applied to the roll, so the points lie in about [-1, 1]^2 (default 1/15). */
  scale?: number;
}

/**
 * The 2-D Swiss roll (the (x, z) plane of scikit-learn's `make_swiss_roll`), one class.
 *
 *   t = 1.5 pi (1 + 2u),  u ~ U[0, 1];   x = scale * (t cos t, t sin t) + N(0, noise^2 I).
 *
 * @example
 * const { x } = swissRoll().sample(1000, Random.seed(1));
 */
export function swissRoll(options: SwissRollOptions = {}): ToyDistribution {
  const noise = options.noise ?? 0.05;
  const scale = options.scale ?? 1 / 15;
  checkNonNegative('swissRoll noise', noise);
  checkPositive('swissRoll scale', scale);
  return pointwiseToy('swiss-roll', 1, (rng, out) => {
    const t = 1.5 * Math.PI * (1 + 2 * rng.uniform01());
    out[0] = scale * t * Math.cos(t) + noise * rng.standardNormal();
    out[1] = scale * t * Math.sin(t) + noise * rng.standardNormal();
    return 0;
  });
}
