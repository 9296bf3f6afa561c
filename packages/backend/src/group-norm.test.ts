/**
 * The fused GroupNorm (+ SiLU) kernels against (a) a float64 reference written from the definition
 * in this file, and (b) the same math composed of tfjs ops and differentiated by tfjs autodiff, on
 * the wasm and cpu backends. Odd shapes, batch 1, ranks 2 to 5, 1 to C groups.
 *
 * Tolerances (float32 data):
 * - forward, kernel vs float64 reference: 2e-6 relative to max(1, max |y|) (the kernel sums in float64,
 *   so only the final float32 rounding remains);
 * - forward, composed tfjs ops vs reference: 1e-4 (float32 sums in another order);
 * - gradients (dx, dgamma, dbeta), kernel vs composed autodiff: 1e-4 relative to the largest entry
 *   of each gradient (dgamma and dbeta are sums over batch x positions in float32 on the composed side).
 */
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import {
  assertNoLeaks,
  type GroupNormActivation,
  groupNorm,
  groupNormComposed,
  InvalidArgumentError,
  initBackend,
  Random,
} from './index.js';
import { setSimdKernelsEnabled, simdKernels } from './simd/index.js';

interface Case {
  shape: number[];
  groups: number;
  activation: GroupNormActivation;
}

const cases: Case[] = [
  { shape: [1, 5, 3, 6], groups: 3, activation: 'silu' }, // batch 1, odd spatial sizes
  { shape: [2, 7, 5, 12], groups: 1, activation: 'silu' },
  { shape: [2, 7, 5, 12], groups: 4, activation: 'none' },
  { shape: [2, 7, 5, 12], groups: 12, activation: 'silu' }, // one channel per group
  { shape: [3, 9, 9, 10], groups: 5, activation: 'silu' },
  { shape: [1, 1, 1, 8], groups: 2, activation: 'none' }, // 1x1 spatial
  { shape: [3, 6], groups: 2, activation: 'silu' }, // rank 2: [batch, channels]
  { shape: [2, 3, 2, 3, 8], groups: 4, activation: 'none' }, // rank 5
  // U-Net-like: channels a multiple of 4, so wasm runs the SIMD module (simd/kernels.wat)
  { shape: [3, 6, 5, 32], groups: 8, activation: 'silu' },
  { shape: [2, 3, 3, 128], groups: 32, activation: 'none' },
];

interface Inputs {
  x: Float32Array;
  gamma: Float32Array;
  beta: Float32Array;
  w: Float32Array; // weights of the scalar loss sum(w * y)
}

function inputsFor(c: Case, seed: number, mean = 0.7, std = 1.9): Inputs {
  const rng = Random.seed(seed);
  const size = c.shape.reduce((a, b) => a * b, 1);
  const ch = c.shape[c.shape.length - 1]!;
  const x = rng.normalArray(size).map((v) => mean + std * v);
  const gamma = rng.normalArray(ch).map((v) => 1 + 0.5 * v);
  const beta = rng.normalArray(ch).map((v) => 0.3 * v);
  const w = rng.normalArray(size);
  return { x, gamma, beta, w };
}

/** y from the definition, in float64, one (example, group) at a time. */
function reference(c: Case, inp: Inputs, eps = 1e-5): Float64Array {
  const n = c.shape[0]!;
  const ch = c.shape[c.shape.length - 1]!;
  const s = c.shape.slice(1, -1).reduce((a, b) => a * b, 1);
  const cg = ch / c.groups;
  const y = new Float64Array(inp.x.length);
  for (let b = 0; b < n; b++) {
    for (let g = 0; g < c.groups; g++) {
      const idx: number[] = [];
      for (let p = 0; p < s; p++)
        for (let k = g * cg; k < (g + 1) * cg; k++) idx.push((b * s + p) * ch + k);
      const mean = idx.reduce((a, i) => a + inp.x[i]!, 0) / idx.length;
      const variance = idx.reduce((a, i) => a + (inp.x[i]! - mean) ** 2, 0) / idx.length;
      for (const i of idx) {
        const k = i % ch;
        const z = ((inp.x[i]! - mean) / Math.sqrt(variance + eps)) * inp.gamma[k]! + inp.beta[k]!;
        y[i] = c.activation === 'silu' ? z / (1 + Math.exp(-z)) : z;
      }
    }
  }
  return y;
}

