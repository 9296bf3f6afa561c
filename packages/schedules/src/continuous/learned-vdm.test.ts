import { assertNoLeaksSync, initBackend } from '@diffuse/backend';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LearnedVDMSchedule } from '../index.js';

beforeAll(async () => {
  await initBackend('wasm');
});

describe('learned VDM schedule (monotone network)', () => {
  let s: LearnedVDMSchedule;
  beforeAll(() => {
    s = new LearnedVDMSchedule({
      gammaMin: -13.3,
      gammaMax: 5,
      hiddenUnits: 256,
      initStd: 2,
      seed: 11,
    });
  });
  afterAll(() => s.dispose());

  it('hits its trainable endpoints exactly and is monotone even with large random weights', async () => {
    const t = tf.linspace(0, 1, 201);
    const g = s.gammaTensor(t);
    const gv = await g.data();
    expect(gv[0]).toBeCloseTo(-13.3, 4);
    expect(gv[200]).toBeCloseTo(5, 4);
    for (let i = 1; i < 201; i++) expect(gv[i]!).toBeGreaterThan(gv[i - 1]!);
    tf.dispose([t, g]);
  });

  it("the closed-form gamma'(t) equals tf.grad and a finite difference", async () => {
    const ts = [0.05, 0.3, 0.5, 0.77, 0.95];
    const t = tf.tensor1d(ts);
    const [d, g] = assertNoLeaksSync(() => [
      s.dGammaDtTensor(t),
      tf.grad((x: tf.Tensor) => tf.sum(s.gammaTensor(x)))(t),
    ]);
    const [dv, gv] = await Promise.all([d!.data(), g!.data()]);
    ts.forEach((tt, i) => {
      expect(Math.abs(dv[i]! - gv[i]!)).toBeLessThan(1e-3 * Math.abs(gv[i]!));
      const h = 1e-5;
      const fd = -(s.logSNR(tt + h) - s.logSNR(tt - h)) / (2 * h);
      expect(Math.abs(dv[i]! - fd)).toBeLessThan(1e-4 * Math.abs(fd));
    });
    tf.dispose([t, d!, g!]);
  });

  it("is differentiable in every parameter, through gamma and through gamma'(t)", () => {
    const t = tf.tensor1d([0.1, 0.4, 0.9]);
    // a loss like the continuous-time ELBO's: it uses both SNR(t) = exp(-gamma) and gamma'(t)
    const { value, grads } = tf.variableGrads(
      () => tf.sum(tf.mul(tf.exp(tf.neg(s.gammaTensor(t))), s.dGammaDtTensor(t))) as tf.Scalar,
      s.trainableVariables,
    );
    expect(Object.keys(grads)).toHaveLength(6);
    for (const v of s.trainableVariables) {
      const gv = grads[v.name]!.dataSync();
      expect(gv.every(Number.isFinite)).toBe(true);
      expect(gv.some((x) => x !== 0)).toBe(true);
    }
    tf.dispose([t, value, ...Object.values(grads)]);
  });

  it('trains: an optimizer moves the endpoints and the shape, keeping monotonicity', async () => {
    const m = new LearnedVDMSchedule({ hiddenUnits: 32, seed: 1 });
    const opt = tf.train.adam(0.05);
    const t = tf.tensor1d([0, 0.25, 0.5, 0.75, 1]);
    const target = tf.tensor1d([-10, -6, -4, 0, 4]); // a curved gamma with other endpoints
    const loss = () => tf.mean(tf.square(tf.sub(m.gammaTensor(t), target))) as tf.Scalar;
    const read = async () => {
      const l = loss();
      const v = (await l.data())[0]!;
      l.dispose();
      return v;
    };
    const before = await read();
    for (let i = 0; i < 150; i++) opt.minimize(loss, false, m.trainableVariables);
    const after = await read();
    expect(after).toBeLessThan(0.1 * before);
    expect(m.logSNRMax).toBeCloseTo(10, 0);
    const g = m.gammaTensor(tf.linspace(0, 1, 50));
    const gv = await g.data();
    for (let i = 1; i < 50; i++) expect(gv[i]!).toBeGreaterThanOrEqual(gv[i - 1]!);
    tf.dispose([t, target, g]);
    opt.dispose();
    m.dispose();
  });

  it('says so when the network has collapsed to a constant (no silent NaN)', () => {
    const m = new LearnedVDMSchedule({ hiddenUnits: 4, initStd: 0 });
    m.w1.assign(tf.zeros([1, 1]));
    expect(() => m.logSNR(0.5)).toThrow(/network is constant in t/);
    m.dispose();
  });

  it('rejects bad parameters', () => {
    expect(() => new LearnedVDMSchedule({ gammaMin: 5, gammaMax: -13 })).toThrow(
      /gammaMin < gammaMax/,
    );
    expect(() => new LearnedVDMSchedule({ hiddenUnits: 0 })).toThrow(
      /hiddenUnits must be a positive integer/,
    );
  });
});
