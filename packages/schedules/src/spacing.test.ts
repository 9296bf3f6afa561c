import { describe, expect, it } from 'vitest';
import {
  CosineSchedule,
  DiscreteSchedule,
  diffusersSetTimesteps,
  diffusersTimesteps,
  exponentialSigmas,
  karrasSigmas,
  polyexponentialSigmas,
  ScheduleError,
  uniformLogSNR,
  uniformLogSNRTimes,
  VPLinearSchedule,
  validateSigmas,
  validateTimesteps,
  vpSigmas,
} from './index.js';
import { loadRef, worstRatio } from './testing/refs.js';

interface Entry {
  scheduler:
    | 'DDIMScheduler'
    | 'DDPMScheduler'
    | 'EulerDiscreteScheduler'
    | 'DPMSolverMultistepScheduler';
  schedule: 'linear' | 'scaled_linear';
  num_inference_steps: number;
  timestep_spacing: 'leading' | 'trailing' | 'linspace';
  steps_offset: number;
  use_karras_sigmas: boolean;
  timesteps: number[];
  sigmas?: number[];
}
const entries = loadRef<{ entries: Entry[] }>('diffusers/timesteps.json').entries;
const FAMILY = {
  DDIMScheduler: 'ddim',
  DDPMScheduler: 'ddim',
  EulerDiscreteScheduler: 'euler',
  DPMSolverMultistepScheduler: 'dpmsolver',
} as const;
const schedules = {
  linear: DiscreteSchedule.fromConfig({ betaSchedule: 'linear', betaStart: 1e-4, betaEnd: 0.02 }),
  scaled_linear: DiscreteSchedule.fromConfig({
    betaSchedule: 'scaled_linear',
    betaStart: 0.00085,
    betaEnd: 0.012,
  }),
};

describe('diffusers set_timesteps parity (timesteps.json, all entries)', () => {
  const cases = entries.map(
    (e) =>
      [
        `${e.scheduler} ${e.schedule} n=${e.num_inference_steps} ${e.timestep_spacing} offset=${e.steps_offset}${e.use_karras_sigmas ? ' karras' : ''}`,
        e,
      ] as const,
  );
  it.each(cases)('%s', (_id, e) => {
    const out = diffusersSetTimesteps(schedules[e.schedule], {
      numInferenceSteps: e.num_inference_steps,
      spacing: e.timestep_spacing,
      stepsOffset: e.steps_offset,
      family: FAMILY[e.scheduler],
      useKarrasSigmas: e.use_karras_sigmas,
    });
    expect(out.timesteps.length).toBe(e.timesteps.length);
    // Integer timesteps exactly. Euler's fractional Karras timesteps to 1e-4: diffusers
    // interpolates in a float32 log-sigma table made by NumPy's float32 log (measured: 3900 of 4080
    // timesteps bit-equal, the rest at most 6.1e-5 absolute).
    const karrasEuler = e.use_karras_sigmas && FAMILY[e.scheduler] === 'euler';
    expect(
      worstRatio(out.timesteps, e.timesteps, 0, karrasEuler ? 1e-4 : 1e-300),
    ).toBeLessThanOrEqual(1);
    if (e.sigmas) {
      expect(out.sigmas).not.toBeNull();
      // float32 sigmas, bit for bit (all 2816 entries)
      expect(Array.from(out.sigmas!)).toEqual(e.sigmas);
    } else {
      expect(out.sigmas).toBeNull();
    }
  });

  it('the bare spacing rules (Lin et al. 2024, Table 2)', () => {
    expect(
      Array.from(diffusersTimesteps(1000, { numInferenceSteps: 4, spacing: 'leading' })),
    ).toEqual([750, 500, 250, 0]);
    expect(
      Array.from(diffusersTimesteps(1000, { numInferenceSteps: 4, spacing: 'trailing' })),
    ).toEqual([999, 749, 499, 249]);
    expect(
      Array.from(diffusersTimesteps(1000, { numInferenceSteps: 4, spacing: 'linspace' })),
    ).toEqual([999, 666, 333, 0]);
    expect(
      Array.from(diffusersTimesteps(1000, { numInferenceSteps: 3, spacing: 'trailing' })),
    ).toEqual([999, 666, 332]);
    // numpy rounds half to even: linspace(0, 999, 25) has 166.5 -> 166 (and 832.5 -> 832)
    const ts = diffusersTimesteps(1000, { numInferenceSteps: 25, spacing: 'linspace' });
    expect(ts).toContain(166);
    expect(ts).toContain(832);
  });
});

