/**
 * DEIS (`deis`) against diffusers' `DEISMultistepScheduler`, step by step, for orders 1, 2 and 3, on
 * both faces (the functional sampler and the `createScheduler` adapter), and its relation to
 * DPM-Solver.
 *
 * diffusers' reference runs (`reference-data/diffusers/trajectories.json`) hold DEIS at order 2
 * only, so the test carries a float64 transcription of diffusers' `step()` (commit 58eb52c:
 * `convert_model_output`, `deis_first_order_update`, `multistep_deis_{second,third}_order_update`
 * with their `ind_fn`, warm-up through `lower_order_nums`, `lower_order_final`), checks that
 * transcription against every DEIS reference run, and then holds the float32 sampler to it at every
 * order.
 *
 * DEIS with log-rho interpolation integrates the Lagrange polynomial of the noise predictions in
 * log rho = -lambda exactly; multistep DPM-Solver with noise prediction (Lu et al. 2022a) integrates
 * the Taylor polynomial of the same predictions in lambda, whose divided-difference coefficients
 * are those of the same interpolating polynomial. With the `heun` first-difference weight and the
 * true third-order D2 weight the two are one method written twice (equal in exact arithmetic);
 * DPM-Solver++ (data prediction) and diffusers' third-order DPM-Solver (half the D2 weight) are not.
 */
import { initBackend } from '@diffuse/backend';
import { GaussianMixture } from '@diffuse/models';
import { DiscreteSchedule } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  createScheduler,
  deisCoefficients,
  type SamplerName,
  sample,
  sampleSteps,
} from './index.js';
import { flat, loadRef, maxRelErr } from './testing/refs.js';

interface DRun {
  id: string;
  scheduler: string;
  num_inference_steps: number;
  config: Record<string, unknown>;
  timesteps: number[];
  sigmas: number[];
  x_init: number[][];
  samples_after_step: number[][][];
  final: number[][];
}
interface DRefs {
  mixture: { weights: number[]; means: number[][]; covariances: number[][][] };
  runs: DRun[];
}

const refs = loadRef<DRefs>('diffusers/trajectories.json');
const deisRuns = refs.runs.filter((r) => r.scheduler === 'DEISMultistepScheduler');
/** float32 on wasm against float64 (as diffusers.test.ts, which says why). */
const TOL = 1e-4;

let gm: GaussianMixture;
beforeAll(async () => {
  await initBackend('wasm');
  const m = refs.mixture;
  gm = new GaussianMixture({ weights: m.weights, means: m.means, covs: m.covariances });
});

/** diffusers' `_sigma_to_alpha_sigma_t`: VE sigma -> VP (alpha, sigma). */
const vp = (s: number) => {
  const alpha = 1 / Math.sqrt(s * s + 1);
  return { alpha, sigma: s * alpha };
};

/**
 * diffusers `DEISMultistepScheduler.step` over a whole run, float64, written from diffusers' source
 * (VP samples; `eps(x, i)` is the model's epsilon output at step i). Returns the sample after every step.
 */
function diffusersDeis(
  sigmas: readonly number[],
  xInit: Float64Array,
  order: number,
  lowerOrderFinal: boolean,
  eps: (x: Float64Array, i: number) => Float64Array,
): Float64Array[] {
  const n = sigmas.length - 1;
  const { log } = Math;
  const outputs: Float64Array[] = []; // self.model_outputs, oldest first
  let lowerOrderNums = 0;
  let x = xInit;
  const after: Float64Array[] = [];
  for (let i = 0; i < n; i++) {
    const lowerFinal = i === n - 1 && lowerOrderFinal && n < 15;
    const lowerSecond = i === n - 2 && lowerOrderFinal && n < 15;
    // convert_model_output (epsilon prediction): x0 = (x - sigma_t eps) / alpha_t, then back to eps.
    const { alpha: as0, sigma: ss0 } = vp(sigmas[i]!);
    const e = eps(x, i);
    const x0 = x.map((v, k) => (v - ss0 * e[k]!) / as0);
    outputs.push(x.map((v, k) => (v - as0 * x0[k]!) / ss0));
    if (outputs.length > order) outputs.shift();
    const [m0, m1, m2] = [outputs.at(-1)!, outputs.at(-2)!, outputs.at(-3)!];
    const { alpha: at, sigma: st } = vp(sigmas[i + 1]!);
    const rho = (k: number) => vp(sigmas[k]!).sigma / vp(sigmas[k]!).alpha;
    const [rt, r0, r1, r2] = [st / at, rho(i), rho(i - 1), rho(i - 2)];
    let next: Float64Array;
    if (order === 1 || lowerOrderNums < 1 || lowerFinal) {
      const h = log(at) - log(st) - (log(as0) - log(ss0));
      next = x.map((v, k) => (at / as0) * v - st * (Math.exp(h) - 1) * m0[k]!);
    } else if (order === 2 || lowerOrderNums < 2 || lowerSecond) {
      const ind = (t: number, b: number, c: number) =>
        (t * (-log(c) + log(t) - 1)) / (log(b) - log(c));
      const c1 = ind(rt, r0, r1) - ind(r0, r0, r1);
      const c2 = ind(rt, r1, r0) - ind(r0, r1, r0);
      next = x.map((v, k) => at * (v / as0 + c1 * m0[k]! + c2 * m1[k]!));
    } else {
      const ind = (t: number, b: number, c: number, d: number) =>
        (t *
          (log(c) * (log(d) - log(t) + 1) -
            log(d) * log(t) +
            log(d) +
            log(t) ** 2 -
            2 * log(t) +
            2)) /
        ((log(b) - log(c)) * (log(b) - log(d)));
      const c1 = ind(rt, r0, r1, r2) - ind(r0, r0, r1, r2);
      const c2 = ind(rt, r1, r2, r0) - ind(r0, r1, r2, r0);
      const c3 = ind(rt, r2, r0, r1) - ind(r0, r2, r0, r1);
      next = x.map((v, k) => at * (v / as0 + c1 * m0[k]! + c2 * m1[k]! + c3 * m2[k]!));
    }
    if (lowerOrderNums < order) lowerOrderNums++;
    after.push(next);
    x = next;
  }
  return after;
}

