/**
 * The variance-exploding SDE with a geometric sigma (Song et al. 2021, eq. 9 and 31; NCSN++):
 *
 *     alpha(t) = 1,   sigma(t) = sigma_min (sigma_max / sigma_min)^t
 *     lambda(t) = -2 log sigma(t) = -2 log sigma_min - 2 t log(sigma_max / sigma_min)   (linear in t)
 */
import * as tf from '@tensorflow/tfjs-core';
import { ScheduleError } from '../errors.js';
import { BaseSchedule, readParams, type ScheduleConfig } from './schedule.js';

/** Parameters of `VEGeometricSchedule` (defaults: score SDE's 0.01 and 50). */
export interface VEGeometricParams {
  sigmaMin?: number;
  sigmaMax?: number;
}

/**
 * Score SDE's VE schedule.
 *
 * @example
 * const s = new VEGeometricSchedule({ sigmaMin: 0.01, sigmaMax: 50 });
 * s.sigma(1); // 50
 */
export class VEGeometricSchedule extends BaseSchedule {
  readonly name = 've';
  readonly variancePreserving = false;
  readonly sigmaMin: number;
  readonly sigmaMax: number;

  constructor(params: VEGeometricParams = {}) {
    super();
    const p = readParams('ve', params as Record<string, unknown>, { sigmaMin: 0.01, sigmaMax: 50 });
    if (!(p.sigmaMin > 0 && p.sigmaMax > p.sigmaMin)) {
      throw new ScheduleError(`ve: need 0 < sigmaMin < sigmaMax, got ${p.sigmaMin}, ${p.sigmaMax}`);
    }
    this.sigmaMin = p.sigmaMin;
    this.sigmaMax = p.sigmaMax;
  }

  private get logRatio(): number {
    return Math.log(this.sigmaMax / this.sigmaMin);
  }

  protected logSNRAt(t: number): number {
    return -2 * (Math.log(this.sigmaMin) + t * this.logRatio);
  }

  protected dLogSNRdtAt(_t: number): number {
    return -2 * this.logRatio;
  }

  protected override tFromLogSNRChecked(logSNR: number): number {
    return Math.min(1, Math.max(0, (-0.5 * logSNR - Math.log(this.sigmaMin)) / this.logRatio));
  }

  logSNRTensor(t: tf.Tensor): tf.Tensor {
    return tf.tidy(() => tf.add(tf.mul(t, -2 * this.logRatio), -2 * Math.log(this.sigmaMin)));
  }

  dLogSNRdtTensor(t: tf.Tensor): tf.Tensor {
    return tf.fill(t.shape, -2 * this.logRatio);
  }

  toConfig(): ScheduleConfig {
    return { name: this.name, sigmaMin: this.sigmaMin, sigmaMax: this.sigmaMax };
  }
}
