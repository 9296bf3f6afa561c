/**
 * The sub-VP SDE (Song et al. 2021, eq. 17 and 34): the same integrated beta B(t) as the VP SDE, with
 *
 *     alpha(t) = exp(-B/2),   sigma(t) = 1 - exp(-B)       (alpha^2 + sigma^2 <= 1)
 *     lambda(t) = -B - 2 log(-expm1(-B)),   dlambda/dt = -beta(t) (1 + 2 / expm1(B))
 *
 * The inverse has a closed form: with c = e^lambda and u = e^-B, c (1 - u)^2 = u.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ScheduleError } from '../errors.js';
import type { NoiseLevel } from '../noise-level.js';
import {
  BaseSchedule,
  checkTime,
  expm1Tensor,
  readParams,
  type ScheduleConfig,
} from './schedule.js';
import {
  checkBetaRange,
  integratedBeta,
  integratedBetaTensor,
  tFromIntegratedBeta,
  type VPLinearParams,
} from './vp-linear.js';

/**
 * Score SDE's sub-VP schedule.
 *
 * @example
 * const s = new SubVPSchedule();
 * s.level(0.5); // { alpha: exp(-B/2), sigma: 1 - exp(-B) }, B = 0.1*0.5 + 9.95*0.25
 */
export class SubVPSchedule extends BaseSchedule {
  readonly name = 'sub-vp';
  readonly variancePreserving = false;
  readonly betaMin: number;
  readonly betaMax: number;

  constructor(params: VPLinearParams = {}) {
    super();
    const p = readParams('sub-vp', params as Record<string, unknown>, {
      betaMin: 0.1,
      betaMax: 20,
    });
    checkBetaRange('sub-vp', p.betaMin, p.betaMax);
    this.betaMin = p.betaMin;
    this.betaMax = p.betaMax;
  }

  private b(t: number): number {
    return integratedBeta(t, this.betaMin, this.betaMax);
  }

  protected logSNRAt(t: number): number {
    const b = this.b(t);
    return -b - 2 * Math.log(-Math.expm1(-b));
  }

  protected dLogSNRdtAt(t: number): number {
    const beta = this.betaMin + t * (this.betaMax - this.betaMin);
    return -beta * (1 + 2 / Math.expm1(this.b(t)));
  }

  override level(t: number): NoiseLevel<number> {
    const b = this.b(checkTime(t, this.name));
    return { alpha: Math.exp(-0.5 * b), sigma: -Math.expm1(-b) };
  }

  protected override tFromLogSNRChecked(logSNR: number): number {
    // 1 - u from c (1 - u)^2 = u, written without overflow for either sign of lambda.
    let oneMinusU: number;
    if (logSNR < 0) {
      const c = Math.exp(logSNR);
      const q = Math.sqrt(4 * c + 1);
      oneMinusU = (1 + q) / (2 * c + 1 + q);
    } else {
      const r = Math.exp(-0.5 * logSNR);
      const q = r * Math.sqrt(4 + r * r);
      oneMinusU = (r * r + q) / (2 + r * r + q);
    }
    return Math.min(1, tFromIntegratedBeta(-Math.log1p(-oneMinusU), this.betaMin, this.betaMax));
  }

  override tFromSigma(sigma: number): number {
    const max = this.level(1).sigma;
    if (!(sigma >= 0 && sigma <= max))
      throw new ScheduleError(`sub-vp: sigma must be in [0, ${max}], got ${sigma}`);
    return Math.min(1, tFromIntegratedBeta(-Math.log1p(-sigma), this.betaMin, this.betaMax));
  }

  logSNRTensor(t: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const b = integratedBetaTensor(t, this.betaMin, this.betaMax);
      return tf.sub(tf.neg(b), tf.mul(2, tf.log(tf.neg(expm1Tensor(tf.neg(b))))));
    });
  }

  dLogSNRdtTensor(t: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const beta = tf.add(this.betaMin, tf.mul(t, this.betaMax - this.betaMin));
      const b = integratedBetaTensor(t, this.betaMin, this.betaMax);
      return tf.neg(tf.mul(beta, tf.add(1, tf.div(2, expm1Tensor(b)))));
    });
  }

  override levelTensor(t: tf.Tensor): NoiseLevel<tf.Tensor> {
    return tf.tidy(() => {
      const b = integratedBetaTensor(t, this.betaMin, this.betaMax);
      return { alpha: tf.exp(tf.mul(b, -0.5)), sigma: tf.neg(expm1Tensor(tf.neg(b))) };
    });
  }

  toConfig(): ScheduleConfig {
    return { name: this.name, betaMin: this.betaMin, betaMax: this.betaMax };
  }
}
