/**
 * The fused SiLU kernels against tfjs's composed mul(x, sigmoid(x)) and its gradients (the same
 * float32 operations in the same order: bit-identical on wasm) and against float64 closed forms.
 */
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { assertNoLeaks, initBackend, Random, SILU, SILU_GRAD, silu } from './index.js';
import { setSimdKernelsEnabled } from './simd/index.js';

/** y and dx = d/dx sum(silu(x) w) through `f`, read back. */
function run(f: (x: tf.Tensor) => tf.Tensor, xs: Float32Array, ws: Float32Array, shape: number[]) {
  return tf.tidy(() => {
    const x = tf.tensor(xs, shape);
    const w = tf.tensor(ws, shape);
    const y = f(x);
    const dx = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(f(x), w)))(x);
    return [y.dataSync() as Float32Array, dx.dataSync() as Float32Array];
  });
}

const composed = (x: tf.Tensor) => tf.mul(x, tf.sigmoid(x));

describe('silu', () => {
  it.each([[7], [4, 33], [2, 5, 5, 8]])(
    'wasm kernels equal the composed ops bit for bit and the closed forms to 1e-6: shape %o',
    async (...shape) => {
      await initBackend('wasm');
      const n = shape.reduce((a, b) => a * b, 1);
      const xs = Random.seed(n)
        .normalArray(n)
        .map((v) => 4 * v);
      const ws = Random.seed(n + 1).normalArray(n);
      const names: string[] = [];
      const engine = tf.engine();
      const original = engine.runKernel.bind(engine);
      engine.runKernel = ((name: string, ins: never, attrs: never) => {
        names.push(name);
        return original(name, ins, attrs);
      }) as typeof engine.runKernel;
      let fused: Float32Array[];
      try {
        fused = run(silu, xs, ws, shape);
      } finally {
        engine.runKernel = original;
      }
      expect(names).toContain(SILU);
      expect(names).toContain(SILU_GRAD);
      expect(names).not.toContain('Sigmoid');
      const plain = run(composed, xs, ws, shape);
      expect(Array.from(fused[0]!)).toEqual(Array.from(plain[0]!));
      expect(Array.from(fused[1]!)).toEqual(Array.from(plain[1]!));
      for (let i = 0; i < n; i++) {
        const x = xs[i]!;
        const s = 1 / (1 + Math.exp(-x));
        expect(Math.abs(fused[0]![i]! - x * s)).toBeLessThanOrEqual(
          1e-6 * Math.max(1, Math.abs(x)),
        );
        const d = ws[i]! * s * (1 + x * (1 - s));
        expect(Math.abs(fused[1]![i]! - d)).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(d)));
      }
    },
  );

  it('runs the composed ops on cpu and on wasm without the SIMD module, with the same values; leaks nothing', async () => {
    const n = 37;
    const xs = Random.seed(5).normalArray(n);
    const ws = Random.seed(6).normalArray(n);
    await initBackend('wasm');
    const fused = run(silu, xs, ws, [n]);
    setSimdKernelsEnabled(tf.backend(), false);
    try {
      const plain = run(silu, xs, ws, [n]);
      expect(Array.from(plain[1]!)).toEqual(Array.from(fused[1]!));
    } finally {
      setSimdKernelsEnabled(tf.backend(), true);
    }
    const x = tf.tensor(xs);
    await assertNoLeaks(() => {
      tf.dispose(tf.grads((x: tf.Tensor) => tf.sum(silu(x)))([x]));
      silu(x).dispose();
    }, 'silu');
    x.dispose();
    await initBackend('cpu');
    const cpu = run(silu, xs, ws, [n]);
    for (let j = 0; j < 2; j++) {
      for (let i = 0; i < n; i++) {
        expect(Math.abs(cpu[j]![i]! - fused[j]![i]!)).toBeLessThanOrEqual(1e-6);
      }
    }
  });
});
