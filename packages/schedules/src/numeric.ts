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
