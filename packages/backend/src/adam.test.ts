/**
 * The fused Adam kernel against the composed tfjs ops (the same float32 operations in the same
 * order: bit-identical on wasm) and against a float64 reference written from the definition.
 */
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import {
  ADAM_UPDATE,
  type AdamUpdateConfig,
  adamUpdate,
  adamUpdateComposed,
  assertNoLeaks,
  InvalidArgumentError,
  initBackend,
  Random,
} from './index.js';
import { setSimdKernelsEnabled } from './simd/index.js';

const t = 3;
const base: AdamUpdateConfig = {
  learningRate: 1e-3,
  beta1: 0.9,
  beta2: 0.999,
  epsilon: 1e-8,
  weightDecay: 0,
  c1: 1 - 0.9 ** t,
  c2: 1 - 0.999 ** t,
};

function inputs(n: number, seed: number) {
  const r = Random.seed(seed);
  return {
    p: r.normalArray(n),
    m: r.normalArray(n).map((x) => 0.1 * x),
    v: r.normalArray(n).map((x) => 0.01 * x * x),
    g: r.normalArray(n).map((x) => 0.5 * x),
  };
}

/** p', m', v' from the definition in float64. */
function reference(i: ReturnType<typeof inputs>, scale: number, c: AdamUpdateConfig) {
  const n = i.p.length;
  const p = new Float64Array(n);
  const m = new Float64Array(n);
  const v = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    const g = i.g[k]! * scale;
    m[k] = c.beta1 * i.m[k]! + (1 - c.beta1) * g;
    v[k] = c.beta2 * i.v[k]! + (1 - c.beta2) * g * g;
    const u = m[k]! / c.c1 / (Math.sqrt(v[k]! / c.c2) + c.epsilon) + c.weightDecay * i.p[k]!;
    p[k] = i.p[k]! - c.learningRate * u;
  }
  return { p, m, v };
}

function run(
  f: typeof adamUpdate,
  i: ReturnType<typeof inputs>,
  scale: number | null,
  c: AdamUpdateConfig,
  shape: number[],
) {
  return tf.tidy(() => {
    const out = f(
      tf.tensor(i.p, shape),
      tf.tensor(i.m, shape),
      tf.tensor(i.v, shape),
      tf.tensor(i.g, shape),
      scale === null ? null : tf.scalar(scale),
      c,
    );
    return [out.p, out.m, out.v].map((x) => {
      expect(x.shape).toEqual(shape);
      return x.dataSync() as Float32Array;
    });
  });
}

describe('adamUpdate', () => {
  const cases = [
    { shape: [7], scale: null, wd: 0 }, // a tail of 3 after one SIMD vector
    { shape: [3, 3, 8, 16], scale: 0.37, wd: 0 },
    { shape: [33, 5], scale: null, wd: 0.01 },
    { shape: [2], scale: 1, wd: 0.1 }, // tail only
  ];

  it.each(cases)(
    'wasm kernel equals the composed ops bit for bit, cpu within 1e-6: %o',
    async (k) => {
      const n = k.shape.reduce((a, b) => a * b, 1);
      const i = inputs(n, n);
      const c = { ...base, weightDecay: k.wd };
      await initBackend('wasm');
      const names: string[] = [];
      const engine = tf.engine();
      const original = engine.runKernel.bind(engine);
      engine.runKernel = ((name: string, ins: never, attrs: never) => {
        names.push(name);
        return original(name, ins, attrs);
      }) as typeof engine.runKernel;
      let fused: Float32Array[];
      try {
        fused = run(adamUpdate, i, k.scale, c, k.shape);
      } finally {
        engine.runKernel = original;
      }
      expect(names.filter((x) => x !== 'Reshape' && x !== 'Cast')).toEqual([ADAM_UPDATE]);
      const composed = run(adamUpdateComposed, i, k.scale, c, k.shape);
      for (let j = 0; j < 3; j++) expect(Array.from(fused[j]!)).toEqual(Array.from(composed[j]!));

      const ref = reference(i, k.scale ?? 1, c);
      const refs = [ref.p, ref.m, ref.v];
      for (let j = 0; j < 3; j++) {
        for (let e = 0; e < n; e++) {
          expect(Math.abs(fused[j]![e]! - refs[j]![e]!)).toBeLessThanOrEqual(
            1e-6 * Math.max(1, Math.abs(refs[j]![e]!)),
          );
        }
      }
      await initBackend('cpu');
      const cpu = run(adamUpdate, i, k.scale, c, k.shape);
      for (let j = 0; j < 3; j++) {
        for (let e = 0; e < n; e++) {
          expect(Math.abs(cpu[j]![e]! - fused[j]![e]!)).toBeLessThanOrEqual(
            1e-6 * Math.max(1, Math.abs(fused[j]![e]!)),
          );
        }
      }
    },
  );

  it('falls back to the composed ops on wasm without the SIMD module, and leaks nothing', async () => {
    await initBackend('wasm');
    const i = inputs(10, 1);
    const fused = run(adamUpdate, i, 0.5, base, [10]);
    setSimdKernelsEnabled(tf.backend(), false);
    try {
      const plain = run(adamUpdate, i, 0.5, base, [10]);
      for (let j = 0; j < 3; j++) expect(Array.from(plain[j]!)).toEqual(Array.from(fused[j]!));
    } finally {
      setSimdKernelsEnabled(tf.backend(), true);
    }
    const p = tf.tensor(i.p);
    const g = tf.tensor(i.g);
    const ids = tf.engine().backend.numDataIds(); // the kernel's buffers included
    await assertNoLeaks(() => {
      const half = tf.scalar(0.5);
      const out = adamUpdate(p, g, g, g, half, base);
      tf.dispose([out.p, out.m, out.v, half]);
    }, 'adamUpdate');
    expect(tf.engine().backend.numDataIds()).toBe(ids);
    tf.dispose([p, g]);
  });

  it('rejects mismatched shapes, non-float32 inputs and a non-scalar scale', async () => {
    await initBackend('wasm');
    const p = tf.zeros([4]);
    expect(() => adamUpdate(p, tf.zeros([3]), p, p, null, base)).toThrow(InvalidArgumentError);
    expect(() => adamUpdate(p, p, p, tf.zeros([4], 'int32'), null, base)).toThrow(/float32/);
    expect(() => adamUpdate(p, p, p, p, tf.zeros([2]), base)).toThrow(/scalar/);
    tf.disposeVariables();
  });
});
