import type * as tf from '@tensorflow/tfjs-core';
import { SamplerError } from '../errors.js';
import { lincomb } from '../helpers.js';
import {
  denoise,
  type SamplerContext,
  type SamplerDefinition,
  type SamplerProgram,
  stepEvent,
} from '../types.js';
import { ORDER_1_3 } from './rules.js';

export type UniPcOptions = {
  /** Predictor order p (1 to 3); the corrector raises the accuracy by one. */
  order: number;
  /** B(h) = h ('bh1') or e^h - 1 ('bh2'). */
  variant: 'bh1' | 'bh2';
  /** diffusers' `lower_order_final`: the last steps use order min(p, steps left). */
  lowerOrderFinal: boolean;
  /** diffusers' `disable_corrector`: the correction at step i is skipped when i - 1 is listed. */
  disableCorrector: readonly number[];
  /** Skip every corrector (UniP only). */
  predictorOnly: boolean;
  /**
   * What the solver extrapolates: the data prediction (`x0`, diffusers' `predict_x0: true`, default) or
   * the noise prediction (`epsilon`, `predict_x0: false`: UniPC's exponential integrator in e^{h}).
   */
  prediction: 'x0' | 'epsilon';
};

/** Solves the small dense system A w = b (Gaussian elimination with partial pivoting). */
function solve(A: number[][], b: number[]): number[] {
  const n = b.length;
  const M = A.map((row, k) => [...row, b[k]!]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(M[r]![c]!) > Math.abs(M[p]![c]!)) p = r;
    [M[c], M[p]] = [M[p]!, M[c]!];
    for (let r = c + 1; r < n; r++) {
      const f = M[r]![c]! / M[c]![c]!;
      for (let k = c; k <= n; k++) M[r]![k]! -= f * M[c]![k]!;
    }
  }
  const w = new Array<number>(n).fill(0);
  for (let r = n - 1; r >= 0; r--) {
    let s = M[r]![n]!;
    for (let k = r + 1; k < n; k++) s -= M[r]![k]! * w[k]!;
    w[r] = s / M[r]![r]!;
  }
  return w;
}

/**
 * UniPC's coefficients (Zhao et al. 2023, "UniPC", Algorithm 2 / the B(h) variants; diffusers
 * `multistep_uni_p_bh_update` / `multistep_uni_c_bh_update`): with hh = -h (data prediction; h for the
 * noise prediction),
 * rows R_k = r^(k-1) and b_k = k! h phi_{k+1}(hh) / B(h), the predictor uses rho_p = R[:-1,:-1]^{-1} b[:-1]
 * (1/2 for order 2) and the corrector rho_c = R^{-1} b (1/2 for order 1).
 */
function unipcRhos(
  rks: readonly number[],
  h: number,
  order: number,
  variant: 'bh1' | 'bh2',
  predictX0 = true,
) {
  const hh = predictX0 ? -h : h;
  const hPhi1 = Math.expm1(hh);
  const Bh = variant === 'bh1' ? hh : Math.expm1(hh);
  let hPhiK = hPhi1 / hh - 1;
  let fact = 1;
  const R: number[][] = [];
  const b: number[] = [];
  const rr = [...rks, 1];
  for (let k = 1; k <= order; k++) {
    R.push(rr.map((r) => r ** (k - 1)));
    b.push((hPhiK * fact) / Bh);
    fact *= k + 1;
    hPhiK = hPhiK / hh - 1 / fact;
  }
  const rhosP =
    order === 2
      ? [0.5]
      : order > 2
        ? solve(
            R.slice(0, -1).map((r) => r.slice(0, -1)),
            b.slice(0, -1),
          )
        : [];
  const rhosC = order === 1 ? [0.5] : solve(R, b);
  return { hPhi1, Bh, rhosP, rhosC };
}

/**
 * UniPC (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector Framework for Fast Sampling of
 * Diffusion Models"), data prediction, B(h) variants bh1 / bh2 (diffusers `UniPCMultistepScheduler`).
 * Each model output first corrects the state it was computed at (UniC, no extra model call), then the
 * predictor (UniP) moves to the next level. In VE variables, with lambda = -log sigma:
 *
 *   x' = (sigma'/sigma) x - (e^{-h} - 1) m_0 - B(h) sum_k rho_k D_k,   D_k = (m_k - m_0) / r_k
 *
 * and with the noise prediction (m = eps = (x - D) / sigma, `prediction: 'epsilon'`, hh = h):
 *
 *   x' = x - sigma' (e^{h} - 1) m_0 - sigma' B(h) sum_k rho_k D_k
 *
 * @example
 * const x0 = await sample(denoiser, { sampler: 'unipc', steps: 10, shape: [16, 2], seed: 1 });
 */
