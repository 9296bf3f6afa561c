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
  adamUpdateInPlace,
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

describe('adamUpdateInPlace', () => {
  /** p, m, v as variables holding the inputs, each the only holder of its buffer. */
  function variables(i: ReturnType<typeof inputs>, shape: number[]) {
    return [i.p, i.m, i.v].map((a) => {
      const t = tf.tensor(a, shape);
      const v = tf.variable(t, false);
      t.dispose();
      return v;
    }) as [tf.Variable, tf.Variable, tf.Variable];
  }

  it.each([
    { shape: [7], scale: null, wd: 0 },
    { shape: [3, 3, 8, 16], scale: 0.37, wd: 0.01 },
  ])(
    'gives the bits of adamUpdate, the moments in their own buffers, over 3 steps: %o',
    async (k) => {
      await initBackend('wasm');
      const n = k.shape.reduce((a, b) => a * b, 1);
      const i = inputs(n, 7 * n);
      const [p, m, v] = variables(i, k.shape);
      let want = { p: i.p, m: i.m, v: i.v };
      for (let step = 1; step <= 3; step++) {
        const c = { ...base, weightDecay: k.wd, c1: 1 - 0.9 ** step, c2: 1 - 0.999 ** step };
        const g = Float32Array.from(Random.seed(step).normalArray(n));
        const ids = [m.dataId, v.dataId];
        const pid = p.dataId;
        const before = tf.memory().numTensors;
        tf.tidy(() => {
          const p2 = adamUpdateInPlace(
            p,
            m,
            v,
            tf.tensor(g, k.shape),
            k.scale === null ? null : tf.scalar(k.scale),
            c,
          );
          expect(p2).not.toBeNull();
          p.assign(p2!);
        });
        expect([m.dataId, v.dataId]).toEqual(ids); // the same buffers, overwritten
        expect(p.dataId).not.toBe(pid); // the parameter gets a new buffer
        expect(tf.memory().numTensors).toBe(before);
        const next = run(adamUpdate, { ...want, g }, k.scale, c, k.shape);
        const got = [p, m, v].map((x) => Array.from(x.dataSync()));
        for (let j = 0; j < 3; j++) expect(got[j]).toEqual(Array.from(next[j]!));
        want = {
          p: Float32Array.from(next[0]!),
          m: Float32Array.from(next[1]!),
          v: Float32Array.from(next[2]!),
        };
      }
      tf.dispose([p, m, v]);
    },
  );

  it('changes nothing and returns null where another tensor shares a moment, off wasm, or without the SIMD module', async () => {
    await initBackend('wasm');
    const i = inputs(10, 3);
    const [p, m, v] = variables(i, [10]);
    const g = tf.tensor(i.g);
    const snapshot = tf.clone(m); // shares m's buffer on wasm
    expect(adamUpdateInPlace(p, m, v, g, null, base)).toBeNull();
    expect(Array.from(snapshot.dataSync())).toEqual(Array.from(Float32Array.from(i.m)));
    snapshot.dispose();
    expect(adamUpdateInPlace(p, m, m, g, null, base)).toBeNull(); // one buffer twice
    setSimdKernelsEnabled(tf.backend(), false);
    try {
      expect(adamUpdateInPlace(p, m, v, g, null, base)).toBeNull();
    } finally {
      setSimdKernelsEnabled(tf.backend(), true);
    }
    expect(Array.from(m.dataSync())).toEqual(Array.from(Float32Array.from(i.m)));
    expect(Array.from(v.dataSync())).toEqual(Array.from(Float32Array.from(i.v)));
    expect(() => adamUpdateInPlace(p, m, v, tf.zeros([3]), null, base)).toThrow(
      InvalidArgumentError,
    );
    tf.dispose([p, m, v, g]);
    await initBackend('cpu');
    const [pc, mc, vc] = variables(i, [10]);
    const gc = tf.tensor(i.g);
    expect(adamUpdateInPlace(pc, mc, vc, gc, null, base)).toBeNull();
    tf.dispose([pc, mc, vc, gc]);
  });
});
