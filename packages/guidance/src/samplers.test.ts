/**
 * "Any sampler works with any guidance": every registered sampler of @diffuse/samplers driven by the
 * guidance wrappers. At scale 1 classifier-free guidance is the conditional model, and classifier
 * guidance with the exact classifier is too, so each run must reproduce the plain conditional run.
 */
import { assertNoLeaks, initBackend, maxAbsDiff, readFloat32 } from '@diffuse/backend';
import { listSamplers, sample } from '@diffuse/samplers';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  classifierFreeGuidance,
  classifierGuidance,
  dynamicThresholding,
  mixtureClassifier,
} from './index.js';
import { asyncAdapter, threeClassMixture } from './test-fixtures.js';

const gm = threeClassMixture();
let labels: tf.Tensor;

beforeAll(async () => {
  await initBackend('wasm');
  labels = tf.tensor1d([0, 1, 2, 0, 1, 2, 0, 1], 'int32');
});

describe.each(listSamplers())('sampler $name with guidance wrappers', ({ name, defaults }) => {
  // Langevin-type samplers iterate many times per level; a few are enough to exercise the wrappers.
  const samplerOptions = 'stepsPerLevel' in defaults ? { stepsPerLevel: 3 } : undefined;
  const run = (denoiser: Parameters<typeof sample>[0]) =>
    sample(denoiser, {
      sampler: name,
      ...(samplerOptions ? { samplerOptions } : {}),
      steps: 8,
      sigmaMin: 0.02,
      sigmaMax: 20,
      shape: [8, 2],
      seed: 11,
      cond: { labels },
    });

  it('CFG at scale 1 and exact classifier guidance at gamma 1 reproduce the conditional run', async () => {
    const plain = await readFloat32(await run(gm.denoiser('epsilon')), true);
    const cfg = await readFloat32(
      await run(classifierFreeGuidance(gm.denoiser('epsilon'), { guidanceScale: 1 })),
      true,
    );
    expect(maxAbsDiff(cfg, plain)).toBe(0); // c + 0 (c - u) is c bit for bit
    const cg = await readFloat32(
      await run(classifierGuidance(gm.denoiser('epsilon'), mixtureClassifier(gm), { scale: 1 })),
      true,
    );
    expect(maxAbsDiff(cg, plain)).toBeLessThan(5e-3);
  });

  it('a stack of wrappers (thresholding over CFG with rescale) samples without leaks', async () => {
    const stacked = dynamicThresholding(
      classifierFreeGuidance(gm.denoiser('v'), { guidanceScale: 4, rescale: 0.5 }),
      { percentile: 0.9, maxValue: 2 },
    );
    const out = await assertNoLeaks(() => run(stacked), name);
    const xs = await readFloat32(out, true);
    expect(xs.every(Number.isFinite)).toBe(true);
  });

  it('the same wrappers over an AsyncDenoiser give the sync samples bit for bit, without leaks', async () => {
    const stack = (d: Parameters<typeof classifierFreeGuidance>[0]) =>
      dynamicThresholding(classifierFreeGuidance(d, { guidanceScale: 4, rescale: 0.5 }), {
        percentile: 0.9,
        maxValue: 2,
      });
    const sync = await readFloat32(await run(stack(gm.denoiser('v'))), true);
    const viaAsync = await assertNoLeaks(() => run(stack(asyncAdapter(gm.denoiser('v')))), name);
    expect(maxAbsDiff(await readFloat32(viaAsync, true), sync)).toBe(0);
    const guide = (d: Parameters<typeof classifierGuidance>[0]) =>
      classifierGuidance(d, mixtureClassifier(gm), { scale: 2 });
    const cgSync = await readFloat32(await run(guide(gm.denoiser('epsilon'))), true);
    const cgAsync = await readFloat32(await run(guide(asyncAdapter(gm.denoiser('epsilon')))), true);
    expect(maxAbsDiff(cgAsync, cgSync)).toBe(0);
  });
});
