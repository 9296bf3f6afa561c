import * as tf from '@tensorflow/tfjs-core';
import { SamplerError } from '../errors.js';
import { addNoise, lincomb } from '../helpers.js';
import {
  denoise,
  type SamplerContext,
  type SamplerDefinition,
  type SamplerProgram,
  stepEvent,
} from '../types.js';
import { NONNEGATIVE } from './rules.js';

/**
 * One Langevin move toward p_sigma: x' = x + eps score + sqrt(2 eps) z, score = (D - x) / sigma^2
 * (VE variables). `eps` is a number or a scalar tensor. Frees x and D.
 */
function langevinMove(
  ctx: SamplerContext,
  x: tf.Tensor,
  denoised: tf.Tensor,
  sigma: number,
  eps: number | tf.Tensor,
  z: tf.Tensor,
): tf.Tensor {
  const next = ctx.tidy(() => {
    const score = tf.div(tf.sub(denoised, x), sigma * sigma);
    const e = typeof eps === 'number' ? tf.scalar(eps) : eps;
    return tf.add(tf.add(x, tf.mul(score, e)), tf.mul(z, tf.sqrt(tf.mul(e, 2))));
  });
  ctx.free(x, denoised, z);
  return next;
}

export type AnnealedLangevinOptions = {
  /** Langevin moves per noise level (NCSN's T). */
  stepsPerLevel: number;
  /** eps_i = stepSize * sigma_i^2 (NCSN's alpha_i = 2 eps_i = epsilon sigma_i^2 / sigma_L^2). */
  stepSize: number;
  /** With a final level 0: return Tweedie's D(x; sigma_L) (Jolicoeur-Martineau et al. 2021). */
  denoise: boolean;
};

/**
 * Annealed Langevin dynamics (Song & Ermon 2019, "Generative Modeling by Estimating Gradients of the
 * Data Distribution", Algorithm 1): at each level sigma_i, `stepsPerLevel` moves
 * x <- x + eps_i score(x; sigma_i) + sqrt(2 eps_i) z with eps_i = stepSize sigma_i^2. On N(mu, s^2) a
 * fixed step eps has stationary variance s^2 / (1 - eps / (2 s^2)). A trailing level 0 is not visited;
 * with `denoise` the result is D(x; sigma_L).
 *
 * @example
 * const x0 = await sample(denoiser, { sampler: 'annealed_langevin', sigmas: [10, 5, 2, 1, 0.5, 0.1, 0], shape: [64, 2], seed: 1 });
 */
export function* sampleAnnealedLangevin(
  ctx: SamplerContext,
  x: tf.Tensor,
  sigmas: readonly number[],
  o: AnnealedLangevinOptions,
): SamplerProgram {
  if (!Number.isInteger(o.stepsPerLevel) || o.stepsPerLevel < 1) {
    throw new SamplerError(`stepsPerLevel must be a positive integer, got ${o.stepsPerLevel}`);
  }
  if (!(o.stepSize > 0)) throw new SamplerError(`stepSize must be > 0, got ${o.stepSize}`);
  const levels = sigmas[sigmas.length - 1] === 0 ? sigmas.length - 1 : sigmas.length;
  for (let i = 0; i < levels; i++) {
    const s = sigmas[i]!;
    const eps = o.stepSize * s * s;
    for (let k = 0; k < o.stepsPerLevel; k++) {
      const d = yield* denoise(x, s, i);
      if (k === 0) yield stepEvent(i, s, s, x, d);
      x = langevinMove(ctx, x, d, s, eps, ctx.noise(s, s));
    }
  }
  if (levels < sigmas.length && o.denoise) {
    const last = sigmas[levels - 1]!;
    const d = yield* denoise(x, last, levels - 1);
    ctx.free(x);
    x = d;
  }
  return x;
}

export const annealedLangevin: SamplerDefinition<AnnealedLangevinOptions> = {
  name: 'annealed_langevin',
  description: 'Annealed Langevin dynamics (NCSN)',
  reference: 'Song & Ermon 2019, Algorithm 1',
  fn: sampleAnnealedLangevin,
  defaults: { stepsPerLevel: 100, stepSize: 0.1, denoise: true },
  rules: { stepsPerLevel: { integer: true, min: 1, max: 100_000 }, stepSize: { above: 0 } },
  stochastic: true,
  conformance: { samplerOptions: { stepsPerLevel: 4, stepSize: 0.3 } },
};

