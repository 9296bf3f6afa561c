/**
 * Flow matching in the unified view, against closed forms on the Gaussian mixture of the refs:
 *
 * - a flow model (velocity u = eps - x0 on x_t = (1 - t) x0 + t eps) runs under every sampler of
 *   `sample()` through its VE view (sigma = t / (1 - t), `embedding: 'flow'`), and gives the same samples
 *   as the same oracle asked for x0 and called in the VP embedding (x0 given x_VE depends only on the
 *   VE level, so the parameterisation and the embedding are only changes of coordinates);
 * - one flow Euler step x' = x + (t' - t) u is the Euler step (and DDIM's) in the VE view;
 * - diffusers' `FlowMatchEulerDiscreteScheduler` (SD 3.5's config) is `sample('euler')` on the same
 *   levels once its t = 1 start (infinite in the VE view) is behind it.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { assertNoLeaks, initBackend } from '@diffuse/backend';
import { GaussianMixture } from '@diffuse/models';
import { parseDiffusersJson, RectifiedFlowSchedule } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { createScheduler, listSamplers, sample } from './index.js';
import { repoRoot } from './testing/refs.js';

const mixture = JSON.parse(
  readFileSync(resolve(repoRoot, 'reference-data/real-configs/refs.json'), 'utf8'),
).mixture as { weights: number[]; means: number[][]; covariances: number[][][] };
let gm: GaussianMixture;
beforeAll(async () => {
  await initBackend('wasm');
  gm = new GaussianMixture({
    weights: mixture.weights,
    means: mixture.means,
    covs: mixture.covariances,
  });
});

async function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): Promise<number> {
  const d = tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))));
  const v = (await d.data())[0]!;
  d.dispose();
  return v;
}

/** 12 rectified-flow levels from t = 0.98 down (SD 3's shift 3), then 0, as VE sigmas. */
function flowSigmas(): number[] {
  const rf = new RectifiedFlowSchedule({ shift: 3, tMin: 0.02, tMax: 0.98 });
  const ts = Array.from({ length: 12 }, (_, k) => 1 - k / 11);
  return [...ts.map((t) => rf.level(t)).map((l) => l.sigma / l.alpha), 0];
}

describe('a flow model under every sampler of sample()', () => {
  const noise = [
    [0.65, 0.47],
    [-0.64, -1.18],
    [-0.14, 1.2],
    [1.33, 0.91],
    [0.35, 1.6],
    [1.23, -0.22],
  ];
  it.each(listSamplers().map((s) => [s.name, s] as const))(
    '%s: the flow oracle (flow embedding) gives the x0 oracle samples (VP embedding)',
    async (_name, def) => {
      await assertNoLeaks(async () => {
        const run = async (prediction: 'flow' | 'x0', embedding: 'flow' | 'vp') => {
          const z = tf.tensor(noise);
          const out = await sample(gm.denoiser(prediction), {
            sampler: def.name,
            samplerOptions: def.conformance?.samplerOptions,
            sigmas: flowSigmas(),
            embedding,
            noise: z,
            seed: 11,
          });
          z.dispose();
          return out;
        };
        const a = await run('flow', 'flow');
        const b = await run('x0', 'vp');
        // both return the last state scaled by their embedding's alpha at the last level (0 here: 1)
        expect(await maxAbsDiff(a, b)).toBeLessThan(2e-4);
        const v = await a.data();
        expect(v.every(Number.isFinite)).toBe(true);
        tf.dispose([a, b]);
      }, def.name);
    },
  );
});

describe('a flow Euler step in the VE view', () => {
  it('x + (t1 - t0) u equals sample(euler) and sample(ddim) from sigma t0/(1-t0) to t1/(1-t1)', async () => {
    await assertNoLeaks(async () => {
      const flowModel = gm.denoiser('flow');
      for (const [t0, t1] of [
        [0.9, 0.7],
        [0.5, 0.45],
        [0.3, 0],
      ] as const) {
        const x = tf.tensor([
          [0.3, -1.1],
          [1.4, 0.2],
          [-0.7, 0.9],
        ]);
        const u = flowModel.predict(x, { alpha: 1 - t0, sigma: t0 });
        const euler = tf.tidy(() => tf.add(x, tf.mul(u, t1 - t0)));
        const s0 = t0 / (1 - t0);
        const s1 = t1 / (1 - t1);
        for (const sampler of ['euler', 'ddim'] as const) {
          // sample() starts at noise * sigma_0 in VE units: x / (1 - t0) = noise * s0
          const z = tf.div(x, t0);
          const out = await sample(flowModel, {
            sampler,
            sigmas: [s0, s1],
            embedding: 'flow',
            noise: z,
          });
          // sample() returns the state at the last level in the embedding: (1 - t1) x_VE
          expect(await maxAbsDiff(out, euler), `${sampler} ${t0} -> ${t1}`).toBeLessThan(2e-6);
          tf.dispose([z, out]);
        }
        tf.dispose([x, u, euler]);
      }
    });
  });

  it("diffusers' FlowMatchEulerDiscreteScheduler (SD 3.5 config) is sample(euler) after its t = 1 start", async () => {
    const configs = JSON.parse(
      readFileSync(resolve(repoRoot, 'reference-data/real-configs/configs.json'), 'utf8'),
    ).configs as { id: string; raw: string }[];
    const raw = configs.find((c) => c.id === 'flow-euler-stable-diffusion-3.5-large')!.raw;
    await assertNoLeaks(async () => {
      const s = createScheduler(parseDiffusersJson(raw) as Record<string, unknown>);
      s.setTimesteps(12);
      const model = gm.denoiser('flow');
      let x = tf.tensor([
        [0.65, 0.47],
        [-0.64, -1.18],
        [1.33, 0.91],
      ]);
      let afterFirst: tf.Tensor | null = null;
      for (const [k, t] of s.timesteps.entries()) {
        const sig = s.sigmas[k]!;
        const u = model.predict(x, { alpha: 1 - sig, sigma: sig });
        const r = s.step(u, t, x);
        tf.dispose([u, r.predOriginalSample, x]);
        x = r.prevSample;
        if (k === 0) afterFirst = tf.clone(x);
      }
      const t1 = s.sigmas[1]!;
      const rest = s.sigmas.slice(1).map((t) => t / (1 - t));
      const z = tf.div(afterFirst!, t1);
      const out = await sample(model, {
        sampler: 'euler',
        sigmas: rest,
        embedding: 'flow',
        noise: z,
      });
      expect(await maxAbsDiff(out, x)).toBeLessThan(5e-5);
      tf.dispose([z, out, x, afterFirst!]);
      s.dispose();
    });
  });
});

