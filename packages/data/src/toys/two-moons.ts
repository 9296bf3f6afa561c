import { checkNonNegative, pointwiseToy, type ToyDistribution } from './toy.js';

/** Options of `twoMoons`. */
export interface TwoMoonsOptions {
  /** Standard deviation of the isotropic Gaussian noise added to each point (default 0.1). */
  noise?: number;
}

/**
 * Two interleaving half circles (scikit-learn's `make_moons`), with the moon as the class label.
 *
 * With t ~ U[0, pi] and a fair coin for the label:
 *   label 0: (cos t, sin t),   label 1: (1 - cos t, 1/2 - sin t),   then + N(0, noise^2 I).
 * Closed-form moments: mean (1/2, 1/4); Var x = 3/4 + noise^2; Var y = 9/16 - 1/pi + noise^2;
 * Cov(x, y) = 1/8 - 1/pi.
 *
 * @example
 * const { x, labels } = twoMoons({ noise: 0.05 }).sample(512, Random.seed(0)); // x: [512, 2]
 */
export function twoMoons(options: TwoMoonsOptions = {}): ToyDistribution {
  const noise = options.noise ?? 0.1;
  checkNonNegative('twoMoons noise', noise);
  return pointwiseToy('two-moons', 2, (rng, out) => {
    const label = rng.uniform01() < 0.5 ? 0 : 1;
    const t = Math.PI * rng.uniform01();
    const c = Math.cos(t);
    const s = Math.sin(t);
    out[0] = (label === 0 ? c : 1 - c) + noise * rng.standardNormal();
    out[1] = (label === 0 ? s : 0.5 - s) + noise * rng.standardNormal();
    return label;
  });
}
