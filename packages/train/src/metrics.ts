/**
 * Sample-quality metrics for low-dimensional data, in float64 JavaScript.
 */
import { InvalidArgumentError } from '@diffuse/backend';

/**
 * The (squared) energy distance between two samples of points in R^d (Szekely & Rizzo 2013,
 * "Energy statistics", eq. 2.1), the V-statistic:
 *
 *     D^2(X, Y) = 2 E||X - Y|| - E||X - X'|| - E||Y - Y'||
 *
 * It is >= 0 and 0 only when the distributions agree; for two samples of one distribution it is
 * positive only by sampling error (the baseline a model's samples are compared against).
 * `x` and `y` are row-major [n, d] and [m, d]. O(n m d).
 *
 * @example
 * energyDistance(Float64Array.of(0, 0, 1, 1), Float64Array.of(0, 1, 1, 0), 2);
 */
export function energyDistance(x: ArrayLike<number>, y: ArrayLike<number>, d: number): number {
  if (!Number.isInteger(d) || d < 1)
    throw new InvalidArgumentError(`dimension must be a positive integer, got ${d}`);
  if (x.length % d !== 0 || y.length % d !== 0 || x.length === 0 || y.length === 0) {
    throw new InvalidArgumentError(
      `samples must be non-empty [n, ${d}] arrays, got lengths ${x.length} and ${y.length}`,
    );
  }
  const meanDist = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
    const n = a.length / d;
    const m = b.length / d;
    let s = 0;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < m; j++) {
        let q = 0;
        for (let k = 0; k < d; k++) {
          const t = a[i * d + k]! - b[j * d + k]!;
          q += t * t;
        }
        s += Math.sqrt(q);
      }
    }
    return s / (n * m);
  };
  return 2 * meanDist(x, y) - meanDist(x, x) - meanDist(y, y);
}