describe('the float64 transcription of DEISMultistepScheduler reproduces diffusers', () => {
  it('there are DEIS reference runs to check against', () => {
    expect(deisRuns.length).toBeGreaterThanOrEqual(2);
  });
  // diffusers computes alpha, sigma, rho and the DEIS weights in float32 from its float32 sigmas (the
  // samples stay float64): measured 2.2e-6 (n = 25).
  it.each(deisRuns.map((r) => [r.id, r] as const))('%s, every step within 1e-5', (_id, run) => {
    const c = run.config as {
      beta_schedule: 'scaled_linear';
      beta_start: number;
      beta_end: number;
    };
    const schedule = DiscreteSchedule.fromConfig({
      betaSchedule: c.beta_schedule,
      betaStart: c.beta_start,
      betaEnd: c.beta_end,
    });
    const after = diffusersDeis(
      run.sigmas,
      Float64Array.from(flat(run.x_init)),
      run.config.solver_order as number,
      run.config.lower_order_final as boolean,
      (x, i) => {
        const l = schedule.levelAt(run.timesteps[i]!);
        return gm.epsilonArray(x, l.alpha, l.sigma);
      },
    );
    const errs = after.map((a, i) => maxRelErr(a, flat(run.samples_after_step[i])));
    expect(Math.max(...errs)).toBeLessThan(1e-5);
  });
});

/** Configurations around the reference ones: every order, with and without lower_order_final. */
const CASES = deisRuns.flatMap((run) =>
  [1, 2, 3].flatMap((order) =>
    [true, false].map((lowerOrderFinal) => ({
      id: `${run.id} order ${order} lower_order_final ${lowerOrderFinal}`,
      run,
      order,
      lowerOrderFinal,
    })),
  ),
);

describe('deis reproduces DEISMultistepScheduler step by step, orders 1-3 (float32 wasm vs float64)', () => {
  it.each(CASES.map((c) => [c.id, c] as const))('%s', async (_id, c) => {
    const config = {
      _class_name: 'DEISMultistepScheduler',
      ...c.run.config,
      solver_order: c.order,
      lower_order_final: c.lowerOrderFinal,
    };
    const scheduler = createScheduler(config);
    scheduler.setTimesteps(c.run.num_inference_steps);
    const sigmas = scheduler.sigmas;
    const n = sigmas.length - 1;
    // Both faces and the transcription see the model at the VP embedding of each VE sigma.
    const eps64 = (x: Float64Array, i: number) => {
      const l = vp(sigmas[i]!);
      return gm.epsilonArray(x, l.alpha, l.sigma);
    };
    const xInit = Float64Array.from(flat(c.run.x_init));
    const want = diffusersDeis(sigmas, xInit, c.order, c.lowerOrderFinal, eps64);

    // 1. The functional sampler: VE states x / alpha, starting from noise * sigma_0.
    const a0 = vp(sigmas[0]!).alpha;
    const noise = tf.div(tf.tensor(c.run.x_init), a0 * sigmas[0]!);
    const samplerErrs: number[] = [];
    const steps = sampleSteps(gm.denoiser('epsilon'), {
      sampler: 'deis',
      samplerOptions: { order: c.order, lowerOrderFinal: c.lowerOrderFinal },
      sigmas,
      noise,
    });
    let r = await steps.next();
    while (!r.done) {
      const { i, x } = r.value;
      if (i > 0) {
        const got = (await x.data()).map((v) => v * vp(sigmas[i]!).alpha);
        samplerErrs.push(maxRelErr(got, want[i - 1]!));
      }
      r = await steps.next();
    }
    const out = r.value; // already VP-scaled at the last level
    samplerErrs.push(maxRelErr(await out.data(), want[n - 1]!));
    expect(samplerErrs).toHaveLength(n);
    expect(Math.max(...samplerErrs)).toBeLessThan(TOL);

    // 2. The scheduler adapter, driven as diffusers' loop.
    const adapterErrs: number[] = [];
    let xs = tf.tensor(c.run.x_init);
    for (let i = 0; i < n; i++) {
      const e = gm.epsilon(xs, vp(sigmas[i]!));
      const { prevSample, predOriginalSample } = scheduler.step(e, scheduler.timesteps[i]!, xs);
      adapterErrs.push(maxRelErr(await prevSample.data(), want[i]!));
      tf.dispose([xs, e, predOriginalSample]);
      xs = prevSample;
    }
    expect(Math.max(...adapterErrs)).toBeLessThan(TOL);
    tf.dispose([noise, out, xs]);
  });
});

