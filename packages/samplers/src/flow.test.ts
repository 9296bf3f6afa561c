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
        for (const sampler of ['euler', 'ddim']) {
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