describe("DPMSolverMultistep / UniPC with diffusers' use_flow_sigmas (Sana, Wan)", () => {
  const base = {
    num_train_timesteps: 1000,
    use_flow_sigmas: true,
    flow_shift: 3.0,
    prediction_type: 'flow_prediction',
  };
  it("has diffusers' flow timesteps and sigmas (numpy on diffusers' set_timesteps formula)", () => {
    const dpm = createScheduler({ _class_name: 'DPMSolverMultistepScheduler', ...base });
    dpm.setTimesteps(4);
    expect(dpm.timesteps).toEqual([999, 899, 749, 499]);
    const flowT = (ve: number[]) => ve.map((s) => s / (1 + s));
    const want = [
      0.9996664524078369, 0.8996397852897644, 0.7496247887611389, 0.4996665418148041, 0,
    ];
    for (const [k, t] of flowT(dpm.sigmas).entries()) expect(t).toBeCloseTo(want[k]!, 6);
    const uni = createScheduler({ _class_name: 'UniPCMultistepScheduler', ...base });
    uni.setTimesteps(4);
    expect(uni.timesteps).toEqual([999, 900, 750, 500]);
    const wantU = [
      0.9999989867210388, 0.900119960308075, 0.7503747940063477, 0.5009989738464355, 0,
    ];
    for (const [k, t] of flowT(uni.sigmas).entries()) expect(t).toBeCloseTo(wantU[k]!, 6);
    expect(() =>
      createScheduler({
        _class_name: 'UniPCMultistepScheduler',
        ...base,
        use_dynamic_shifting: true,
      }).setTimesteps(4),
    ).toThrow(/mu must be passed/);
  });

  const cases = [
    [
      'DPMSolverMultistepScheduler',
      'dpmpp_2m',
      { order: 2, prediction: 'x0', eta: 0, solverType: 'midpoint', lowerOrderFinal: true },
    ],
    ['UniPCMultistepScheduler', 'unipc', { order: 2, variant: 'bh2', lowerOrderFinal: true }],
  ] as const;
  it.each(cases)(
    '%s: the flow model through step() = sample(%s) with an x0 model in the VP embedding, and the ODE end point',
    async (cls, sampler, samplerOptions) => {
      const [MU, S0] = [1, 0.5];
      const gauss = new GaussianMixture({ weights: [1], means: [[MU]], covs: [[[S0 * S0]]] });
      const model = gauss.denoiser('flow');
      await assertNoLeaks(async () => {
        const s = createScheduler({ _class_name: cls, ...base, solver_order: 2 });
        s.setTimesteps(30);
        const z = [-1.5, -0.2, 0.7, 2.1];
        let x = tf.tensor(z, [4, 1]);
        for (const [k, t] of s.timesteps.entries()) {
          const tk = s.sigmas[k]! / (1 + s.sigmas[k]!);
          const u = model.predict(x, { alpha: 1 - tk, sigma: tk });
          const r = s.step(u, t, x);
          tf.dispose([u, r.predOriginalSample, x]);
          x = r.prevSample;
        }
        const got = await x.data();
        x.dispose();
        s.dispose();
        // the same solver on the same VE levels, an x0 model called in the VP embedding
        const ve0 = s.sigmas[0]!;
        const t0 = ve0 / (1 + ve0);
        const noise = tf.tensor(
          z.map((zk) => zk / (1 - t0) / ve0),
          [4, 1],
        );
        const ref = await sample(gauss.denoiser('x0'), {
          sampler,
          samplerOptions: { ...samplerOptions },
          sigmas: s.sigmas,
          embedding: 'vp',
          noise,
        });
        const want = await ref.data();
        tf.dispose([noise, ref]);
        z.forEach((zk, k) => {
          expect(Math.abs(got[k]! - want[k]!), `${cls} z = ${zk}`).toBeLessThan(
            1e-4 * (1 + Math.abs(want[k]!)),
          );
          // and near the exact probability-flow end point (30 steps; an error in the levels is O(1))
          const exact = MU + ((zk / (1 - t0) - MU) * S0) / Math.sqrt(S0 * S0 + ve0 * ve0);
          expect(Math.abs(got[k]! - exact), `${cls} z = ${zk}: ODE end point`).toBeLessThan(1e-2);
        });
      });
    },
  );
});
