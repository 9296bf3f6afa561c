import { assertNoLeaksSync, initBackend } from '@diffuse/backend';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import {
  cosineBetas,
  DiscreteSchedule,
  rescaleZeroTerminalSNR,
  ScheduleError,
  sigmoidBetas,
  TERMINAL_ALPHA_CUMPROD_FLOOR,
} from './index.js';
import { loadRef } from './testing/refs.js';

interface RefSchedule {
  name: string;
  num_train_timesteps: number;
  beta_schedule: 'linear' | 'scaled_linear' | 'squaredcos_cap_v2';
  beta_start?: number;
  beta_end?: number;
  rescale_betas_zero_snr: boolean;
  betas: number[];
  alphas_cumprod: number[];
  alphas_cumprod_last_in_euler_dpmsolver_unipc?: number;
}
const refs = loadRef<{ schedules: RefSchedule[] }>('diffusers/schedules.json').schedules;

function countDiffering(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
  return n;
}

describe('discrete beta tables match diffusers (float32, bit for bit)', () => {
  it.each(refs.map((r) => [r.name, r] as const))('%s', (_name, ref) => {
    const s = DiscreteSchedule.fromConfig({
      numTrainTimesteps: ref.num_train_timesteps,
      betaSchedule: ref.beta_schedule,
      ...(ref.beta_start !== undefined ? { betaStart: ref.beta_start } : {}),
      ...(ref.beta_end !== undefined ? { betaEnd: ref.beta_end } : {}),
      rescaleBetasZeroSnr: ref.rescale_betas_zero_snr,
    });
    expect(s.betas.length).toBe(ref.betas.length);
    // Exact float32 reproduction: every entry equal bit for bit.
    expect(countDiffering(s.betas, ref.betas)).toBe(0);
    expect(countDiffering(s.alphasCumprod, ref.alphas_cumprod)).toBe(0);
    if (ref.alphas_cumprod_last_in_euler_dpmsolver_unipc !== undefined) {
      const patched = s.withTerminalFloor();
      expect(patched.alphasCumprod[999]).toBe(ref.alphas_cumprod_last_in_euler_dpmsolver_unipc);
      expect(TERMINAL_ALPHA_CUMPROD_FLOOR).toBe(ref.alphas_cumprod_last_in_euler_dpmsolver_unipc);
      expect(Number.isFinite(patched.sigmas[999]!)).toBe(true);
      expect(s.alphasCumprod[999]).toBe(0);
    }
  });
});

describe('DiscreteSchedule.fromAlphasCumprod', () => {
  it('keeps the table exactly, derives betas and levels from it, and rejects a bad table', () => {
    const ac = [0.9, 0.72, 0.504, 0.1];
    const s = DiscreteSchedule.fromAlphasCumprod(ac);
    expect(Array.from(s.alphasCumprod)).toEqual(ac);
    expect(s.numTrainTimesteps).toBe(4);
    for (const [i, b] of [0.1, 0.2, 0.3, 1 - 0.1 / 0.504].entries())
      expect(s.betas[i]).toBeCloseTo(b, 14);
    expect(s.levelAtIndex(2)).toEqual({ alpha: Math.sqrt(0.504), sigma: Math.sqrt(1 - 0.504) });
    expect(DiscreteSchedule.fromAlphasCumprod([0.5, 0]).alphasCumprod[1]).toBe(0);
    expect(() => DiscreteSchedule.fromAlphasCumprod([0.5, 0.6])).toThrow(/alphasCumprod\[1\]/);
    expect(() => DiscreteSchedule.fromAlphasCumprod([0.5, Number.NaN])).toThrow(ScheduleError);
    expect(() => DiscreteSchedule.fromAlphasCumprod([0, 0])).toThrow(/alphasCumprod\[0\]/);
    expect(() => DiscreteSchedule.fromAlphasCumprod([0.5])).toThrow(/integer >= 2/);
  });
});

