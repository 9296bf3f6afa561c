import * as tf from '@tensorflow/tfjs-core';
import { NonFiniteError, SamplerError } from '../errors.js';
import { ancestralStep, lincomb, toD } from '../helpers.js';
import {
  denoise,
  read,
  type SamplerContext,
  type SamplerDefinition,
  type SamplerProgram,
  type SamplerResume,
  type SamplerYield,
  stepEvent,
} from '../types.js';
import { ETA, NONNEGATIVE } from './rules.js';

type Gen<T> = Generator<SamplerYield, T, SamplerResume>;
const sig = (t: number) => Math.exp(-t);

/**
 * DPM-Solver's singlestep updates in t = -log sigma with noise predictions eps = (x - D) / sigma
 * (Lu et al. 2022a, Algorithms 1-2 with r1 = 1/2 or 1/3, r2 = 2/3; k-diffusion's `DPMSolver`), with a
 * per-attempt cache so the intermediate evaluations are shared between the orders.
 */
class DpmSteps {
  private cache = new Map<string, tf.Tensor>();
  constructor(
    private readonly ctx: SamplerContext,
    private readonly step: () => number,
  ) {}

  *eps(key: string, x: tf.Tensor, t: number): Gen<tf.Tensor> {
    const hit = this.cache.get(key);
    if (hit) return hit;
    const d = yield* denoise(x, sig(t), this.step());
    const e = this.ctx.tidy(() => toD(x, sig(t), d));
    this.cache.set(key, e);
    this.cache.set(`${key}:denoised`, d);
    return e;
  }

  /**
   * x_low - x_high of the embedded pair of the step from t to tn (orders 1/2 with r1 = 1/2, or 2/3
   * with r1 = 1/3, r2 = 2/3), after that pair was evaluated. In exact arithmetic it is
   * c (e1 - e) (order 2 vs 1) or -c/(2 r1) (e1 - e) + k3 (e2 - e) (order 2 vs 3), with
   * c = sigma_tn (e^h - 1), k2 and k3 as in `order3`; the eps differences follow from the
   * intermediate states u_i = (s_i / s) x + (1 - s_i / s) D + ... exactly:
   *
   *     e1 - e = (D - D1) / s1,      e2 - e = (D - D2) / s2 - (k2 / s2) (e1 - e)
   *
   * Differences of O(1) denoised values: in float32 this keeps the estimate accurate where x_low -
   * x_high (two nearly equal states of size sigma) or e1 - e (eps from states of size sigma) would be
   * mostly rounding.
   */
  embeddedDifference(t: number, tn: number, order: number): tf.Tensor {
    const h = tn - t;
    const c = sig(tn) * Math.expm1(h);
    const d = this.cache.get('eps:denoised')!;
    const d1 = this.cache.get('eps_r1:denoised')!;
    const r1 = order === 2 ? 0.5 : 1 / 3;
    const s1 = sig(t + r1 * h);
    if (order === 2) return this.ctx.tidy(() => tf.mul(tf.sub(d, d1), c / s1));
    const d2 = this.cache.get('eps_r2:denoised')!;
    const r2 = 2 / 3;
    const s2 = sig(t + r2 * h);
    const k2 = s2 * (r2 / r1) * (Math.expm1(r2 * h) / (r2 * h) - 1);
    const k3 = (sig(tn) / r2) * (Math.expm1(h) / h - 1);
    // -c/(2 r1) (e1 - e) + k3 ((D - D2) / s2 - (k2 / s2) (e1 - e)), with e1 - e = (D - D1) / s1
    const w1 = (-c / (2 * r1) - (k3 * k2) / s2) / s1;
    return this.ctx.tidy(() => tf.add(tf.mul(tf.sub(d, d1), w1), tf.mul(tf.sub(d, d2), k3 / s2)));
  }

  clear(): void {
    this.ctx.free(...this.cache.values());
    this.cache.clear();
  }

  *order1(x: tf.Tensor, t: number, tn: number): Gen<tf.Tensor> {
    const e = yield* this.eps('eps', x, t);
    return this.ctx.tidy(() =>
      lincomb([
        [1, x],
        [-sig(tn) * Math.expm1(tn - t), e],
      ]),
    );
  }

