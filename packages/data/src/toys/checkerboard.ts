import { InvalidArgumentError } from '@diffuse/backend';
import { checkPositive, pointwiseToy, type ToyDistribution } from './toy.js';

/** Options of `checkerboard`. */
export interface CheckerboardOptions {
  /** Squares per side (an even integer >= 2; default 4). */
  squares?: number;
  /** The board covers [-halfWidth, halfWidth]^2 (default 2). */
  halfWidth?: number;
}

/**
 * Uniform density on the dark squares of a `squares` x `squares` checkerboard on
 * [-halfWidth, halfWidth]^2 (the FFJORD toy set). Square (i, j), counted from the bottom left, is dark
 * when i + j is even. One class.
 *
 * Each coordinate is marginally uniform on [-L, L] (every row and column is half dark), so the mean
 * is 0 and Var x = Var y = L^2 / 3.
 *
 * @example
 * const { x } = checkerboard({ squares: 4 }).sample(2048, Random.seed(2));
 */
export function checkerboard(options: CheckerboardOptions = {}): ToyDistribution {
  const k = options.squares ?? 4;
  const half = options.halfWidth ?? 2;
  if (!Number.isInteger(k) || k < 2 || k % 2 !== 0) {
    throw new InvalidArgumentError(`checkerboard squares must be an even integer >= 2, got ${k}`);
  }
  checkPositive('checkerboard halfWidth', half);
  const side = (2 * half) / k;
  return pointwiseToy('checkerboard', 1, (rng, out) => {
    const i = rng.int(k);
    // the dark rows of column i are j = (i mod 2) + 2m, m = 0..k/2-1
    const j = (i % 2) + 2 * rng.int(k / 2);
    out[0] = -half + side * (i + rng.uniform01());
    out[1] = -half + side * (j + rng.uniform01());
    return 0;
  });
}
