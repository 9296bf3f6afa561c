import { checkNonNegative, checkPositive, pointwiseToy, type ToyDistribution } from './toy.js';

/** Options of `spirals`. */
export interface SpiralsOptions {
  /** Turns of each arm (default 1.5, as in FFJORD's `2spirals`). */
  turns?: number;
  /** Standard deviation of the Gaussian noise (default 0.1). */
  noise?: number;
  /** Factor applied to the arms (default 1/3). */
  scale?: number;
}

/**
 * Two interleaved spiral arms (FFJORD's `2spirals`, without its uniform jitter), the arm as the
 * class label. With n = sqrt(u) * 2 pi * turns (so points are uniform along the arc's area),
 *   arm 0: scale * (-n cos n, n sin n),   arm 1: the same point reflected through the origin,
 * then + N(0, noise^2 I).
 *
 * @example
 * const { x, labels } = spirals().sample(1000, Random.seed(3)); // labels in {0, 1}
 */
export function spirals(options: SpiralsOptions = {}): ToyDistribution {
  const turns = options.turns ?? 1.5;
  const noise = options.noise ?? 0.1;
  const scale = options.scale ?? 1 / 3;
  checkPositive('spirals turns', turns);
  checkNonNegative('spirals noise', noise);
  checkPositive('spirals scale', scale);
  return pointwiseToy('spirals', 2, (rng, out) => {
    const label = rng.uniform01() < 0.5 ? 0 : 1;
    const n = Math.sqrt(rng.uniform01()) * 2 * Math.PI * turns;
    const sign = label === 0 ? 1 : -1;
    out[0] = sign * scale * -n * Math.cos(n) + noise * rng.standardNormal();
    out[1] = sign * scale * n * Math.sin(n) + noise * rng.standardNormal();
    return label;
  });
}
