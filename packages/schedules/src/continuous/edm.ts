/**
 * EDM / Karras noise levels (Karras et al. 2022, eq. 5) as a continuous VE schedule: sigma is linear in
 * sigma^(1/rho) between sigma_min (t = 0) and sigma_max (t = 1),
 *
 *     sigma(t) = (sigma_min^(1/rho) + t (sigma_max^(1/rho) - sigma_min^(1/rho)))^rho,   alpha = 1
 *     lambda(t) = -2 rho log(...),   dlambda/dt = -2 rho (sigma_max^(1/rho) - sigma_min^(1/rho)) / (...)
 *
 * so EDM's n sampling steps are t_i = 1 - i / (n - 1) (see `karrasSigmas`).
 */
import * as tf from '@tensorflow/tfjs-core';
import { ScheduleError } from '../errors.js';
import { BaseSchedule, readParams, type ScheduleConfig } from './schedule.js';

/** Parameters of `EDMSchedule` (defaults: EDM's 0.002, 80, rho = 7). */
export interface EDMParams {
  sigmaMin?: number;
  sigmaMax?: number;
  rho?: number;
}

/**
 * The Karras/EDM noise levels.
 *
 * @example
 * const s = new EDMSchedule();
 * s.sigma(1); // 80
 * s.sigma(0); // 0.002
 */
export class EDMSchedule extends BaseSchedule {
  readonly name = 'edm';
  readonly variancePreserving = false;
  readonly sigmaMin: number;
  readonly sigmaMax: number;
  readonly rho: number;
  private readonly lo: number;
  private readonly span: number;

  constructor(params: EDMParams = {}) {
    super();
    const p = readParams('edm', params as Record<string, unknown>, {
      sigmaMin: 0.002,
      sigmaMax: 80,
      rho: 7,
    });
    if (!(p.sigmaMin > 0 && p.sigmaMax > p.sigmaMin && p.rho > 0)) {
      throw new ScheduleError(
        `edm: need 0 < sigmaMin < sigmaMax and rho > 0, got ${p.sigmaMin}, ${p.sigmaMax}, ${p.rho}`,
      );
    }
    this.sigmaMin = p.sigmaMin;
    this.sigmaMax = p.sigmaMax;
    this.rho = p.rho;
    this.lo = p.sigmaMin ** (1 / p.rho);
    this.span = p.sigmaMax ** (1 / p.rho) - this.lo;
  }

  protected logSNRAt(t: number): number {
    return -2 * this.rho * Math.log(this.lo + t * this.span);
  }

  protected dLogSNRdtAt(t: number): number {
    return (-2 * this.rho * this.span) / (this.lo + t * this.span);
  }

  protected override tFromLogSNRChecked(logSNR: number): number {
    return Math.min(1, Math.max(0, (Math.exp(-logSNR / (2 * this.rho)) - this.lo) / this.span));
  }

  logSNRTensor(t: tf.Tensor): tf.Tensor {
    return tf.tidy(() => tf.mul(-2 * this.rho, tf.log(tf.add(tf.mul(t, this.span), this.lo))));
  }

  dLogSNRdtTensor(t: tf.Tensor): tf.Tensor {
    return tf.tidy(() => tf.div(-2 * this.rho * this.span, tf.add(tf.mul(t, this.span), this.lo)));
  }

  toConfig(): ScheduleConfig {
    return { name: this.name, sigmaMin: this.sigmaMin, sigmaMax: this.sigmaMax, rho: this.rho };
  }
}
