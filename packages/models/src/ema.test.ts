import { assertNoLeaks, initBackend } from '@diffuse/backend';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { createModel, Ema, ModelError, mlpConfig } from './index.js';

beforeAll(async () => {
  await initBackend('wasm');
});

describe('Ema', () => {
  it('constant parameters: shadow_n = d^n s_0 + (1 - d^n) p (closed form)', async () => {
    const p = tf.variable(tf.tensor1d([1, -2, 3]));
    const ema = new Ema([p], { decay: 0.9 });
    p.assign(tf.tensor1d([5, 0, -1]));
    await assertNoLeaks(() => {
      for (let i = 0; i < 20; i++) ema.update();
    }, 'ema.update');
    const dn = 0.9 ** 20;
    const expected = [1 * dn + 5 * (1 - dn), -2 * dn, 3 * dn - (1 - dn)];
    const got = ema.shadow[0]!.dataSync();
    expected.forEach((v, i) => {
      expect(got[i]).toBeCloseTo(v, 5);
    });
    expect(ema.updates).toBe(20);
    ema.dispose();
    p.dispose();
  });

  it('varying parameters and per-call decay match the recursion in float64; warm-up follows (1+n)/(10+n)', () => {
    const p = tf.variable(tf.scalar(0));
    const ema = new Ema([p], { decay: 0.99, warmup: true });
    let s = 0;
    for (let n = 0; n < 30; n++) {
      const value = Math.sin(n);
      p.assign(tf.scalar(value));
      const d = Math.min(0.99, (1 + n) / (10 + n));
      expect(ema.nextDecay()).toBeCloseTo(d, 12);
      ema.update();
      s = d * s + (1 - d) * value;
    }
    expect(ema.shadow[0]!.dataSync()[0]).toBeCloseTo(s, 5);
    const q = tf.variable(tf.scalar(2));
    const e2 = new Ema([q], { decay: 0.5 });
    q.assign(tf.scalar(4));
    e2.update(0.25); // 0.25 * 2 + 0.75 * 4
    expect(e2.shadow[0]!.dataSync()[0]).toBeCloseTo(3.5, 6);
    expect(() => e2.update(1.5)).toThrow(ModelError);
    for (const v of [p, q]) v.dispose();
    ema.dispose();
    e2.dispose();
  });

  it('swap exchanges model and averaged weights (twice restores), copyTo fills a model copy', () => {
    const net = createModel(mlpConfig({ dim: 2, width: 4, depth: 1, embedDim: 4 }), { seed: 1 });
    const copy = createModel(mlpConfig({ dim: 2, width: 4, depth: 1, embedDim: 4 }), { seed: 2 });
    const before = net.params.map((v) => Array.from(v.dataSync()));
    const ema = new Ema(net.params, { decay: 0.5 });
    for (const v of net.params) v.assign(tf.add(v, 1));
    ema.update(); // shadow = before + 0.5
    ema.swap();
    net.params.forEach((v, i) => {
      const got = v.dataSync();
      before[i]!.forEach((b, j) => {
        expect(got[j]).toBeCloseTo(b + 0.5, 5);
      });
    });
    ema.swap();
    net.params.forEach((v, i) => {
      const got = v.dataSync();
      before[i]!.forEach((b, j) => {
        expect(got[j]).toBeCloseTo(b + 1, 5);
      });
    });
    ema.copyTo(copy.params);
    copy.params.forEach((v, i) => {
      expect(Array.from(v.dataSync())).toEqual(Array.from(ema.shadow[i]!.dataSync()));
    });
    expect(() => ema.copyTo(copy.params.slice(1))).toThrow(/do not match/);
    ema.dispose();
    net.dispose();
    copy.dispose();
  });
});