export function* sampleUniPc(
  ctx: SamplerContext,
  x: tf.Tensor,
  sigmas: readonly number[],
  o: UniPcOptions,
): SamplerProgram {
  if (![1, 2, 3].includes(o.order))
    throw new SamplerError(`UniPC order must be 1, 2 or 3, got ${o.order}`);
  if (o.variant !== 'bh1' && o.variant !== 'bh2')
    throw new SamplerError(`UniPC variant must be bh1 or bh2, got '${o.variant}'`);
  const predictX0 = (o.prediction ?? 'x0') === 'x0';
  const n = sigmas.length - 1;
  const lam = (k: number) => -Math.log(sigmas[k]!);
  const ms: tf.Tensor[] = []; // converted outputs, newest first
  let lastX: tf.Tensor | null = null;
  let thisOrder = 1;
  /** x_t from the state x at sigma_s0 (index s0), outputs ms (newest = index s0), to index t. */
  const update = (
    xs: tf.Tensor,
    s0: number,
    t: number,
    order: number,
    mt: tf.Tensor | null,
  ): tf.Tensor => {
    const h = lam(t) - lam(s0);
    const rks: number[] = [];
    const terms: [number, tf.Tensor][] = [];
    for (let k = 1; k < order; k++) rks.push((lam(s0 - k) - lam(s0)) / h);
    const { hPhi1, Bh, rhosP, rhosC } = unipcRhos(rks, h, order, o.variant, predictX0);
    const m0 = ms[0]!;
    // the noise prediction's terms carry the target's sigma (VE: alpha_t / alpha_s = 1)
    const g = predictX0 ? 1 : sigmas[t]!;
    terms.push([predictX0 ? sigmas[t]! / sigmas[s0]! : 1, xs], [-g * hPhi1, m0]);
    const rhos = mt ? rhosC : rhosP;
    for (let k = 1; k < order; k++) {
      const w = rhos[k - 1];
      if (w === undefined) continue;
      // -Bh * w * (m_k - m0) / r_k
      const c = (-g * Bh * w) / rks[k - 1]!;
      terms.push([c, ms[k]!], [-c, m0]);
    }
    if (mt) {
      const w = rhosC[rhosC.length - 1]!;
      terms.push([-g * Bh * w, mt], [g * Bh * w, m0]);
    }
    return lincomb(terms);
  };
  for (let i = 0; i < n; i++) {
    const s = sigmas[i]!;
    const denoised = yield* denoise(x, s, i);
    yield stepEvent(i, s, s, x, denoised);
    // the solver's quantity: D itself, or the noise (x - D) / sigma at the uncorrected state
    let m = denoised;
    if (!predictX0) {
      const xi = x;
      m = ctx.tidy(() =>
        lincomb([
          [1 / s, xi],
          [-1 / s, denoised],
        ]),
      );
    }
    if (i > 0 && !o.predictorOnly && !o.disableCorrector.includes(i - 1) && lastX) {
      // UniC: correct x_i from x_{i-1} with the new output (ms[0] is still the output at step i-1).
      const lx = lastX;
      const mt = m;
      const corrected = ctx.tidy(() => update(lx, i - 1, i, thisOrder, mt));
      ctx.free(x);
      x = corrected;
    }
    // the last step to sigma = 0 lands on D, as the data form's (the noise form's limit x - sigma eps)
    const last0 =
      sigmas[i + 1] === 0 && !predictX0 ? ctx.tidy(() => lincomb([[1, denoised]])) : null;
    if (m !== denoised) ctx.free(denoised);
    ms.unshift(m);
    if (ms.length > o.order) ctx.free(ms.pop());
    thisOrder = Math.min(o.lowerOrderFinal ? Math.min(o.order, n - i) : o.order, i + 1);
    ctx.free(lastX);
    lastX = x;
    const xi = x;
    const next =
      sigmas[i + 1] === 0
        ? (last0 ?? ctx.tidy(() => lincomb([[1, ms[0]!]])))
        : ctx.tidy(() => update(xi, i, i + 1, thisOrder, null));
    x = next;
  }
  ctx.free(lastX, ...ms);
  return x;
}

export const unipc: SamplerDefinition<UniPcOptions> = {
  name: 'unipc',
  description: 'UniPC predictor-corrector multistep (bh1 / bh2)',
  reference: 'Zhao et al. 2023, "UniPC", Algorithms 2-3; diffusers UniPCMultistepScheduler',
  fn: sampleUniPc,
  defaults: {
    order: 2,
    variant: 'bh2',
    lowerOrderFinal: true,
    disableCorrector: [],
    predictorOnly: false,
    prediction: 'x0',
  },
  rules: {
    order: ORDER_1_3,
    variant: { oneOf: ['bh1', 'bh2'] },
    disableCorrector: { integer: true, min: 0 },
    prediction: { oneOf: ['x0', 'epsilon'] },
  },
  stochastic: false,
  order: 3,
};