  *order2(x: tf.Tensor, t: number, tn: number, r1 = 0.5): Gen<tf.Tensor> {
    const h = tn - t;
    const e = yield* this.eps('eps', x, t);
    const s1 = t + r1 * h;
    const u1 = this.ctx.tidy(() =>
      lincomb([
        [1, x],
        [-sig(s1) * Math.expm1(r1 * h), e],
      ]),
    );
    const e1 = yield* this.eps('eps_r1', u1, s1);
    this.ctx.free(u1);
    const c = sig(tn) * Math.expm1(h);
    return this.ctx.tidy(() =>
      lincomb([
        [1, x],
        [-c, e],
        [-c / (2 * r1), e1],
        [c / (2 * r1), e],
      ]),
    );
  }

  *order3(x: tf.Tensor, t: number, tn: number, r1 = 1 / 3, r2 = 2 / 3): Gen<tf.Tensor> {
    const h = tn - t;
    const e = yield* this.eps('eps', x, t);
    const s1 = t + r1 * h;
    const s2 = t + r2 * h;
    const u1 = this.ctx.tidy(() =>
      lincomb([
        [1, x],
        [-sig(s1) * Math.expm1(r1 * h), e],
      ]),
    );
    const e1 = yield* this.eps('eps_r1', u1, s1);
    this.ctx.free(u1);
    const k2 = sig(s2) * (r2 / r1) * (Math.expm1(r2 * h) / (r2 * h) - 1);
    const u2 = this.ctx.tidy(() =>
      lincomb([
        [1, x],
        [-sig(s2) * Math.expm1(r2 * h), e],
        [-k2, e1],
        [k2, e],
      ]),
    );
    const e2 = yield* this.eps('eps_r2', u2, s2);
    this.ctx.free(u2);
    const c = sig(tn) * Math.expm1(h);
    const k3 = (sig(tn) / r2) * (Math.expm1(h) / h - 1);
    return this.ctx.tidy(() =>
      lincomb([
        [1, x],
        [-c, e],
        [-k3, e2],
        [k3, e],
      ]),
    );
  }
}

/** ||v|| / sqrt(n) summed in float64 on the host, in index order (the same on every backend). */
function rmsNorm(v: Float32Array): number {
  let sum = 0;
  for (let k = 0; k < v.length; k++) sum += v[k]! * v[k]!;
  return Math.sqrt(sum / v.length);
}

/** The range [sigma_max, sigma_min] of a fast/adaptive run: the first and the last positive sigma. */
function range(sigmas: readonly number[]): { tStart: number; tEnd: number; toZero: boolean } {
  const positive = sigmas.filter((s) => s > 0);
  if (positive.length < 2)
    throw new SamplerError(
      'dpm_fast / dpm_adaptive need two positive noise levels (sigma_max, sigma_min)',
    );
  return {
    tStart: -Math.log(positive[0]!),
    tEnd: -Math.log(positive[positive.length - 1]!),
    toZero: positive.length < sigmas.length,
  };
}

/** The ancestral split of a move from t to t_next, capped at t_end (k-diffusion's DPM-Solver with eta). */
function ancestralTarget(
  t: number,
  tn: number,
  tEnd: number,
  eta: number,
): { tn_: number; su: number } {
  if (!eta) return { tn_: tn, su: 0 };
  const { sigmaDown } = ancestralStep(sig(t), sig(tn), eta);
  const tn_ = Math.min(tEnd, -Math.log(sigmaDown));
  return { tn_, su: Math.sqrt(Math.max(0, sig(tn) ** 2 - sig(tn_) ** 2)) };
}

export type DpmFastOptions = { nfe: number; eta: number; sNoise: number };

/**
 * DPM-Solver-fast (Lu et al. 2022a, sec. 3.4): ceil(NFE/3) steps uniform in t = -log sigma from
 * sigma_max to sigma_min, third order except a final order-2/1 pair or an order-(NFE mod 3) step
 * (k-diffusion `sample_dpm_fast`; `nfe` 0 means the number of steps). With eta > 0 each step ends at
 * the ancestral sigma_down and adds noise (one request per step). A final level 0 is reached by D(x).
 *
 * @example
 * const x0 = await sample(denoiser, { sampler: 'dpm_fast', samplerOptions: { nfe: 15 }, sigmas: [80, 0.002], shape: [16, 2], seed: 1 });
 */