export type EulerMaruyamaOptions = { sNoise: number };

/**
 * Euler-Maruyama on the reverse-time VE SDE dx = -d(sigma^2) score dt + sqrt(d(sigma^2)/dt) dw
 * (Song et al. 2021, "Score-Based Generative Modeling through SDEs", eq. 6 and the reverse-diffusion
 * predictor of sec. 4.2): x' = x + (sigma^2 - sigma'^2) score + sqrt(sigma^2 - sigma'^2) z. The step to
 * sigma = 0 adds no noise (it returns D, score-SDE's `noise_removal`).
 *
 * @example
 * const x0 = await sample(denoiser, { sampler: 'euler_maruyama_ve', steps: 100, shape: [64, 2], seed: 1 });
 */
export function* sampleEulerMaruyamaVE(
  ctx: SamplerContext,
  x: tf.Tensor,
  sigmas: readonly number[],
  o: EulerMaruyamaOptions,
): SamplerProgram {
  for (let i = 0; i < sigmas.length - 1; i++) {
    const s = sigmas[i]!;
    const sN = sigmas[i + 1]!;
    const d = yield* denoise(x, s, i);
    yield stepEvent(i, s, s, x, d);
    const w = (s * s - sN * sN) / (s * s); // (sigma^2 - sigma'^2) score = w (D - x)
    const next = ctx.tidy(() =>
      lincomb([
        [1 - w, x],
        [w, d],
      ]),
    );
    ctx.free(x, d);
    x = sN > 0 ? addNoise(ctx, next, s, sN, o.sNoise * Math.sqrt(s * s - sN * sN)) : next;
  }
  return x;
}

/**
 * Euler-Maruyama on the reverse-time VP SDE dx = [-beta/2 x - beta score] dt + sqrt(beta) dw (Song et
 * al. 2021, eq. 6 and 11), with the VP embedding alpha = 1/sqrt(1 + sigma^2) of each VE level and
 * beta dt = log(alpha'^2 / alpha^2), the exact integral of beta over the step:
 * x_vp' = x_vp + beta dt (x_vp / 2 + score_vp) + sqrt(beta dt) z. The step to sigma = 0 adds no noise.
 *
 * @example
 * const x0 = await sample(denoiser, { sampler: 'euler_maruyama_vp', steps: 200, shape: [64, 2], seed: 1 });
 */
export function* sampleEulerMaruyamaVP(
  ctx: SamplerContext,
  x: tf.Tensor,
  sigmas: readonly number[],
  o: EulerMaruyamaOptions,
): SamplerProgram {
  const alpha = (s: number) => 1 / Math.sqrt(1 + s * s);
  for (let i = 0; i < sigmas.length - 1; i++) {
    const s = sigmas[i]!;
    const sN = sigmas[i + 1]!;
    const d = yield* denoise(x, s, i);
    yield stepEvent(i, s, s, x, d);
    const a = alpha(s);
    const aN = alpha(sN);
    const bdt = 2 * Math.log(aN / a);
    const vp2 = s * s * a * a; // sigma_vp^2
    // x_vp = a x;  score_vp = (a D - a x) / sigma_vp^2;  x_ve' = x_vp' / a'
    const cx = (a * (1 + bdt / 2) - (bdt * a) / vp2) / aN;
    const cd = (bdt * a) / vp2 / aN;
    const next = ctx.tidy(() =>
      lincomb([
        [cx, x],
        [cd, d],
      ]),
    );
    ctx.free(x, d);
    x = sN > 0 ? addNoise(ctx, next, s, sN, (o.sNoise * Math.sqrt(bdt)) / aN) : next;
  }
  return x;
}

export const eulerMaruyamaVE: SamplerDefinition<EulerMaruyamaOptions> = {
  name: 'euler_maruyama_ve',
  description: 'Euler-Maruyama on the reverse VE SDE (reverse-diffusion predictor)',
  reference: 'Song et al. 2021, "Score-Based Generative Modeling through SDEs", eq. 6, sec. 4.2',
  fn: sampleEulerMaruyamaVE,
  defaults: { sNoise: 1 },
  rules: { sNoise: NONNEGATIVE },
  stochastic: true,
};