type Impl = typeof groupNorm;

/** y and the gradients of sum(w * y) in x, gamma and beta. */
function run(c: Case, inp: Inputs, impl: Impl): Float32Array[] {
  const ch = c.shape[c.shape.length - 1]!;
  return tf.tidy(() => {
    const x = tf.tensor(inp.x, c.shape);
    const gamma = tf.tensor1d(inp.gamma);
    const beta = tf.tensor1d(inp.beta);
    const w = tf.tensor(inp.w, c.shape);
    const opts = { groups: c.groups, activation: c.activation };
    const y = impl(x, gamma, beta, opts);
    const grads = tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.mul(w, impl(a, g, b, opts))),
    )([x, gamma, beta]);
    expect(grads[1]!.shape).toEqual([ch]);
    return [y, ...grads].map((t) => t.dataSync() as Float32Array);
  });
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, rtol: number): void {
  expect(actual.length).toBe(expected.length);
  let err = 0;
  for (let i = 0; i < actual.length; i++) err = Math.max(err, Math.abs(actual[i]! - expected[i]!));
  expect(err).toBeLessThanOrEqual(rtol * Math.max(1, maxAbs(expected)));
}

function expectGradsClose(actual: Float32Array[], expected: Float32Array[]): void {
  for (let k = 1; k < 4; k++) {
    expect(actual[k]!.length).toBe(expected[k]!.length);
    let err = 0;
    for (let i = 0; i < actual[k]!.length; i++)
      err = Math.max(err, Math.abs(actual[k]![i]! - expected[k]![i]!));
    expect(err).toBeLessThanOrEqual(1e-4 * Math.max(1e-3, maxAbs(expected[k]!)));
  }
}