export function* sampleDpmFast(
  ctx: SamplerContext,
  x: tf.Tensor,
  sigmas: readonly number[],
  o: DpmFastOptions,
): SamplerProgram {
  const { tStart, tEnd, toZero } = range(sigmas);
  const nfe = o.nfe > 0 ? o.nfe : sigmas.length - 1;
  if (!Number.isInteger(nfe) || nfe < 1)
    throw new SamplerError(`nfe must be a positive integer, got ${nfe}`);
  const m = Math.ceil(nfe / 3);
  const ts = Array.from({ length: m + 1 }, (_, k) => tStart + ((tEnd - tStart) * k) / m);
  const orders =
    nfe % 3 !== 0
      ? [...new Array(m - 1).fill(3), nfe % 3]
      : m >= 2
        ? [...new Array(m - 2).fill(3), 2, 1]
        : [3];
  let i = 0;
  const steps = new DpmSteps(ctx, () => i);
  for (; i < orders.length; i++) {
    const t = ts[i]!;
    const tn = ts[i + 1]!;
    const { tn_, su } = ancestralTarget(t, tn, tEnd, o.eta);
    const e = yield* steps.eps('eps', x, t);
    const denoised = ctx.tidy(() =>
      lincomb([
        [1, x],
        [-sig(t), e],
      ]),
    );
    yield stepEvent(i, sig(t), sig(t), x, denoised);
    ctx.free(denoised);
    const order = orders[i]!;
    let next =
      order === 1
        ? yield* steps.order1(x, t, tn_)
        : order === 2
          ? yield* steps.order2(x, t, tn_)
          : yield* steps.order3(x, t, tn_);
    steps.clear();
    if (o.eta > 0) {
      const z = ctx.noise(sig(t), sig(tn));
      const noisy = ctx.tidy(() =>
        lincomb([
          [1, next],
          [su * o.sNoise, z],
        ]),
      );
      ctx.free(z, next);
      next = noisy;
    }
    ctx.free(x);
    x = next;
  }
  if (toZero) {
    const d = yield* denoise(x, sig(tEnd), i - 1);
    ctx.free(x);
    x = d;
  }
  return x;
}

export const dpmFast: SamplerDefinition<DpmFastOptions> = {
  name: 'dpm_fast',
  description: 'DPM-Solver-fast: orders 3/2/1 uniform in log sigma for a given NFE',
  reference: 'Lu et al. 2022, "DPM-Solver", sec. 3.4; k-diffusion sample_dpm_fast',
  fn: sampleDpmFast,
  defaults: { nfe: 0, eta: 0, sNoise: 1 },
  rules: { nfe: { integer: true, min: 0, max: 1_000_000 }, eta: ETA, sNoise: NONNEGATIVE },
  stochastic: false,
};

export type DpmAdaptiveOptions = {
  order: number;
  rtol: number;
  atol: number;
  hInit: number;
  pcoeff: number;
  icoeff: number;
  dcoeff: number;
  acceptSafety: number;
  eta: number;
  sNoise: number;
};

/**
 * Adaptive DPM-Solver (Lu et al. 2022a, sec. 4 and Algorithm 4; k-diffusion `sample_dpm_adaptive`):
 * embedded orders (1, 2) or (2, 3) in t = -log sigma, error norm over the whole batch
 * ||(x_low - x_high) / max(atol, rtol max(|x_low|, |x_prev|))|| / sqrt(n), and a PID step-size
 * controller with the limiter 1 + atan(f - 1). One step event per attempt (after it). A final level 0
 * is reached by D(x).
 *
 * @example
 * const x0 = await sample(denoiser, { sampler: 'dpm_adaptive', sigmas: [80, 0.002], shape: [16, 2], seed: 1 });
 */
