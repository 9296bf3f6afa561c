/**
 * Small numeric building blocks that reproduce, bit for bit where it matters, how the reference
 * implementations (PyTorch, NumPy) build their tables, so schedules made here agree with diffusers
 * and k-diffusion to float rounding. Internal to the package except where re-exported.
 */
import { ScheduleError } from './errors.js';

const f32 = Math.fround;

/** fma(a, b, c) rounded to float32: a*b is exact in float64 for float32 inputs. */
function fma32(a: number, b: number, c: number): number {
  return f32(a * b + c);
}

/**
 * `torch.linspace(start, end, n, dtype=torch.float32)` on CPU, bit for bit (PyTorch 1.13, x86 AVX2):
 * the two halves are filled from each end (`start + step*i` below n/2, `end - step*(n-1-i)` above),
 * in vectors of 8 whose first lane is computed with a fused multiply-add and the other lanes as
 * `base + j*step`, two vectors per iteration, the tail scalar. This is why diffusers' `linear` and
 * `scaled_linear` betas are not exactly `start + i*(end-start)/(n-1)`.
 *
 * @example
 * torchLinspaceFloat32(1e-4, 0.02, 1000)[999]; // 0.019999999552965164 (float32 of 0.02)
 */
export function torchLinspaceFloat32(start: number, end: number, n: number): Float64Array {
  assertCount(n);
  const out = new Float64Array(n);
  if (n === 1) {
    out[0] = f32(start);
    return out;
  }
  const a = f32(start);
  const b = f32(end);
  const step = f32(f32(b - a) / (n - 1));
  const half = Math.floor(n / 2);
  const scalar = (i: number): number => (i < half ? fma32(step, i, a) : fma32(-step, n - 1 - i, b));
  const W = 8;
  let i = 0;
  // PyTorch's vectorized_loop: two vectors of 8 per iteration while 16 fit, then the scalar tail.
  // (For n > 32768, at::parallel_for would split the range across threads; not reproduced.)
  for (; i <= n - 2 * W; i += 2 * W) {
    for (let v = i; v < i + 2 * W; v += W) {
      const base = scalar(v);
      for (let j = 0; j < W; j++) out[v + j] = f32(base + f32(j * step));
    }
  }
  for (; i < n; i++) out[i] = scalar(i);
  return out;
}

/**
 * `torch.linspace(start, end, n)` in float64 (k-diffusion sets the default dtype to float64):
 * the halves are filled from each end, `start + step*i` below n/2 and `end - step*(n-1-i)` above.
 *
 * @example
 * torchLinspace(0, 1, 3); // [0, 0.5, 1]
 */
export function torchLinspace(start: number, end: number, n: number): Float64Array {
  assertCount(n);
  const out = new Float64Array(n);
  if (n === 1) {
    out[0] = start;
    return out;
  }
  const step = (end - start) / (n - 1);
  const half = Math.floor(n / 2);
  for (let i = 0; i < n; i++) out[i] = i < half ? start + step * i : end - step * (n - 1 - i);
  return out;
}

/**
 * `numpy.linspace(start, stop, n)` in float64: `i*step + start`, the last entry exactly `stop`.
 *
 * @example
 * numpyLinspace(0, 999, 4); // [0, 333, 666, 999]
 */
export function numpyLinspace(start: number, stop: number, n: number): Float64Array {
  assertCount(n);
  const out = new Float64Array(n);
  const div = n - 1;
  const delta = stop - start;
  const step = div > 0 ? delta / div : Number.NaN;
  for (let i = 0; i < n; i++) out[i] = div > 0 ? i * step + start : start;
  if (n > 1) out[n - 1] = stop;
  return out;
}

/**
 * `numpy.arange(start, stop, step)` for float arguments: length ceil((stop-start)/step), values
 * `start + i*delta` with delta = (start + step) - start, as NumPy's fill function computes them.
 *
 * @example
 * numpyArange(1000, 0, -250); // [1000, 750, 500, 250]
 */
export function numpyArange(start: number, stop: number, step: number): Float64Array {
  if (!(step !== 0 && Number.isFinite(step)))
    throw new ScheduleError(`arange step must be finite and non-zero, got ${step}`);
  const len = Math.max(0, Math.ceil((stop - start) / step));
  const out = new Float64Array(len);
  const delta = start + step - start;
  for (let i = 0; i < len; i++) out[i] = i === 1 ? start + step : start + i * delta;
  return out;
}

