/**
 * diffusers' PNDMScheduler for every `timestep_spacing`, with and without PRK steps, at 1 to 25 steps
 * (`reference-data/diffusers-schedulers-extra/pndm.json`, made by diffusers' own scheduler, see its
 * README): timesteps exact, the sample after every step within 1e-4 + 1e-4 |ref| under the closed-form
 * model eps(x, t) = A x + B t / 1000 + C, and diffusers' set_timesteps failure (n < 4 with PRK steps)
 * as a typed error.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { assertNoLeaks, initBackend } from '@diffuse/backend';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { createScheduler, SamplerError } from './index.js';
import { expectClose, repoRoot } from './testing/refs.js';

interface Case {
  config: Record<string, unknown>;
  num_inference_steps: number;
  timesteps?: number[];
  samples?: number[][];
  error?: string;
}
const ref = JSON.parse(
  readFileSync(resolve(repoRoot, 'reference-data/diffusers-schedulers-extra/pndm.json'), 'utf8'),
) as { x0: number[]; model: { A: number; B: number; C: number }; cases: Case[] };

beforeAll(async () => {
  await initBackend('wasm');
});

describe('PNDMScheduler against diffusers for every spacing', () => {
  it('has both skip_prk_steps values, three spacings and errors among its cases', () => {
    expect(ref.cases.length).toBeGreaterThan(100);
    expect(ref.cases.some((c) => c.error)).toBe(true);
  });
  for (const c of ref.cases) {
    const name = `${JSON.stringify(c.config)} n=${c.num_inference_steps}`;
    it(name, async () => {
      const s = createScheduler({ _class_name: 'PNDMScheduler', ...c.config });
      if (c.error) {
        expect(() => s.setTimesteps(c.num_inference_steps)).toThrow(SamplerError);
        expect(() => s.setTimesteps(c.num_inference_steps)).toThrow(/at least 4 steps/);
        return;
      }
      s.setTimesteps(c.num_inference_steps);
      expect(s.timesteps).toEqual(c.timesteps);
      const { A, B, C } = ref.model;
      const got = await assertNoLeaks(async () => {
        let x: tf.Tensor = tf.tensor1d(ref.x0);
        const out: number[][] = [];
        for (const t of s.timesteps) {
          const eps = tf.tidy(() => tf.add(tf.mul(x, A), B * (t / 1000) + C));
          const { prevSample, predOriginalSample } = s.step(eps, t, x);
          tf.dispose([eps, x, predOriginalSample]);
          x = prevSample;
          out.push(Array.from(await x.data()));
        }
        x.dispose();
        s.dispose();
        return out;
      });
      expect(got.length).toBe(c.samples!.length);
      for (let k = 0; k < got.length; k++)
        expectClose(got[k]!, c.samples![k]!, 1e-4, 1e-4, `step ${k}`);
    });
  }
});
