/**
 * The README's swap examples on the real SD 1.5, SDXL and SD 3.5 files of
 * `reference-data/real-configs/`: each swap loads, keeps the target's defaults where the source only
 * defaulted, and runs a whole loop on the closed-form mixture without leaking.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { assertNoLeaks, initBackend } from '@diffuse/backend';
import { GaussianMixture } from '@diffuse/models';
import { parseDiffusersJson, stringifyDiffusersJson } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { createScheduler, fromConfig, type Scheduler } from './index.js';
import { repoRoot } from './testing/refs.js';

const configs = JSON.parse(
  readFileSync(resolve(repoRoot, 'reference-data/real-configs/configs.json'), 'utf8'),
).configs as { id: string; raw: string }[];
const load = (id: string) =>
  createScheduler(parseDiffusersJson(configs.find((c) => c.id === id)!.raw, id) as never, {
    onWarning: () => {},
  });

let gm: GaussianMixture;
beforeAll(async () => {
  await initBackend('wasm');
  gm = new GaussianMixture({ weights: [0.5, 0.5], means: [[-1], [1]], covs: [[[0.1]], [[0.1]]] });
});

/** A whole loop with the mixture oracle at each call's level (VE level from `sigmas`). */
async function run(s: Scheduler, flow: boolean): Promise<number[]> {
  s.setTimesteps(12);
  const model = gm.denoiser(flow ? 'flow' : 'epsilon');
  let x = tf.tidy(() => tf.mul(tf.tensor([[-1.2], [0.4], [1.9]]), s.initNoiseSigma));
  for (const [k, t] of s.timesteps.entries()) {
    const xin = s.scaleModelInput(x, t);
    const ve = s.sigmas[k]!;
    const level = flow
      ? { alpha: 1 / (1 + ve), sigma: ve / (1 + ve) }
      : { alpha: 1 / Math.sqrt(1 + ve * ve), sigma: ve / Math.sqrt(1 + ve * ve) };
    const out = model.predict(xin, level);
    const r = s.step(out, t, x);
    tf.dispose([xin, out, x, r.predOriginalSample]);
    x = r.prevSample;
  }
  const v = Array.from(await x.data());
  x.dispose();
  return v;
}

describe('README: real SD 1.5, SDXL and SD 3.5 config swaps', () => {
  it('SD 1.5 PNDM -> DPM++ 2M Karras; SDXL Euler -> Euler ancestral / DDIM trailing / TCD', async () => {
    await assertNoLeaks(async () => {
      const sd15 = load('pndm-runwayml-stable-diffusion-v1-5');
      const dpm = fromConfig(sd15, {
        _class_name: 'DPMSolverMultistepScheduler',
        use_karras_sigmas: true,
      });
      expect(dpm.toConfig().timestep_spacing).toBe('linspace'); // DPM-Solver's own default
      expect(dpm.toConfig()._diffusers_version).toBe(sd15.toConfig()._diffusers_version);
      const sdxl = load('euler-stable-diffusion-xl-base-1.0');
      const eulerA = fromConfig(sdxl, { _class_name: 'EulerAncestralDiscreteScheduler' });
      const ddim = fromConfig(sdxl, { _class_name: 'DDIMScheduler', timestep_spacing: 'trailing' });
      ddim.setTimesteps(4);
      expect(ddim.timesteps).toEqual([999, 749, 499, 249]);
      const tcd = fromConfig(sdxl, { _class_name: 'TCDScheduler' });
      // every swap runs a whole loop and ends near a mode of the data (+-1)
      for (const s of [dpm, ddim, eulerA, tcd]) {
        const v = await run(s, false);
        for (const xi of v) expect(Math.min(Math.abs(xi - 1), Math.abs(xi + 1))).toBeLessThan(0.8);
        s.dispose();
      }
      const text = stringifyDiffusersJson(dpm.toConfig());
      expect(createScheduler(parseDiffusersJson(text) as never).toConfig()).toEqual(dpm.toConfig());
    });
  });

  it('SD 3.5 FlowMatchEuler (shift 3) -> DPM++ 2M on the flow levels, same end points', async () => {
    await assertNoLeaks(async () => {
      const sd35 = load('flow-euler-stable-diffusion-3.5-large');
      sd35.setTimesteps(28);
      expect(sd35.timesteps[0]).toBe(1000);
      const flowDpm = fromConfig(sd35, {
        _class_name: 'DPMSolverMultistepScheduler',
        use_flow_sigmas: true,
        flow_shift: 3.0,
        prediction_type: 'flow_prediction',
      });
      const a = await run(flowDpm, true);
      // the Euler scheduler itself, 12 steps, from its t = 1 start
      sd35.setTimesteps(12);
      const model = gm.denoiser('flow');
      let x = tf.tensor([[-1.2], [0.4], [1.9]]);
      for (const [k, t] of sd35.timesteps.entries()) {
        const s = sd35.sigmas[k]!;
        const u = model.predict(x, { alpha: 1 - s, sigma: s });
        const r = sd35.step(u, t, x);
        tf.dispose([u, x, r.predOriginalSample]);
        x = r.prevSample;
      }
      const b = Array.from(await x.data());
      x.dispose();
      // two solvers of the same flow ODE from (nearly) the same start: the same modes
      for (let k = 0; k < 3; k++) expect(Math.sign(a[k]!)).toBe(Math.sign(b[k]!));
      for (const v of [...a, ...b])
        expect(Math.min(Math.abs(v - 1), Math.abs(v + 1))).toBeLessThan(0.5);
      flowDpm.dispose();
      sd35.dispose();
    });
  });
});