describe('groupNorm kernels', () => {
  it.each(cases)('forward and gradients match the reference and composed ops: %s', async (c) => {
    const inp = inputsFor(c, c.shape.length * 100 + c.groups);
    const ref = reference(c, inp);
    await initBackend('cpu');
    const composedCpu = run(c, inp, groupNormComposed);
    const kernelCpu = run(c, inp, groupNorm);
    await initBackend('wasm');
    const composedWasm = run(c, inp, groupNormComposed);
    const kernelWasm = run(c, inp, groupNorm);

    expectClose(kernelWasm[0]!, ref, 2e-6);
    expectClose(kernelCpu[0]!, ref, 2e-6);
    expectClose(composedCpu[0]!, ref, 1e-4);
    expectClose(composedWasm[0]!, ref, 1e-4);
    expectGradsClose(kernelWasm, composedCpu);
    expectGradsClose(kernelCpu, composedCpu);
    expectGradsClose(kernelWasm, composedWasm);
  });

  it('dx sums to zero over each (example, group) without activation (mean subtraction)', async () => {
    await initBackend('wasm');
    const c: Case = { shape: [2, 5, 7, 6], groups: 3, activation: 'none' };
    const [, dx] = run(c, inputsFor(c, 7), groupNorm);
    const s = 35;
    for (let b = 0; b < 2; b++) {
      for (let g = 0; g < 3; g++) {
        let sum = 0;
        let abs = 0;
        for (let p = 0; p < s; p++)
          for (let k = 2 * g; k < 2 * g + 2; k++) {
            sum += dx![(b * s + p) * 6 + k]!;
            abs += Math.abs(dx![(b * s + p) * 6 + k]!);
          }
        expect(Math.abs(sum)).toBeLessThan(1e-5 * abs);
      }
    }
  });

  it('stays accurate for a large mean and a small spread (float64 statistics)', async () => {
    await initBackend('wasm');
    const c: Case = { shape: [2, 6, 6, 4], groups: 2, activation: 'silu' };
    const inp = inputsFor(c, 11, 300, 0.05);
    const [y] = run(c, inp, groupNorm);
    // x itself is float32 (spacing 3e-5 near 300), so the reference sees the same rounded inputs.
    expectClose(y!, reference(c, inp), 2e-5);
    // channels of one group with very different means (the pooled variance is mostly between-channel)
    const spread = { ...inp, x: inp.x.map((v, i) => v - 300 + 50 * (i % 4)) };
    const [y2] = run(c, spread, groupNorm);
    expectClose(y2!, reference(c, spread), 2e-6);
  });

  it('is a single kernel each way on wasm and leaks nothing', async () => {
    await initBackend('wasm');
    const c: Case = { shape: [2, 4, 4, 8], groups: 4, activation: 'silu' };
    const inp = inputsFor(c, 3);
    const x = tf.tensor(inp.x, c.shape);
    const gamma = tf.tensor1d(inp.gamma);
    const beta = tf.tensor1d(inp.beta);
    const names: string[] = [];
    const engine = tf.engine();
    const original = engine.runKernel.bind(engine);
    engine.runKernel = ((name: string, inputs: never, attrs: never) => {
      names.push(name);
      return original(name, inputs, attrs);
    }) as typeof engine.runKernel;
    try {
      const ids = tf.engine().backend.numDataIds(); // the kernels' scratch buffers included
      await assertNoLeaks(() => {
        tf.tidy(() => {
          const f = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) =>
            groupNorm(a, g, b, { groups: 4, activation: 'silu' });
          tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.sum(f(a, g, b)))([
            x,
            gamma,
            beta,
          ]);
        });
      }, 'groupNorm forward + backward');
      expect(tf.engine().backend.numDataIds()).toBe(ids);
    } finally {
      engine.runKernel = original;
    }
    expect(names.filter((n) => n.startsWith('DiffuseGroupNorm'))).toEqual([
      'DiffuseGroupNorm',
      'DiffuseGroupNormGrad',
    ]);
    tf.dispose([x, gamma, beta]);
  });

  it('runs the SIMD kernels on wasm (channels a multiple of 4), equal to the JavaScript loops', async () => {
    await initBackend('wasm');
    expect(simdKernels(tf.backend())).not.toBeNull();
    for (const c of cases.filter((k) => k.shape[k.shape.length - 1]! % 4 === 0)) {
      const inp = inputsFor(c, 5);
      const simd = run(c, inp, groupNorm);
      setSimdKernelsEnabled(tf.backend(), false);
      try {
        const js = run(c, inp, groupNorm);
        expectClose(simd[0]!, js[0]!, 2e-6);
        expectGradsClose(simd, js);
      } finally {
        setSimdKernelsEnabled(tf.backend(), true);
      }
    }
  });

  it('rejects bad arguments with InvalidArgumentError', async () => {
    await initBackend('wasm');
    const x = tf.zeros([2, 4, 4, 6]);
    const g = tf.ones([6]);
    const b = tf.zeros([6]);
    expect(() => groupNorm(x, g, b, { groups: 4 })).toThrow(/dividing the channel count 6/);
    expect(() => groupNorm(x, g, b, { groups: 0 })).toThrow(InvalidArgumentError);
    expect(() => groupNorm(x, tf.ones([4]), b, { groups: 2 })).toThrow(
      /gamma must have shape \[6\]/,
    );
    expect(() => groupNorm(tf.zeros([6]), g, b, { groups: 2 })).toThrow(/rank >= 2/);
    expect(() => groupNorm(tf.zeros([2, 6], 'int32'), g, b, { groups: 2 })).toThrow(/float32/);
    expect(() =>
      groupNorm(x, g, b, { groups: 2, activation: 'relu' as GroupNormActivation }),
    ).toThrow(/activation/);
    expect(() => groupNorm(x, g, b, { groups: 2, epsilon: -1 })).toThrow(/epsilon/);
    tf.disposeVariables();
  });
});
