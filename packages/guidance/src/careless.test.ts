/**
 * A careless caller (issue 17): one guidance convention per call, misspelled or unknown options name
 * themselves, and a seeded fuzz of malformed option objects through every guidance wrapper and
 * `repaint` gives typed errors, no hang and no leaked tensors.
 */
import { DiffuseError, Fuzzer, initBackend } from '@diffuse/backend';
import type { Denoiser } from '@diffuse/models';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  cfgCombine,
  classifierFreeGuidance,
  classifierGuidance,
  dynamicThresholding,
  GuidanceError,
  mixtureClassifier,
  repaint,
  resolveGuidanceScale,
  sampleClipping,
} from './index.js';
import { threeClassMixture } from './test-fixtures.js';

const gm = threeClassMixture();
beforeAll(async () => {
  await initBackend('wasm');
});

describe('one guidance convention per call', () => {
  it('w (Ho & Salimans) and guidanceScale (diffusers) are one number, s = 1 + w', async () => {
    const c = tf.tensor1d([2, -1]);
    const u = tf.tensor1d([1, 1]);
    // w = 1 is 2c - u; guidanceScale = 1 is c.
    expect(Array.from(await cfgCombine(c, u, { w: 1 }).data())).toEqual([3, -3]);
    expect(Array.from(await cfgCombine(c, u, { guidanceScale: 1 }).data())).toEqual([2, -1]);
    expect(Array.from(await cfgCombine(c, u, 2).data())).toEqual([3, -3]);
    expect(resolveGuidanceScale({ w: 6.5 })).toBe(7.5);
    tf.dispose([c, u]);
  });

  it('both, neither, or a diffusers spelling is a typed error that says which', () => {
    const d = gm.denoiser('epsilon');
    expect(() => resolveGuidanceScale({ w: 1, guidanceScale: 2 } as never)).toThrow(
      /not both: guidanceScale = 2 \(diffusers.*\) and w = 1 \(Ho & Salimans/,
    );
    expect(() => cfgCombine(tf.zeros([1]), tf.zeros([1]), {} as never)).toThrow(GuidanceError);
    expect(() => classifierFreeGuidance(d, { guidance_scale: 7.5 } as never)).toThrow(
      /classifierFreeGuidance has no option 'guidance_scale'; did you mean guidanceScale/,
    );
    expect(() => classifierFreeGuidance(d, { w: 1, guidance_rescale: 0.7 } as never)).toThrow(
      /no option 'guidance_rescale'; did you mean rescale/,
    );
    expect(() => classifierFreeGuidance(d, { w: '1' } as never)).toThrow(
      /w must be a finite number, got 1/,
    );
    expect(() => classifierFreeGuidance(d, { w: 1, batchBranches: 'no' } as never)).toThrow(
      /batchBranches must be a boolean/,
    );
    expect(() => classifierFreeGuidance(d, { w: 1, interval: { lo: 1 } } as never)).toThrow(
      /interval has no option 'lo'/,
    );
    expect(() => classifierFreeGuidance(d, null as never)).toThrow(/options must be an object/);
    expect(() =>
      classifierGuidance(d, mixtureClassifier(gm), { scale: 1, guidanceScale: 2 } as never),
    ).toThrow(/classifierGuidance has no option 'guidanceScale'/);
    expect(() => classifierGuidance(d, null as never, { scale: 1 })).toThrow(
      /the classifier must have logits/,
    );
    expect(() => dynamicThresholding(d, { percentile: 0.9, ratio: 1 } as never)).toThrow(
      /dynamicThresholding has no option 'ratio'/,
    );
    expect(() => sampleClipping(d, { range: 1 } as never)).toThrow(
      /sampleClipping has no option 'range'/,
    );
  });
});

const HOSTILE: unknown[] = [
  Number.NaN,
  Number.POSITIVE_INFINITY,
  -1,
  0,
  0.5,
  2.5,
  1e12,
  '3',
  '',
  'epsilon',
  null,
  true,
  [],
  [1, 'a'],
  {},
  { sigmaLo: 'a' },
  () => 1,
  10n,
  Symbol('s'),
];

const SEED = 20261209;
const CASES = 600;

describe(`fuzz (seed ${SEED})`, () => {
  it(`${CASES} malformed option objects through the guidance wrappers: typed, < 1 s of CPU, no leaks`, async () => {
    // the project's seeded harness (Random.seed; typed error, CPU time and leak check per call)
    const fuzz = new Fuzzer(SEED);
    const rand = () => fuzz.uniform();
    const pick = <T>(a: readonly T[]): T => fuzz.pick(a);
    const d = gm.denoiser('epsilon');
    const classifier = mixtureClassifier(gm);
    const wrappers: [string, string[], (o: unknown) => unknown][] = [
      [
        'classifierFreeGuidance',
        [
          'guidanceScale',
          'w',
          'nullLabel',
          'negativeLabels',
          'unconditional',
          'batchBranches',
          'rescale',
          'rescaleSpace',
          'interval',
        ],
        (o) => classifierFreeGuidance(d, o as never),
      ],
      [
        'classifierGuidance',
        ['scale', 'conditionDenoiser'],
        (o) => classifierGuidance(d, classifier, o as never),
      ],
      [
        'dynamicThresholding',
        ['percentile', 'maxValue'],
        (o) => dynamicThresholding(d, o as never),
      ],
      ['sampleClipping', ['min', 'max'], (o) => sampleClipping(d, o as never)],
    ];
    const x = tf.tensor2d([
      [0.5, -0.2],
      [1.5, 0.3],
    ]);
    const labels = tf.tensor1d([0, 2], 'int32');
    const before = tf.memory().numTensors;
    for (let c = 0; c < CASES; c++) {
      const [name, keys, wrap] = pick(wrappers);
      const options: Record<string, unknown> =
        name === 'classifierFreeGuidance'
          ? { guidanceScale: 3 }
          : name === 'classifierGuidance'
            ? { scale: 2 }
            : {};
      const mutations = 1 + Math.floor(rand() * 3);
      for (let m = 0; m < mutations; m++) {
        const key = rand() < 0.8 ? pick(keys) : pick(['guidance_scale', 'scale', 'cfg', `k${c}`]);
        options[key] = pick(HOSTILE);
      }
      const what = `case ${c}: ${name}(${Object.entries(options)
        .map(([k, v]) => `${k}=${String(v)}`)
        .join(', ')})`;
      await fuzz.probe(
        what,
        () => what,
        () => {
          const guided = wrap(options) as Denoiser;
          // A wrapper that accepted its options must also run (one call) and give finite numbers.
          return guided.predict(x, { alpha: 0.8, sigma: 0.6 }, { labels });
        },
        {
          check: (outcome, out) =>
            outcome === 'ok' && !(out as tf.Tensor).dataSync().every(Number.isFinite)
              ? 'accepted options gave a non-finite result'
              : undefined,
        },
      );
    }
    expect(fuzz.failures, fuzz.report()).toEqual([]);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, labels]);
    expect(fuzz.counts.rejected).toBeGreaterThan(CASES * 0.5);
    console.log(`fuzz guidance: ${fuzz.summary()}`);
  }, 60_000);

  it('repaint: a symbol as seed or batch is a typed error naming it (found by the fuzz with seed 12)', async () => {
    const d = gm.denoiser('epsilon');
    const image = tf.zeros([2, 2]);
    const mask = tf.ones([2, 2]);
    const base = { image, mask, steps: 2, jumpLength: 1, resampleCount: 1, seed: 1 };
    for (const patch of [{ seed: Symbol('s') }, { batch: Symbol('b') }]) {
      const e = await repaint(d, { ...base, ...patch } as never).catch((x: unknown) => x);
      expect(e, Object.keys(patch)[0]).toBeInstanceOf(DiffuseError);
      expect((e as Error).message).toMatch(/Symbol\([sb]\)/);
    }
    tf.dispose([image, mask]);
  });

  it('repaint with malformed options: typed errors, no leaks', async () => {
    const fuzz = new Fuzzer(SEED + 1);
    const pick = <T>(a: readonly T[]): T => fuzz.pick(a);
    const d = gm.denoiser('epsilon');
    const image = tf.zeros([2, 2]);
    const mask = tf.tensor2d([
      [1, 0],
      [0, 1],
    ]);
    const keys = [
      'image',
      'mask',
      'batch',
      'sampler',
      'seed',
      'steps',
      'jumpLength',
      'resampleCount',
      'embedding',
      'schedule',
      'samplerOptions',
      'onProgress',
      'sigmas',
      'jump_length',
    ];
    const before = tf.memory().numTensors;
    for (let c = 0; c < 60; c++) {
      const options: Record<string, unknown> = {
        image,
        mask,
        steps: 2,
        jumpLength: 1,
        resampleCount: 1,
        seed: 1,
      };
      const key = pick(keys);
      options[key] = pick(HOSTILE);
      await fuzz.probe(
        `case ${c}`,
        () => `${key} = ${String(options[key])}`,
        () => repaint(d, options as never),
      );
    }
    expect(fuzz.failures, fuzz.report()).toEqual([]);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([image, mask]);
    expect(fuzz.counts.rejected).toBeGreaterThan(30);
  });
});
