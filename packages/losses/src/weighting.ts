/**
 * Loss weightings as functions of logSNR lambda, so that the equivalences of the unified view are
 * visible (Luo 2022, sec. 2.4; Kingma & Gao 2023, "Understanding diffusion objectives as the ELBO
 * with simple data augmentation", sec. 2-4 and Table 1).
 *
 * For x_t = alpha x0 + sigma eps (variance preserving, alpha^2 = sigmoid(lambda)) the errors of the
 * four targets are multiples of the x0 error:
 *
 *     ||eps - eps_hat||^2     = SNR ||x0 - x0_hat||^2                 = e^lambda ||x0 - x0_hat||^2
 *     ||v - v_hat||^2         = (1 + SNR) ||x0 - x0_hat||^2           (v = alpha eps - sigma x0)
 *     ||score - score_hat||^2 = SNR (1 + SNR) ||x0 - x0_hat||^2       (score = -eps / sigma)
 *
 * so a weighting w_a of target a is the weighting w_b = w_a F_a / F_b of target b, with
 * F_x0 = 1, F_eps = e^lambda, F_v = 1 + e^lambda, F_score = e^lambda (1 + e^lambda)
 * (`targetFactor`, `convertWeighting`). Every weighting names the target it was defined on (`space`).
 *
 * | weighting                     | defined on | w(lambda)                          | same as                |
 * | ----------------------------- | ---------- | ---------------------------------- | ---------------------- |
 * | uniform (Ho et al. 2020)      | any        | 1                                  | SNR, on x0 (for eps)   |
 * | SNR                           | x0         | e^lambda                           | uniform on eps         |
 * | min-SNR-gamma (Hang 2023)     | x0         | min(e^lambda, gamma)               | min(SNR, g)/SNR on eps |
 * | truncated SNR (Salimans 2022) | x0         | max(e^lambda, 1)                   |                        |
 * | EDM lambda(sigma) (Karras 22) | x0         | (s^2 + sd^2)/(s sd)^2 = e^l + 1/sd^2 | uniform on v if sd = 1 |
 * | ELBO (VDM eq. 17)             | eps        | 1 / (2 p(lambda))                  | likelihood weighting   |
 * | NCSN sigma^2 (Song 2019)      | score      | sigma^2 / 2                        | uniform/2 on eps       |
 * | likelihood (Song 2021)        | score      | sigma^2 / (2 p(lambda))            | ELBO                   |
 *
 * Here p(lambda) is the density with which the training sampler draws lambda (for t ~ U(0, 1),
 * p(lambda) = 1 / |d lambda / dt|); the two ELBO weightings need it, the others do not.
 */
import type { Prediction } from '@diffuse/schedules';
import { assertPrediction } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { LossError } from './errors.js';

/**
 * A per-example loss weight as a function of logSNR lambda (and, for the ELBO weightings, of the
 * density p(lambda) with which lambda was drawn). It multiplies the squared error of `space`.
 */
export interface Weighting {
  /** A readable name, e.g. `min-snr-5`. */
  readonly name: string;
  /** The target whose squared error the weight multiplies. */
  readonly space: Prediction;
  /** True when `weight` needs the density p(lambda) of the training sampler. */
  readonly needsDensity: boolean;
  /** w(lambda) for a tensor of logSNRs (differentiable); `density` is p(lambda), same shape. */
  weight(logSNR: tf.Tensor, density?: tf.Tensor): tf.Tensor;
}

function needDensity(name: string, density: tf.Tensor | undefined): tf.Tensor {
  if (density === undefined) {
    throw new LossError(
      `the ${name} weighting needs the density p(lambda) of the sampled logSNRs; use a LogSNRSampler (which reports it)`,
    );
  }
  return density;
}

function positiveFinite(name: string, value: number): void {
  if (!(value > 0) || !Number.isFinite(value)) {
    throw new LossError(`${name} must be a positive finite number, got ${value}`);
  }
}

/**
 * log F_target(lambda): log of the factor turning the squared x0 error into the squared error of
 * `target` (variance preserving):
 *
 *     log F_x0 = 0,  log F_eps = lambda,  log F_v = softplus(lambda),  log F_score = lambda + softplus(lambda),
 *     log F_flow = 2 softplus(lambda / 2)   (u = eps - x0: du = -(alpha / sigma + 1) dx0 at fixed x_t)
 *
 * @example
 * const logF = logTargetFactor('v', tf.tensor1d([-2, 0, 2])); // softplus(lambda), differentiable
 */
export function logTargetFactor(target: Prediction, logSNR: tf.Tensor): tf.Tensor {
  assertPrediction(target);
  return tf.tidy(() => {
    switch (target) {
      case 'x0':
        return tf.zerosLike(logSNR);
      case 'epsilon':
        return tf.clone(logSNR);
      case 'v':
        return tf.softplus(logSNR);
      case 'score':
        return tf.add(logSNR, tf.softplus(logSNR));
      case 'flow':
        return tf.mul(tf.softplus(tf.mul(logSNR, 0.5)), 2);
    }
  });
}