describe('discrete schedule closed forms', () => {
  it('cosine betas follow abar(t) = cos^2((t+s)/(1+s) pi/2) / cos^2(s/(1+s) pi/2), capped at 0.999', () => {
    const b = cosineBetas(1000);
    const s = DiscreteSchedule.fromBetas(b);
    const abar = (t: number) =>
      Math.cos(((t + 0.008) / 1.008) * (Math.PI / 2)) ** 2 /
      Math.cos((0.008 / 1.008) * (Math.PI / 2)) ** 2;
    for (const i of [0, 100, 500, 900]) {
      expect(s.alphasCumprod[i]).toBeCloseTo(abar((i + 1) / 1000), 5);
    }
    expect(b[999]).toBe(Math.fround(0.999));
  });

  it('sigmoid betas: sigmoid(linspace(-6, 6)) scaled to [start, end], monotone', () => {
    const b = sigmoidBetas(1000, 1e-4, 0.02);
    const sig = (x: number) => 1 / (1 + Math.exp(-x));
    expect(b[0]).toBeCloseTo(sig(-6) * (0.02 - 1e-4) + 1e-4, 9);
    expect(b[999]).toBeCloseTo(sig(6) * (0.02 - 1e-4) + 1e-4, 8);
    expect(b[500]).toBeCloseTo(sig(-6 + (12 * 500) / 999) * (0.02 - 1e-4) + 1e-4, 8);
    for (let i = 1; i < 1000; i++) expect(b[i]!).toBeGreaterThanOrEqual(b[i - 1]!);
  });

  it('zero-terminal-SNR rescaling keeps abar_0, zeroes abar_T, and is affine in sqrt(abar)', () => {
    const s = DiscreteSchedule.fromConfig({
      betaSchedule: 'scaled_linear',
      betaStart: 0.00085,
      betaEnd: 0.012,
    });
    const r = DiscreteSchedule.fromBetas(rescaleZeroTerminalSNR(s.betas));
    expect(r.alphasCumprod[0]).toBeCloseTo(s.alphasCumprod[0]!, 6);
    expect(r.alphasCumprod[999]).toBe(0);
    expect(r.betas[999]).toBe(1);
    const a0 = Math.sqrt(s.alphasCumprod[0]!);
    const aT = Math.sqrt(s.alphasCumprod[999]!);
    for (const i of [10, 300, 700, 990]) {
      const expected = ((Math.sqrt(s.alphasCumprod[i]!) - aT) * a0) / (a0 - aT);
      expect(Math.sqrt(r.alphasCumprod[i]!)).toBeCloseTo(expected, 5);
    }
    expect(r.logSNR(999)).toBe(Number.NEGATIVE_INFINITY);
    expect(r.levelAt(999)).toEqual({ alpha: 0, sigma: 1 });
  });

  it('levels at integer and fractional timesteps', () => {
    const s = DiscreteSchedule.fromConfig();
    for (const i of [0, 1, 499, 999]) {
      const { alpha, sigma } = s.levelAt(i);
      expect(alpha * alpha + sigma * sigma).toBeCloseTo(1, 14);
      expect(alpha).toBe(Math.sqrt(s.alphasCumprod[i]!));
      expect(s.logSNR(i)).toBeCloseTo(
        Math.log(s.alphasCumprod[i]! / (1 - s.alphasCumprod[i]!)),
        10,
      );
    }
    // Fractional: log sigma_VE is linear between steps (the refs README's model convention).
    const t = 700.25;
    const sv = (i: number) => Math.sqrt((1 - s.alphasCumprod[i]!) / s.alphasCumprod[i]!);
    const expected = Math.exp(0.75 * Math.log(sv(700)) + 0.25 * Math.log(sv(701)));
    expect(s.sigmaVE(t)).toBeCloseTo(expected, 12);
    const lvl = s.levelAt(t);
    expect(lvl.alpha).toBeCloseTo(1 / Math.sqrt(1 + expected ** 2), 14);
    expect(lvl.sigma / lvl.alpha).toBeCloseTo(expected, 12);
    // timestepFromSigma inverts it (diffusers' _sigma_to_t), up to the float32 log table.
    expect(s.timestepFromSigma(expected)).toBeCloseTo(t, 3);
    expect(s.timestepFromSigma(s.sigmas[321]!)).toBeCloseTo(321, 4); // float32 log table
    expect(s.timestepFromSigma(1e-9)).toBe(0);
    expect(s.timestepFromSigma(1e9)).toBe(999);
  });

  it('VE sigmas are float32 sqrt((1 - abar) / abar)', () => {
    const s = DiscreteSchedule.fromConfig({
      betaSchedule: 'scaled_linear',
      betaStart: 0.00085,
      betaEnd: 0.012,
    });
    expect(s.sigmas[999]).toBe(14.614645004272461); // diffusers' Euler init_noise_sigma (trailing)
    expect(s.sigmas[0]).toBe(0.029167532920837402);
  });
});

