/**
 * Every schedule-based run of k-diffusion's samplers in `reference-data/kdiffusion/trajectories.json`,
 * reproduced step by step with the exact mixture oracle of `@diffuse/models` (float32 on wasm).
 *
 * Tolerance: 1e-4 (1 + |ref|), the README's suggestion for a float32 backend: k-diffusion itself in
 * float32 differs from these float64 references by up to 1.7e-5 in the same measure on the schedule-based
 * runs. dpm_adaptive is looser (ADAPTIVE_TOL): there k-diffusion's own float32 run is 1.5e-2 off.
 */
import { initBackend } from '@diffuse/backend';
import { type Denoiser, GaussianMixture } from '@diffuse/models';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { type SamplerName, sample } from './index.js';
import { flat, loadRef, maxRelErr } from './testing/refs.js';

interface KRun {
  id: string;
  sampler: string;
  kwargs_resolved: Record<string, number | string>;
  sigmas: number[] | null;
  x_init: number[][];
  model_sigmas: number[];
  steps: { i: number; sigma: number; sigma_hat: number; x: number[][]; denoised: number[][] }[];
  final: number[][];
  noise_calls?: { sigma?: number; sigma_next?: number; bank_index: number }[];
}
interface KRefs {
  mixtures: { A: { weights: number[]; means: number[][]; covs: number[][][] } };
  noise: { A: { data: number[][] } };
  noise_banks: { A: { data: number[][][] } };
  runs: KRun[];
}

const NAMES: Record<string, SamplerName> = {
  sample_euler: 'euler',
  sample_heun: 'heun',
  sample_dpm_2: 'dpm_2',
  sample_lms: 'lms',
  sample_dpmpp_2m: 'dpmpp_2m',
  sample_dpmpp_2m_sde: 'dpmpp_2m_sde',
  sample_dpmpp_3m_sde: 'dpmpp_3m_sde',
  sample_euler_ancestral: 'euler_ancestral',
  sample_dpm_2_ancestral: 'dpm_2_ancestral',
  sample_dpmpp_2s_ancestral: 'dpmpp_2s_ancestral',
  sample_dpmpp_sde: 'dpmpp_sde',
  sample_dpm_fast: 'dpm_fast',
  sample_dpm_adaptive: 'dpm_adaptive',
};
const KEYS: Record<string, string> = {
  s_churn: 'sChurn',
  s_tmin: 'sTmin',
  s_tmax: 'sTmax',
  s_noise: 'sNoise',
  solver_type: 'solverType',
  eta: 'eta',
  r: 'r',
  order: 'order',
  n: 'nfe',
  h_init: 'hInit',
  accept_safety: 'acceptSafety',
  rtol: 'rtol',
  atol: 'atol',
  pcoeff: 'pcoeff',
  icoeff: 'icoeff',
  dcoeff: 'dcoeff',
};
const TOL = 1e-4;
/**
 * dpm_adaptive chooses its step sizes from an error estimate x_low - x_high, formed from differences
 * of denoised values (D - D1, D - D2) and normed in float64 on the host. On its first steps that
 * estimate is a few 1e-8 absolute, below the resolution of a float32 D ~ 0.2 (half an ulp: 7e-9):
 * there the estimate is 10-40% rounding, and since the PID factor multiplies h, that rounding stays
 * in every later level. Measured with k-diffusion's own sample_dpm_adaptive on these four runs
 * (reference-data/kdiffusion/float32_check.py and its README section; max over the steps, levels in
 * |sigma / ref - 1|, states in |d| / (1 + |ref|)):
 * - k-diffusion in float64 with only D's output rounded to float32 (the floor for any float32
 *   denoiser): levels 2.1e-4 (order 3) and 3.9e-4 (rtol 1e-3), states 1.5e-4 and 3.8e-4;
 * - k-diffusion itself in torch float32: levels 1.5e-2 and 2.1e-2, states 1.1e-2 and 2.0e-2, final
 *   5.0e-4 (order 3).
 * Ours (float32 GaussianMixture on wasm): levels 3.5e-4 and 3.3e-4, states 2.5e-4 and 3.2e-4, final
 * 1.1e-5 and 1.3e-6; order 2 and eta 1 agree to 2e-5. So the 1e-4 of issue 17 is below what float32
 * allows on the order-3 runs; 5e-4 holds ours to the measured floor. Every accept/reject decision and
 * the number of model calls are the same.
 */