describe('zero-terminal-SNR schedules in the sigma families use the 2^-24 floor', () => {
  it('Euler trailing starts at sigma = sqrt((1 - 2^-24) / 2^-24) (about 4096)', () => {
    const s = DiscreteSchedule.fromConfig({
      betaSchedule: 'scaled_linear',
      betaStart: 0.00085,
      betaEnd: 0.012,
      rescaleBetasZeroSnr: true,
    });
    const out = diffusersSetTimesteps(s, {
      numInferenceSteps: 10,
      spacing: 'trailing',
      family: 'euler',
    });
    expect(out.sigmas![0]).toBe(
      Math.fround(Math.sqrt(Math.fround(Math.fround(1 - 2 ** -24) / 2 ** -24))),
    );
    expect(out.sigmas![0]).toBeCloseTo(4096, 2);
  });
});

interface KSchedule {
  function: string;
  args: {
    n: number;
    sigma_min?: number;
    sigma_max?: number;
    rho?: number;
    beta_d?: number;
    beta_min?: number;
    eps_s?: number;
  };
  sigmas: number[];
}
const ksched = loadRef<{ schedules: Record<string, KSchedule> }>(
  'kdiffusion/trajectories.json',
).schedules;

describe('k-diffusion sigma schedules (rtol 1e-14)', () => {
  it.each(Object.entries(ksched))('%s', (_id, k) => {
    const a = k.args;
    let got: Float64Array;
    switch (k.function) {
      case 'get_sigmas_karras':
        got = karrasSigmas(a.n, a.sigma_min!, a.sigma_max!, a.rho);
        break;
      case 'get_sigmas_exponential':
        got = exponentialSigmas(a.n, a.sigma_min!, a.sigma_max!);
        break;
      case 'get_sigmas_polyexponential':
        got = polyexponentialSigmas(a.n, a.sigma_min!, a.sigma_max!, a.rho);
        break;
      case 'get_sigmas_vp':
        got = vpSigmas(a.n, a.beta_d, a.beta_min, a.eps_s);
        break;
      default:
        throw new Error(`no test for ${k.function}`);
    }
    expect(got.length).toBe(k.sigmas.length);
    expect(worstRatio(got, k.sigmas, 1e-14)).toBeLessThanOrEqual(1);
    expect(got[got.length - 1]).toBe(0);
  });

  it('closed forms: Karras is linear in sigma^(1/rho); exponential is linear in log sigma', () => {
    const k = karrasSigmas(7, 0.01, 50, 5);
    const r = Array.from(k.subarray(0, 7), (s) => s ** (1 / 5));
    for (let i = 1; i < 6; i++) expect(r[i + 1]! - r[i]!).toBeCloseTo(r[1]! - r[0]!, 12);
    const e = exponentialSigmas(6, 0.01, 50);
    for (let i = 1; i < 5; i++)
      expect(Math.log(e[i + 1]!) - Math.log(e[i]!)).toBeCloseTo(
        Math.log(e[1]!) - Math.log(e[0]!),
        12,
      );
    // polyexponential with rho = 1 is the exponential schedule
    expect(worstRatio(polyexponentialSigmas(6, 0.01, 50, 1), e, 1e-14)).toBeLessThanOrEqual(1);
    // uniform logSNR == exponential sigmas through sigma = exp(-lambda / 2)
    const l = uniformLogSNR(6, -2 * Math.log(50), -2 * Math.log(0.01));
    expect(
      worstRatio(
        Array.from(l, (x) => Math.exp(-x / 2)),
        e.subarray(0, 6),
        1e-13,
      ),
    ).toBeLessThanOrEqual(1);
  });
});