/**
 * F_target(lambda) = ||target - target_hat||^2 / ||x0 - x0_hat||^2 at logSNR lambda (VP):
 * 1 for x0, e^lambda for epsilon, 1 + e^lambda for v, e^lambda (1 + e^lambda) for the score.
 *
 * @example
 * targetFactor('epsilon', 0); // 1: at SNR = 1 the eps error equals the x0 error
 * targetFactor('v', 0);       // 2
 */
export function targetFactor(target: Prediction, logSNR: number): number {
  return tf.tidy(() => Math.exp(logTargetFactor(target, tf.scalar(logSNR)).dataSync()[0]!));
}

function weighting(
  name: string,
  space: Prediction,
  weight: (logSNR: tf.Tensor, density?: tf.Tensor) => tf.Tensor,
  needsDensity = false,
): Weighting {
  return { name, space, needsDensity, weight: (l, p) => tf.tidy(() => weight(l, p)) };
}

/**
 * The uniform weighting on one target: w = 1, i.e. plain MSE on `space`. With `space = 'epsilon'`
 * this is Ho et al. 2020's L_simple (eq. 14); on x0 it equals the SNR weighting divided by SNR.
 *
 * @example
 * const w = uniformWeighting('v'); // plain v-MSE (Salimans & Ho 2022)
 */
export function uniformWeighting(space: Prediction = 'epsilon'): Weighting {
  assertPrediction(space);
  return weighting(`uniform-${space}`, space, (l) => tf.onesLike(l));
}

/**
 * SNR weighting on x0: w_x0(lambda) = SNR = e^lambda. Identical to the uniform eps-MSE
 * (||eps - eps_hat||^2 = SNR ||x0 - x0_hat||^2; Hang et al. 2023, sec. 3.2).
 *
 * @example
 * const w = snrWeighting(); // convertWeighting(w, 'epsilon') weighs eps errors by 1
 */
export function snrWeighting(): Weighting {
  return weighting('snr', 'x0', (l) => tf.exp(l));
}

/**
 * Min-SNR-gamma weighting (Hang et al. 2023, "Efficient diffusion training via Min-SNR weighting
 * strategy", eq. 6): w_x0(lambda) = min(e^lambda, gamma). On eps it is min(SNR, gamma) / SNR, on v
 * min(SNR, gamma) / (SNR + 1) (`convertWeighting`).
 *
 * @example
 * const w = minSNRWeighting(5); // the paper's default gamma = 5
 */
export function minSNRWeighting(gamma = 5): Weighting {
  positiveFinite('min-SNR gamma', gamma);
  return weighting(`min-snr-${gamma}`, 'x0', (l) => tf.minimum(tf.exp(l), gamma));
}

/**
 * Truncated SNR weighting (Salimans & Ho 2022, "Progressive distillation", sec. 4):
 * w_x0(lambda) = max(e^lambda, 1), i.e. max(||x0 err||^2, ||eps err||^2).
 *
 * @example
 * const w = truncatedSNRWeighting();
 */
export function truncatedSNRWeighting(): Weighting {
  return weighting('truncated-snr', 'x0', (l) => tf.maximum(tf.exp(l), 1));
}

/**
 * EDM's loss weighting (Karras et al. 2022, eq. 8 and Table 1, "Ours"), with the VE noise level
 * s = sigma / alpha = e^{-lambda / 2} and the data's standard deviation sd:
 *
 *     lambda_EDM(s) = (s^2 + sd^2) / (s sd)^2 = e^lambda + 1 / sd^2     (on x0, i.e. on EDM's D)
 *
 * For sd = 1 this is 1 + SNR, the uniform v weighting.
 *
 * @example
 * const w = edmWeighting(0.5); // images in [-1, 1]
 */
export function edmWeighting(sigmaData = 0.5): Weighting {
  positiveFinite('EDM sigmaData', sigmaData);
  return weighting(`edm-${sigmaData}`, 'x0', (l) => tf.add(tf.exp(l), 1 / (sigmaData * sigmaData)));
}

/**
 * The ELBO weighting (Kingma et al. 2021, VDM eq. 17; Kingma & Gao 2023, eq. 8 with w(lambda) = 1):
 *
 *     L_inf = -1/2 E_t[ lambda'(t) e^lambda ||x0 - x0_hat||^2 ] = 1/2 int ||eps - eps_hat||^2 d lambda
 *           = E_{lambda ~ p}[ ||eps - eps_hat||^2 / (2 p(lambda)) ]
 *
 * so on eps the weight is 1 / (2 p(lambda)) for lambda drawn with density p (for t ~ U(0, 1) it is
 * -lambda'(t) / 2). Summed over dimensions it is the continuous-time diffusion loss in nats.
 *
 * @example
 * const w = elboWeighting(); // needs a sampler that reports p(lambda)
 */