const ADAPTIVE_TOL = 5e-4;
const ADAPTIVE_FINAL_TOL = 3e-5;

const refs = loadRef<KRefs>('kdiffusion/trajectories.json');
const runs = refs.runs.filter((r) => NAMES[r.sampler]);

let gm: GaussianMixture;
beforeAll(async () => {
  await initBackend('wasm');
  const A = refs.mixtures.A;
  gm = new GaussianMixture({ weights: A.weights, means: A.means, covs: A.covs });
});

/** The oracle, recording the VE sigma of every call. */
function recording(inner: Denoiser, sigmas: number[]): Denoiser {
  return {
    prediction: inner.prediction,
    predict(x, level, cond) {
      sigmas.push((level.sigma as number) / (level.alpha as number));
      return inner.predict(x, level, cond);
    },
  };
}

describe('k-diffusion trajectories (mixture A, float32 wasm)', () => {
  it('covers every schedule-based run', () => {
    expect(runs.length).toBe(89); // mixture A: every schedule, plus dpm_fast and dpm_adaptive
  });

  it.each(runs.map((r) => [r.id, r] as const))('%s', async (_id, run) => {
    const options: Record<string, number | string> = {};
    for (const [k, v] of Object.entries(run.kwargs_resolved)) {
      if (k !== 'sigma_min' && k !== 'sigma_max') options[KEYS[k] ?? k] = v;
    }
    const kw = run.kwargs_resolved as { sigma_min?: number; sigma_max?: number };
    const sigmas = run.sigmas ?? [kw.sigma_max!, kw.sigma_min!];
    const bank = refs.noise_banks.A.data;
    const calls: [number, number][] = [];
    const modelSigmas: number[] = [];
    const errs: number[] = [];
    const noise = tf.tensor(refs.noise.A.data);
    const out = await sample(recording(gm.denoiser('x0'), modelSigmas), {
      sampler: NAMES[run.sampler]!,
      samplerOptions: options,
      sigmas,
      noise,
      noiseSampler: (s, sn) => {
        calls.push([s, sn]);
        return tf.tensor(bank[calls.length - 1]!);
      },
      onStep: async (info) => {
        const ref = run.steps[info.i]!;
        // dpm_adaptive's step sizes come from an error estimate made of float32 denoised values
        // (see ADAPTIVE_TOL), so its levels agree to ~3e-4 rather than 1e-10.
        expect(Math.abs(info.sigmaHat / ref.sigma_hat - 1)).toBeLessThan(
          run.sampler === 'sample_dpm_adaptive' ? ADAPTIVE_TOL : 1e-10,
        );
        errs.push(
          maxRelErr(await info.x.data(), flat(ref.x)),
          maxRelErr(await info.denoised.data(), flat(ref.denoised)),
        );
      },
    });
    noise.dispose();
    const finalErr = maxRelErr(await out.data(), flat(run.final));
    errs.push(finalErr);
    out.dispose();
    expect(errs.length).toBe(2 * run.steps.length + 1);
    const adaptive = run.sampler === 'sample_dpm_adaptive';
    expect(Math.max(...errs)).toBeLessThan(adaptive ? ADAPTIVE_TOL : TOL);
    expect(finalErr).toBeLessThan(adaptive ? ADAPTIVE_FINAL_TOL : TOL);
    expect(calls.length).toBe(run.noise_calls?.length ?? 0);
    expect(modelSigmas.length).toBe(run.model_sigmas.length);
    expect(maxRelErr(modelSigmas, run.model_sigmas)).toBeLessThan(adaptive ? ADAPTIVE_TOL : 1e-12);
  });
});