describe('deisCoefficients integrate polynomials in log rho exactly', () => {
  // Antiderivatives of log(rho)^k d rho, k = 0, 1, 2.
  const F = [
    (r: number) => r,
    (r: number) => r * (Math.log(r) - 1),
    (r: number) => r * (Math.log(r) ** 2 - 2 * Math.log(r) + 2),
  ];
  const nodes = [
    [2.3, 4.1, 9.7, 1.1],
    [0.4, 0.55, 0.9, 0.2],
    [14.6, 29, 80, 8.3],
  ];
  it.each([1, 2, 3])('order %i: exact for log(rho)^k, k < order', (order) => {
    for (const [r0, r1, r2, rT] of nodes as [number, number, number, number][]) {
      const c = deisCoefficients([r0, r1, r2], rT, order);
      expect(c).toHaveLength(order);
      const rs = [r0, r1, r2];
      for (let k = 0; k < order; k++) {
        const quad = c.reduce((acc, w, j) => acc + w * Math.log(rs[j]!) ** k, 0);
        const exact = F[k]!(rT) - F[k]!(r0);
        expect(Math.abs(quad - exact)).toBeLessThan(1e-12 * (1 + Math.abs(exact)));
      }
    }
  });
});

describe('deis and DPM-Solver', () => {
  const shape = [16, 2];
  const geometric = (n: number, hi: number, lo: number) =>
    Array.from({ length: n + 1 }, (_, k) =>
      Math.exp(Math.log(hi) + (k / n) * (Math.log(lo) - Math.log(hi))),
    );
  async function run(
    sampler: SamplerName,
    samplerOptions: Record<string, number | boolean | string>,
    sigmas: number[],
  ): Promise<Float32Array> {
    const noise = tf.randomNormal(shape, 0, 1, 'float32', 7);
    const out = await sample(gm.denoiser('epsilon'), { sampler, samplerOptions, sigmas, noise });
    const v = (await out.data()) as Float32Array;
    tf.dispose([noise, out]);
    return v;
  }
  const sigmaSets: [string, number[]][] = [
    ['geometric 14.6 -> 0.03, 8 steps', geometric(8, 14.6, 0.03)],
    ['geometric 14.6 -> 0.03, 20 steps', geometric(20, 14.6, 0.03)],
  ];

  it.each(sigmaSets)(
    '%s: order k deis equals noise-prediction DPM-Solver (heun, true third order); not DPM-Solver++',
    async (_name, sigmas) => {
      for (const order of [1, 2, 3]) {
        const d = await run('deis', { order }, sigmas);
        const dpm = await run(
          'dpm_solver_multistep',
          { order, prediction: 'epsilon', solverType: 'heun', trueThirdOrder: true },
          sigmas,
        );
        const dpmpp = await run(
          'dpmpp_2m',
          { order, solverType: order === 3 ? 'heun' : 'midpoint', trueThirdOrder: true },
          sigmas,
        );
        // Same method: only float32 rounding apart.
        expect(maxRelErr(d, dpm)).toBeLessThan(2e-5);
        if (order === 1) {
          // First order: every exponential integrator is DDIM (Lu et al. 2022b, sec. 4.1).
          expect(maxRelErr(d, dpmpp)).toBeLessThan(2e-5);
          expect(maxRelErr(d, await run('ddim', {}, sigmas))).toBeLessThan(2e-5);
        } else {
          // Noise vs data prediction: different higher-order terms.
          expect(maxRelErr(d, dpmpp)).toBeGreaterThan(1e-3);
        }
        if (order === 3) {
          // diffusers' DPM-Solver order 3 (half the D2 weight) is a different third step.
          const half = await run(
            'dpm_solver_multistep',
            { order, prediction: 'epsilon', solverType: 'heun', trueThirdOrder: false },
            sigmas,
          );
          expect(maxRelErr(d, half)).toBeGreaterThan(1e-4);
        }
      }
    },
  );
});