describe('custom timesteps and sigmas', () => {
  const s = schedules.linear;
  it('custom timesteps: Euler sigmas interpolate the table', () => {
    const out = diffusersSetTimesteps(s, { timesteps: [999, 500.5, 10], family: 'euler' });
    expect(out.sigmas![0]).toBe(s.sigmas[999]);
    expect(out.sigmas![1]).toBe(Math.fround((s.sigmas[500]! + s.sigmas[501]!) / 2));
    expect(out.sigmas![3]).toBe(0);
  });
  it('custom sigmas: timesteps from the sigma-to-t map', () => {
    const out = diffusersSetTimesteps(s, {
      sigmas: [s.sigmas[800]!, s.sigmas[200]!],
      family: 'dpmsolver',
    });
    expect(Array.from(out.timesteps)).toEqual([800, 200]);
  });
  it.each([
    [
      () => validateTimesteps([500, 600], 1000),
      /strictly decreasing, but timesteps\[1\] = 600 follows 500/,
    ],
    [() => validateTimesteps([1000, 10], 1000), /timesteps\[0\] = 1000 is outside \[0, 999\]/],
    [
      () => validateTimesteps([900, 10.5], 1000, { integer: true }),
      /timesteps\[1\] = 10.5 is not an integer/,
    ],
    [() => validateTimesteps([], 1000), /must not be empty/],
    [() => validateSigmas([1, 2, 0]), /strictly decreasing, but sigmas\[1\] = 2 follows 1/],
    [() => validateSigmas([1, 0, 0]), /sigmas\[1\] = 0 must be finite and > 0/],
    [() => validateSigmas([Number.POSITIVE_INFINITY, 1]), /sigmas\[0\] = Infinity/],
    [() => validateSigmas([2, 1, 0], { allowFinalZero: false }), /sigmas\[2\] = 0/],
    [
      () => diffusersSetTimesteps(s, { timesteps: [10, 20], family: 'ddim' }),
      /strictly decreasing/,
    ],
    [() => diffusersSetTimesteps(s, { sigmas: [3, 4], family: 'euler' }), /strictly decreasing/],
    [() => diffusersSetTimesteps(s, { numInferenceSteps: 10, timesteps: [1] }), /exactly one of/],
    [
      () => diffusersSetTimesteps(s, { sigmas: [3, 2] }),
      /custom sigmas need the 'euler' or 'dpmsolver' family/,
    ],
    [
      () => diffusersTimesteps(1000, { numInferenceSteps: 0 }),
      /numInferenceSteps must be an integer in \[1, 1000\]/,
    ],
    [() => diffusersTimesteps(1000, { numInferenceSteps: 1001 }), /numInferenceSteps/],
    [
      // biome-ignore lint/suspicious/noExplicitAny: deliberately wrong input
      () => diffusersTimesteps(1000, { numInferenceSteps: 10, spacing: 'middle' as any }),
      /unknown timestep spacing 'middle'/,
    ],
    [() => karrasSigmas(10, 80, 0.002), /need 0 < sigmaMin < sigmaMax/],
    [() => exponentialSigmas(10, 0, 80), /need 0 < sigmaMin < sigmaMax/],
    [() => uniformLogSNR(5, 3, -3), /logSNRMin < logSNRMax/],
  ])('bad input %#', (fn, message) => {
    expect(fn).toThrow(ScheduleError);
    expect(fn).toThrow(message);
  });
});

describe('trailing spacing edge cases and lambda_min_clipped', () => {
  it('trailing gives n timesteps even where numpy.arange adds a step near 0 (n = 61, 103, ...)', () => {
    for (const n of [61, 103, 121, 397, 999, 1000]) {
      const ts = diffusersTimesteps(1000, { numInferenceSteps: n, spacing: 'trailing' });
      expect(ts.length).toBe(n);
      expect(ts[0]).toBe(999);
      expect(Math.min(...ts)).toBeGreaterThanOrEqual(0);
    }
  });

  it('DPMSolver lambda_min_clipped drops the training steps whose logSNR is below the clip', () => {
    const s = DiscreteSchedule.fromConfig({ betaSchedule: 'squaredcos_cap_v2' });
    // lambda_t = log alpha - log sigma is decreasing; pick a clip between steps 899 and 900
    const lambda = (i: number) => 0.5 * s.logSNRs[i]!;
    const clip = 0.5 * (lambda(899) + lambda(900));
    const { timesteps } = diffusersSetTimesteps(s, {
      numInferenceSteps: 10,
      family: 'dpmsolver',
      spacing: 'linspace',
      lambdaMinClipped: clip,
    });
    // last_timestep = 900: linspace(0, 899, 11) rounded, reversed, without 0
    expect(Array.from(timesteps)).toEqual([899, 809, 719, 629, 539, 450, 360, 270, 180, 90]);
    const trailing = diffusersSetTimesteps(s, {
      numInferenceSteps: 10,
      family: 'dpmsolver',
      spacing: 'trailing',
      lambdaMinClipped: clip,
    });
    expect(Array.from(trailing.timesteps)).toEqual([899, 799, 699, 599, 499, 399, 299, 199, 99]);
    expect(() =>
      diffusersSetTimesteps(s, { numInferenceSteps: 10, family: 'euler', lambdaMinClipped: -5 }),
    ).toThrow(/lambdaMinClipped needs the 'dpmsolver' family/);
  });
});

describe('uniform logSNR on a continuous schedule', () => {
  it('maps equally spaced logSNRs to times through the inverse', () => {
    const cos = new CosineSchedule({ logSNRMin: -10, logSNRMax: 10 });
    const ts = uniformLogSNRTimes(cos, 5);
    expect(ts[0]).toBeCloseTo(1, 12);
    expect(ts[2]).toBeCloseTo(0.5, 12);
    expect(ts[4]).toBeCloseTo(0, 12);
    const vp = new VPLinearSchedule();
    const t = uniformLogSNRTimes(vp, 4, { logSNRMax: 8 });
    const l = Array.from(t, (x) => vp.logSNR(x));
    expect(l[0]).toBeCloseTo(vp.logSNRMin, 9);
    expect(l[3]).toBeCloseTo(8, 9);
    expect(l[2]! - l[1]!).toBeCloseTo(l[1]! - l[0]!, 9);
    expect(() => uniformLogSNRTimes(vp, 4)).toThrow(
      /vp-linear has logSNR\(0\) = Infinity; pass a finite logSNRMax/,
    );
  });
});