/**
 * Round half to even (`numpy.round`, `numpy.rint`), which differs from `Math.round` at .5.
 *
 * @example
 * roundHalfEven(166.5); // 166
 */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x - Math.trunc(x)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * `numpy.interp(x, xp, fp)` for increasing xp: piecewise-linear, clamped at the ends.
 *
 * @example
 * interp(0.5, [0, 1], [10, 20]); // 15
 */
export function interp(x: number, xp: ArrayLike<number>, fp: ArrayLike<number>): number {
  const n = xp.length;
  if (n === 0 || fp.length !== n)
    throw new ScheduleError(`interp needs equal, non-empty xp and fp (got ${n}, ${fp.length})`);
  if (Number.isNaN(x)) return Number.NaN;
  if (x <= xp[0]!) return fp[0]!;
  if (x >= xp[n - 1]!) return fp[n - 1]!;
  // binary search for xp[j] <= x < xp[j+1]
  let lo = 0;
  let hi = n - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (xp[mid]! <= x) lo = mid;
    else hi = mid;
  }
  const x0 = xp[lo]!;
  const x1 = xp[lo + 1]!;
  const y0 = fp[lo]!;
  const y1 = fp[lo + 1]!;
  if (x === x0) return y0;
  const slope = (y1 - y0) / (x1 - x0);
  return slope * (x - x0) + y0;
}

/** Rounds every entry to float32 (as `astype(np.float32)` / `.float()`), keeping a Float64Array. */
export function toFloat32(values: ArrayLike<number>): Float64Array {
  const out = new Float64Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = f32(values[i]!);
  return out;
}

function assertCount(n: number): void {
  if (!Number.isInteger(n) || n < 1)
    throw new ScheduleError(`a linspace needs a positive integer count, got ${n}`);
}

/** log Gamma(x) for x > 0 (Lanczos approximation, g = 7, n = 9; relative error below 1e-15). */
function logGamma(x: number): number {
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313,
    -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6,
    1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - logGamma(1 - x);
  const z = x - 1;
  let s = c[0]!;
  for (let i = 1; i < 9; i++) s += c[i]! / (z + i);
  const t = z + 7.5;
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(s);
}

/** The continued fraction of I_x(a, b) (modified Lentz; Numerical Recipes 3rd ed., sec. 6.4). */
function betaContinuedFraction(x: number, a: number, b: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 1000; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-16) break;
  }
  return h;
}

/**
 * The regularized incomplete beta function I_x(a, b) = B(x; a, b) / B(a, b), the CDF of the Beta(a, b)
 * distribution (continued fraction of Numerical Recipes 3rd ed., sec. 6.4, using the symmetry
 * I_x(a, b) = 1 - I_{1-x}(b, a) where it converges faster). About 1e-15 accurate.
 *
 * @example
 * regularizedIncompleteBeta(0.5, 0.6, 0.6); // 0.5
 */
export function regularizedIncompleteBeta(x: number, a: number, b: number): number {
  if (!(a > 0) || !(b > 0) || !Number.isFinite(a) || !Number.isFinite(b))
    throw new ScheduleError(`the beta distribution needs a > 0 and b > 0, got a = ${a}, b = ${b}`);
  if (!(x >= 0 && x <= 1)) throw new ScheduleError(`x must be in [0, 1], got ${x}`);
  if (x === 0 || x === 1) return x;
  const front = Math.exp(
    logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log1p(-x),
  );
  if (x < (a + 1) / (a + b + 2)) return (front * betaContinuedFraction(x, a, b)) / a;
  return 1 - (front * betaContinuedFraction(1 - x, b, a)) / b;
}

/**
 * The quantile function (inverse CDF, SciPy's `scipy.stats.beta.ppf`) of the Beta(a, b) distribution:
 * the x in [0, 1] with I_x(a, b) = p, by bisection on the monotone `regularizedIncompleteBeta` down to
 * adjacent doubles.
 *
 * @example
 * betaQuantile(0.5, 0.6, 0.6); // 0.5
 */
export function betaQuantile(p: number, a: number, b: number): number {
  if (!(p >= 0 && p <= 1)) throw new ScheduleError(`p must be in [0, 1], got ${p}`);
  if (p === 0 || p === 1) return p;
  let lo = 0;
  let hi = 1;
  for (let i = 0; i < 200; i++) {
    const mid = 0.5 * (lo + hi);
    if (mid <= lo || mid >= hi) break;
    if (regularizedIncompleteBeta(mid, a, b) < p) lo = mid;
    else hi = mid;
  }
  return 0.5 * (lo + hi);
}