export function elboWeighting(): Weighting {
  return weighting(
    'elbo',
    'epsilon',
    (l, p) => tf.div(tf.onesLike(l), tf.mul(2, needDensity('ELBO', p))),
    true,
  );
}

/**
 * NCSN's weighting of denoising score matching (Song & Ermon 2019, eq. 2 and lambda(sigma) = sigma^2):
 *
 *     1/2 sigma^2 ||score_hat + eps / sigma||^2 = 1/2 ||eps - eps_hat||^2
 *
 * i.e. w_score(lambda) = sigma^2 / 2 = sigmoid(-lambda) / 2: half the uniform eps weighting.
 *
 * @example
 * const w = ncsnWeighting();
 */
export function ncsnWeighting(): Weighting {
  return weighting('ncsn', 'score', (l) => tf.mul(0.5, tf.sigmoid(tf.neg(l))));
}

/**
 * Score-SDE's likelihood weighting (Song, Durkan, Murray & Ermon 2021, "Maximum likelihood training
 * of score-based diffusion models", Thm. 1): lambda(t) = g(t)^2. For x_t = alpha x0 + sigma eps the
 * diffusion coefficient is g(t)^2 = -sigma_t^2 lambda'(t), so
 *
 *     1/2 int g(t)^2 ||score - score_hat||^2 dt = 1/2 int sigma^2 ||score - score_hat||^2 d lambda
 *                                              = 1/2 int ||eps - eps_hat||^2 d lambda,
 *
 * the ELBO weighting again: w_score(lambda) = sigma^2 / (2 p(lambda)).
 *
 * @example
 * const w = likelihoodWeighting(); // convertWeighting(w, 'epsilon') equals elboWeighting()
 */
export function likelihoodWeighting(): Weighting {
  return weighting(
    'likelihood',
    'score',
    (l, p) => tf.div(tf.sigmoid(tf.neg(l)), tf.mul(2, needDensity('likelihood', p))),
    true,
  );
}

/**
 * The same weighting expressed on another target: w_to = w_from F_from / F_to, so that
 * w_to ||to - to_hat||^2 = w_from ||from - from_hat||^2 for every prediction (Hang et al. 2023,
 * sec. 3.2: min-SNR on eps is min(SNR, gamma) / SNR).
 *
 * @example
 * const onEps = convertWeighting(minSNRWeighting(5), 'epsilon'); // min(SNR, 5) / SNR
 */
export function convertWeighting(w: Weighting, to: Prediction): Weighting {
  assertPrediction(to);
  if (w.space === to) return w;
  return weighting(
    `${w.name}@${to}`,
    to,
    (l, p) =>
      tf.mul(w.weight(l, p), tf.exp(tf.sub(logTargetFactor(w.space, l), logTargetFactor(to, l)))),
    w.needsDensity,
  );
}

/**
 * Values of a weighting at the given logSNRs (and densities, for the ELBO weightings), on `space`
 * (default: the weighting's own). For tables, plots and the importance sampler; not for inner loops.
 *
 * @example
 * weightingValues(minSNRWeighting(5), [-2, 0, 2, 4], undefined, 'epsilon'); // min(SNR, 5) / SNR
 */
export function weightingValues(
  w: Weighting,
  logSNR: ArrayLike<number>,
  density?: ArrayLike<number>,
  space: Prediction = w.space,
): Float64Array {
  if (density !== undefined && density.length !== logSNR.length) {
    throw new LossError(`density has ${density.length} entries but logSNR has ${logSNR.length}`);
  }
  const ww = convertWeighting(w, space);
  const values = tf.tidy(() => {
    const l = tf.tensor1d(Float32Array.from(logSNR));
    const p = density === undefined ? undefined : tf.tensor1d(Float32Array.from(density));
    return ww.weight(l, p);
  });
  const out = Float64Array.from(values.dataSync());
  values.dispose();
  return out;
}

/**
 * Kingma & Gao's weighting function (2023, eq. 8 and Table 1): every weighted loss
 * E_{lambda ~ p}[w_eps(lambda) ||eps - eps_hat||^2] equals 1/2 int w_KG(lambda) ||eps - eps_hat||^2 d lambda with
 *
 *     w_KG(lambda) = 2 p(lambda) w_eps(lambda),
 *
 * which is 1 for the ELBO; when w_KG is monotone in lambda the loss is an ELBO of noise-augmented data.
 * Examples: uniform eps with the cosine schedule gives sech(lambda / 2) / pi; EDM gives
 * 2 N(lambda; 2.4, 2.4^2) (e^-lambda + 0.5^2) / 0.5^2.
 *
 * @example
 * effectiveWeighting(elboWeighting(), [0, 1], [0.1, 0.2]); // [1, 1]
 */
export function effectiveWeighting(
  w: Weighting,
  logSNR: ArrayLike<number>,
  density: ArrayLike<number>,
): Float64Array {
  const eps = weightingValues(w, logSNR, density, 'epsilon');
  for (let i = 0; i < eps.length; i++) eps[i] = 2 * density[i]! * eps[i]!;
  return eps;
}