export const eulerMaruyamaVP: SamplerDefinition<EulerMaruyamaOptions> = {
  name: 'euler_maruyama_vp',
  description: 'Euler-Maruyama on the reverse VP SDE',
  reference: 'Song et al. 2021, "Score-Based Generative Modeling through SDEs", eq. 6 and 11',
  fn: sampleEulerMaruyamaVP,
  defaults: { sNoise: 1 },
  rules: { sNoise: NONNEGATIVE },
  stochastic: true,
};

export type PredictorCorrectorOptions = {
  /** The predictor: reverse-SDE Euler-Maruyama for the VE or VP SDE. */
  predictor: 've' | 'vp';
  /** Langevin corrector moves per level (score-SDE's n_steps_each). */
  correctorSteps: number;
  /** Target signal-to-noise ratio r of the corrector (0.16 for VE CIFAR-10, 0.01 for VP). */
  snr: number;
};

/**
 * Predictor-corrector sampling (Song et al. 2021, Algorithms 2-3 and the `LangevinCorrector` of their
 * code): at each level, Langevin corrector moves with step eps = 2 a (r ||z|| / ||score||)^2 (norms
 * per example, averaged over the batch; a = 1 for VE and alpha^2 of the step for VP), then one
 * Euler-Maruyama predictor step. The last predictor step to sigma = 0 adds no noise.
 *
 * @example
 * const x0 = await sample(denoiser, { sampler: 'pc', steps: 100, samplerOptions: { snr: 0.16 }, shape: [64, 2], seed: 1 });
 */
export function* samplePredictorCorrector(
  ctx: SamplerContext,
  x: tf.Tensor,
  sigmas: readonly number[],
  o: PredictorCorrectorOptions,
): SamplerProgram {
  if (o.predictor !== 've' && o.predictor !== 'vp')
    throw new SamplerError(`predictor must be 've' or 'vp', got '${o.predictor}'`);
  const alpha = (s: number) => 1 / Math.sqrt(1 + s * s);
  const em = o.predictor === 've' ? sampleEulerMaruyamaVE : sampleEulerMaruyamaVP;
  for (let i = 0; i < sigmas.length - 1; i++) {
    const s = sigmas[i]!;
    const a = o.predictor === 've' ? 1 : (alpha(s) / alpha(sigmas[i + 1]!)) ** 2;
    for (let k = 0; k < o.correctorSteps; k++) {
      const d = yield* denoise(x, s, i);
      const z = ctx.noise(s, s);
      const eps = ctx.tidy(() => {
        const score = tf.div(tf.sub(d, x), s * s);
        const norm = (t: tf.Tensor) =>
          tf.mean(tf.sqrt(tf.sum(tf.square(tf.reshape(t, [t.shape[0]!, -1])), 1)));
        return tf.mul(tf.square(tf.div(tf.mul(norm(z), o.snr), norm(score))), 2 * a);
      });
      x = langevinMove(ctx, x, d, s, eps, z);
      ctx.free(eps);
    }
    // One predictor step from sigma_i to sigma_{i+1}: the Euler-Maruyama program on that pair.
    const step = em(ctx, x, [s, sigmas[i + 1]!], { sNoise: 1 });
    let r = step.next();
    while (!r.done) {
      const y = r.value;
      if (y.kind === 'denoise') r = step.next(yield { ...y, step: i });
      else if (y.kind === 'step') {
        yield { ...y, i };
        r = step.next();
      } else r = step.next(yield y);
    }
    x = r.value;
  }
  return x;
}

export const predictorCorrector: SamplerDefinition<PredictorCorrectorOptions> = {
  name: 'pc',
  description: 'Predictor-corrector: Langevin corrector (snr rule) + reverse-SDE predictor',
  reference:
    'Song et al. 2021, "Score-Based Generative Modeling through SDEs", sec. 4.2, Algorithms 2-3',
  fn: samplePredictorCorrector,
  defaults: { predictor: 've', correctorSteps: 1, snr: 0.16 },
  rules: {
    predictor: { oneOf: ['ve', 'vp'] },
    correctorSteps: { integer: true, min: 0, max: 10_000 },
    snr: { min: 0 },
  },
  stochastic: true,
  conformance: { affine: false },
};
