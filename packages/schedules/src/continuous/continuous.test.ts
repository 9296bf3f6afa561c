/** Closed forms of each continuous schedule (the shared conformance test is in ../registry.test.ts). */
import { initBackend } from '@diffuse/backend';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  CosineSchedule,
  EDMSchedule,
  karrasSigmas,
  LogSNRLinearSchedule,
  SubVPSchedule,
  VEGeometricSchedule,
  VPLinearSchedule,
  vpSigmas,
} from '../index.js';
import { loadRef, worstRatio } from '../testing/refs.js';

beforeAll(async () => {
  await initBackend('wasm');
});

describe('VP with linear beta (score SDE)', () => {
  const s = new VPLinearSchedule({ betaMin: 0.1, betaMax: 20 });
  it('alpha = exp(-B/2), sigma^2 = 1 - exp(-B)', () => {
    for (const t of [1e-5, 0.1, 0.5, 1]) {
      const B = 0.1 * t + 0.5 * 19.9 * t * t;
      expect(s.alpha(t)).toBeCloseTo(Math.exp(-B / 2), 14);
      expect(s.sigma(t) ** 2).toBeCloseTo(1 - Math.exp(-B), 14);
    }
    expect(s.logSNR(0)).toBe(Number.POSITIVE_INFINITY);
    expect(s.level(0)).toEqual({ alpha: 1, sigma: 0 });
  });
  it("its VE sigmas at t = linspace(1, 1e-3) are k-diffusion's get_sigmas_vp (refs, rtol 1e-12)", () => {
    const ref = loadRef<{ schedules: { vp_n10: { sigmas: number[] } } }>(
      'kdiffusion/trajectories.json',
    ).schedules.vp_n10.sigmas;
    const ts = Array.from({ length: 10 }, (_, i) => 1 + (i * (1e-3 - 1)) / 9);
    const ours = ts.map((t) => s.sigma(t) / s.alpha(t));
    expect(worstRatio(ours, ref.slice(0, 10), 1e-12)).toBeLessThanOrEqual(1);
    expect(worstRatio(vpSigmas(10).subarray(0, 10), ours, 1e-12)).toBeLessThanOrEqual(1);
  });
});

describe('sub-VP', () => {
  it('sigma_subVP = sigma_VP^2 with the same alpha; logSNR above the VP one', () => {
    const vp = new VPLinearSchedule();
    const sub = new SubVPSchedule();
    for (const t of [0.01, 0.3, 0.9]) {
      expect(sub.alpha(t)).toBeCloseTo(vp.alpha(t), 14);
      expect(sub.sigma(t)).toBeCloseTo(vp.sigma(t) ** 2, 14);
      expect(sub.logSNR(t)).toBeGreaterThan(vp.logSNR(t));
    }
  });
  it('inverts logSNR without overflow far out in both directions', () => {
    const sub = new SubVPSchedule();
    for (const t of [1e-7, 1e-4, 0.999999])
      expect(sub.tFromLogSNR(sub.logSNR(t)) / t).toBeCloseTo(1, 6);
  });
});

describe('VE geometric', () => {
  it('sigma(t) = sigma_min (sigma_max / sigma_min)^t', () => {
    const s = new VEGeometricSchedule({ sigmaMin: 0.01, sigmaMax: 50 });
    expect(s.sigma(0)).toBeCloseTo(0.01, 14);
    expect(s.sigma(1)).toBeCloseTo(50, 11);
    expect(s.sigma(0.5)).toBeCloseTo(Math.sqrt(0.01 * 50), 12);
    expect(s.alpha(0.3)).toBe(1);
  });
});

describe('cosine', () => {
  it('alpha = cos(a t + b), and nearly cos(pi t / 2) with wide endpoints', () => {
    const s = new CosineSchedule({ logSNRMin: -15, logSNRMax: 15 });
    expect(s.logSNR(0)).toBeCloseTo(15, 12);
    expect(s.logSNR(1)).toBeCloseTo(-15, 12);
    expect(s.logSNR(0.5)).toBeCloseTo(0, 12);
    const wide = new CosineSchedule({ logSNRMin: -60, logSNRMax: 60 });
    for (const t of [0.1, 0.5, 0.9]) {
      expect(wide.alpha(t)).toBeCloseTo(Math.cos((Math.PI * t) / 2), 10);
      expect(wide.sigma(t)).toBeCloseTo(Math.sin((Math.PI * t) / 2), 10);
    }
  });
});

describe("VDM's fixed schedule and EDM", () => {
  it('logsnr-linear: gamma(t) = -13.3 + 18.3 t', () => {
    const s = new LogSNRLinearSchedule();
    expect(s.logSNR(0)).toBe(13.3);
    expect(s.logSNR(1)).toBe(-5);
    expect(s.logSNR(0.5)).toBeCloseTo(-(-13.3 + 18.3 * 0.5), 14);
    expect(s.dLogSNRdt(0.2)).toBeCloseTo(-18.3, 14);
  });
  it('edm: sigma(1 - i/(n-1)) are the Karras sigmas', () => {
    const s = new EDMSchedule({ sigmaMin: 0.002, sigmaMax: 80, rho: 7 });
    const k = karrasSigmas(10, 0.002, 80, 7);
    for (let i = 0; i < 10; i++) expect(s.sigma(1 - i / 9) / k[i]!).toBeCloseTo(1, 12);
    expect(s.tFromSigma(k[4]!)).toBeCloseTo(1 - 4 / 9, 12);
  });
});

describe('tensor versions are differentiable in t', () => {
  it('grad of alpha from levelTensor matches d/dt alpha (vp-linear)', async () => {
    const s = new VPLinearSchedule();
    const t = tf.tensor1d([0.2, 0.6]);
    const g = tf.grad((x: tf.Tensor) => tf.sum(s.levelTensor(x).alpha))(t);
    const gv = await g.data();
    [0.2, 0.6].forEach((tt, i) => {
      const beta = 0.1 + 19.9 * tt;
      expect(gv[i]).toBeCloseTo(-0.5 * beta * s.alpha(tt), 4);
    });
    tf.dispose([t, g]);
  });
});
