/**
 * The variance-preserving SDE with a linear beta(t) (Song et al. 2021, "Score-Based Generative Modeling
 * through SDEs", eq. 11 and 33; the continuous limit of DDPM's linear betas):
 *
 *     beta(t) = beta_min + t (beta_max - beta_min),   B(t) = int_0^t beta = beta_min t + (beta_max - beta_min) t^2 / 2
 *     alpha(t) = exp(-B/2),  sigma(t) = sqrt(1 - exp(-B)),  lambda(t) = -log(expm1(B))
 *     dlambda/dt = -beta(t) / (1 - exp(-B))
 *
 * lambda(0) = +Infinity (score SDE integrates from t = eps = 1e-5).
 */
import * as tf from '@tensorflow/tfjs-core';
import { ScheduleError } from '../errors.js';
import { softplus } from '../noise-level.js';
import { BaseSchedule, expm1Tensor, readParams, type ScheduleConfig } from './schedule.js';

/** Parameters of `VPLinearSchedule` (defaults: score SDE's 0.1 and 20). */
export interface VPLinearParams {
  betaMin?: number;
  betaMax?: number;
}

/** B(t) = beta_min t + (beta_max - beta_min) t^2 / 2. */
export function integratedBeta(t: number, betaMin: number, betaMax: number): number {
  return betaMin * t + 0.5 * (betaMax - betaMin) * t * t;
}

/** The t >= 0 with B(t) = b: the positive root of the quadratic, in its cancellation-free form. */
export function tFromIntegratedBeta(b: number, betaMin: number, betaMax: number): number {
  const d = betaMax - betaMin;
  return (2 * b) / (betaMin + Math.sqrt(betaMin * betaMin + 2 * d * b));
}

/** B(t) on a tensor. */
export function integratedBetaTensor(t: tf.Tensor, betaMin: number, betaMax: number): tf.Tensor {
  return tf.tidy(() => tf.mul(t, tf.add(betaMin, tf.mul(t, 0.5 * (betaMax - betaMin)))));
}

export function checkBetaRange(name: string, betaMin: number, betaMax: number): void {
  if (!(betaMin >= 0 && betaMax > betaMin)) {
    throw new ScheduleError(
      `${name}: need 0 <= betaMin < betaMax, got betaMin = ${betaMin}, betaMax = ${betaMax}`,
    );
  }
}

/**
 * Score SDE's VP schedule with linear beta(t).
 *
 * @example
 * const s = new VPLinearSchedule();          // beta 0.1 .. 20
 * s.logSNR(1);                               // -log(expm1(10.05)) = -10.05 (about)
 * s.tFromLogSNR(s.logSNR(0.3));              // 0.3
 */
export class VPLinearSchedule extends BaseSchedule {
  readonly name = 'vp-linear';
  readonly variancePreserving = true;
  readonly betaMin: number;
  readonly betaMax: number;

  constructor(params: VPLinearParams = {}) {
    super();
    const p = readParams('vp-linear', params as Record<string, unknown>, {
      betaMin: 0.1,
      betaMax: 20,
    });
    checkBetaRange('vp-linear', p.betaMin, p.betaMax);
    this.betaMin = p.betaMin;
    this.betaMax = p.betaMax;
  }

  protected logSNRAt(t: number): number {
    return -Math.log(Math.expm1(integratedBeta(t, this.betaMin, this.betaMax)));
  }

  protected dLogSNRdtAt(t: number): number {
    const b = integratedBeta(t, this.betaMin, this.betaMax);
    return -(this.betaMin + t * (this.betaMax - this.betaMin)) / -Math.expm1(-b);
  }

  protected override tFromLogSNRChecked(logSNR: number): number {
    // expm1(B) = exp(-lambda)  =>  B = log(1 + exp(-lambda)) = softplus(-lambda)
    return Math.min(1, tFromIntegratedBeta(softplus(-logSNR), this.betaMin, this.betaMax));
  }

  logSNRTensor(t: tf.Tensor): tf.Tensor {
    return tf.tidy(() =>
      tf.neg(tf.log(expm1Tensor(integratedBetaTensor(t, this.betaMin, this.betaMax)))),
    );
  }

  dLogSNRdtTensor(t: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const beta = tf.add(this.betaMin, tf.mul(t, this.betaMax - this.betaMin));
      const b = integratedBetaTensor(t, this.betaMin, this.betaMax);
      // -beta / (1 - e^-B) = -beta (1 + 1 / expm1(B))
      return tf.neg(tf.mul(beta, tf.add(1, tf.reciprocal(expm1Tensor(b)))));
    });
  }

  toConfig(): ScheduleConfig {
    return { name: this.name, betaMin: this.betaMin, betaMax: this.betaMax };
  }
}