describe('discrete schedule errors', () => {
  it.each([
    [
      { trainedBetas: [0.1, 1.2, 0.3], numTrainTimesteps: 3 },
      /trainedBetas\[1\] = 1.2 is outside \(0, 1\)/,
    ],
    [{ trainedBetas: [0.1, 0, 0.3], numTrainTimesteps: 3 }, /trainedBetas\[1\] = 0 is outside/],
    [{ trainedBetas: [0.1, Number.NaN], numTrainTimesteps: 2 }, /trainedBetas\[1\] = NaN/],
    [
      { trainedBetas: [0.1, 0.2], numTrainTimesteps: 3 },
      /trainedBetas has 2 entries but numTrainTimesteps is 3/,
    ],
    [{ betaStart: -1 }, /betaStart must be in \(0, 1\), got -1/],
    [{ betaEnd: 1.5 }, /betaEnd must be in \(0, 1\)/],
    [{ numTrainTimesteps: 10.5 }, /numTrainTimesteps must be an integer/],
    // biome-ignore lint/suspicious/noExplicitAny: deliberately wrong input
    [{ betaSchedule: 'quadratic' as any }, /unknown betaSchedule 'quadratic'/],
  ])('%o', (config, message) => {
    expect(() => DiscreteSchedule.fromConfig(config)).toThrow(ScheduleError);
    expect(() => DiscreteSchedule.fromConfig(config)).toThrow(message);
  });

  it('accepts a final beta of exactly 1 (zero terminal SNR)', () => {
    expect(DiscreteSchedule.fromBetas([0.1, 0.5, 1]).alphasCumprod[2]).toBe(0);
  });

  it('rejects timesteps outside [0, T-1]', () => {
    const s = DiscreteSchedule.fromConfig();
    expect(() => s.levelAt(-0.5)).toThrow(/timestep -0.5 is outside \[0, 999\]/);
    expect(() => s.levelAt(999.5)).toThrow(ScheduleError);
    expect(() => s.levelAt(Number.NaN)).toThrow(ScheduleError);
    expect(() => s.levelAtIndex(3.5)).toThrow(/index 3.5/);
    expect(() => s.timestepFromSigma(-1)).toThrow(/sigma must be >= 0/);
  });
});

describe('discrete schedule inverses and tensors', () => {
  it('tFromLogSNR / tFromSigma invert logSNR / sigma, also at fractional t', () => {
    const s = DiscreteSchedule.fromConfig({
      betaSchedule: 'scaled_linear',
      betaStart: 0.00085,
      betaEnd: 0.012,
    });
    for (const t of [0, 0.5, 1, 123.4, 500, 998.75, 999]) {
      expect(s.tFromLogSNR(s.logSNR(t))).toBeCloseTo(t, 9);
      expect(s.tFromSigma(s.sigma(t))).toBeCloseTo(t, 6);
    }
    // agrees with diffusers' float32 sigma-to-t map up to its float32 rounding
    expect(s.tFromLogSNR(-2 * Math.log(s.sigmas[700]!))).toBeCloseTo(
      s.timestepFromSigma(s.sigmas[700]!),
      3,
    );
    expect(() => s.tFromLogSNR(s.logSNR(0) + 1)).toThrow(/outside the schedule's range/);
    expect(() => s.tFromSigma(0)).toThrow(/VP sigma must be in \(0, 1\]/);
  });

  it('dlogSNR/dt is the slope of the step', () => {
    const s = DiscreteSchedule.fromConfig();
    expect(s.dLogSNRdt(10.3)).toBe(s.logSNRs[11]! - s.logSNRs[10]!);
    expect(s.dLogSNRdt(999)).toBe(s.logSNRs[999]! - s.logSNRs[998]!);
    const h = 1e-4;
    expect((s.logSNR(10.3 + h) - s.logSNR(10.3 - h)) / (2 * h)).toBeCloseTo(s.dLogSNRdt(10.3), 6);
  });

  it('zero terminal SNR: logSNR -inf at T-1 inverts to T-1', () => {
    const z = DiscreteSchedule.fromConfig({ rescaleBetasZeroSnr: true });
    expect(z.tFromLogSNR(Number.NEGATIVE_INFINITY)).toBe(999);
    expect(z.tFromLogSNR(z.logSNR(998))).toBeCloseTo(998, 9);
  });

  it('levelAtIndexTensor gathers alpha and sigma', async () => {
    await initBackend('wasm');
    const s = DiscreteSchedule.fromConfig();
    const idx = tf.tensor1d([0, 500, 999], 'int32');
    const { alpha, sigma } = assertNoLeaksSync(() => s.levelAtIndexTensor(idx));
    const [a, g] = await Promise.all([alpha.data(), sigma.data()]);
    for (const [k, i] of [0, 500, 999].entries()) {
      expect(a[k]).toBeCloseTo(s.levelAt(i).alpha, 6);
      expect(g[k]).toBeCloseTo(s.levelAt(i).sigma, 6);
    }
    const float = tf.tensor1d([1]);
    expect(() => s.levelAtIndexTensor(float)).toThrow(/must be int32/);
    tf.dispose([idx, alpha, sigma, float]);
  });
});