export function* sampleDpmAdaptive(
  ctx: SamplerContext,
  x: tf.Tensor,
  sigmas: readonly number[],
  o: DpmAdaptiveOptions,
): SamplerProgram {
  if (o.order !== 2 && o.order !== 3)
    throw new SamplerError(`dpm_adaptive order must be 2 or 3, got ${o.order}`);
  const { tStart, tEnd, toZero } = range(sigmas);
  const kOrder = o.eta ? 1.5 : o.order;
  const b1 = (o.pcoeff + o.icoeff + o.dcoeff) / kOrder;
  const b2 = -(o.pcoeff + 2 * o.dcoeff) / kOrder;
  const b3 = o.dcoeff / kOrder;
  let errs: number[] = [];
  let h = Math.abs(o.hInit);
  let s = tStart;
  let xPrev = x;
  let attempt = 0;
  const steps = new DpmSteps(ctx, () => attempt);
  while (s < tEnd - 1e-5) {
    if (attempt > 100000) throw new SamplerError('dpm_adaptive: too many attempts');
    // A tolerance the float32 states cannot meet shrinks h by ~4x per rejection: stop, don't spin.
    if (!(h > 1e-9))
      throw new SamplerError(
        `dpm_adaptive: the step size collapsed to ${h} at sigma = ${sig(s)} (rtol ${o.rtol}, atol ${o.atol} cannot be met)`,
        attempt,
      );
    const t = Math.min(tEnd, s + h);
    const { tn_, su } = ancestralTarget(s, t, tEnd, o.eta);
    const e = yield* steps.eps('eps', x, s);
    const denoised = ctx.tidy(() =>
      lincomb([
        [1, x],
        [-sig(s), e],
      ]),
    );
    const low =
      o.order === 2 ? yield* steps.order1(x, s, tn_) : yield* steps.order2(x, s, tn_, 1 / 3);
    const high = o.order === 2 ? yield* steps.order2(x, s, tn_) : yield* steps.order3(x, s, tn_);
    // The embedded error x_low - x_high, from the differences of the eps evaluations rather than of
    // the two nearly equal solutions (which in float32 is mostly rounding: the estimate starts near 1e-7).
    const diff = steps.embeddedDifference(s, tn_, o.order);
    steps.clear();
    const ratio = ctx.tidy(() =>
      tf.div(diff, tf.maximum(o.atol, tf.mul(o.rtol, tf.maximum(tf.abs(low), tf.abs(xPrev))))),
    );
    ctx.free(diff);
    const values = yield* read(ratio);
    ctx.free(ratio);
    const error = rmsNorm(values);
    if (!Number.isFinite(error))
      throw new NonFiniteError('dpm_adaptive: the error estimate (x_low - x_high)', attempt);
    const inv = 1 / (error + 1e-8);
    if (errs.length === 0) errs = [inv, inv, inv];
    errs[0] = inv;
    let factor = errs[0]! ** b1 * errs[1]! ** b2 * errs[2]! ** b3;
    factor = 1 + Math.atan(factor - 1);
    const accept = factor >= o.acceptSafety;
    if (accept) {
      errs[2] = errs[1]!;
      errs[1] = errs[0]!;
    }
    h *= factor;
    if (accept) {
      if (xPrev !== x) ctx.free(xPrev);
      xPrev = low;
      let next = high;
      if (o.eta > 0) {
        const z = ctx.noise(sig(s), sig(t));
        next = ctx.tidy(() =>
          lincomb([
            [1, high],
            [su * o.sNoise, z],
          ]),
        );
        ctx.free(z, high);
      }
      if (x !== xPrev) ctx.free(x);
      x = next;
      s = t;
    } else ctx.free(low, high);
    yield stepEvent(attempt, sig(s), sig(s), x, denoised);
    ctx.free(denoised);
    attempt++;
  }
  if (xPrev !== x) ctx.free(xPrev);
  if (toZero) {
    const d = yield* denoise(x, sig(tEnd), attempt);
    ctx.free(x);
    x = d;
  }
  return x;
}

export const dpmAdaptive: SamplerDefinition<DpmAdaptiveOptions> = {
  name: 'dpm_adaptive',
  description: 'Adaptive DPM-Solver (embedded orders, PID step control)',
  reference: 'Lu et al. 2022, "DPM-Solver", sec. 4; k-diffusion sample_dpm_adaptive',
  fn: sampleDpmAdaptive,
  defaults: {
    order: 3,
    rtol: 0.05,
    atol: 0.0078,
    hInit: 0.05,
    pcoeff: 0,
    icoeff: 1,
    dcoeff: 0,
    acceptSafety: 0.81,
    eta: 0,
    sNoise: 1,
  },
  rules: {
    order: { integer: true, min: 2, max: 3 },
    rtol: { above: 0 },
    atol: { above: 0 },
    hInit: { min: 1e-6 },
    acceptSafety: { above: 0, max: 1 },
    eta: ETA,
    sNoise: NONNEGATIVE,
  },
  stochastic: false,
};
