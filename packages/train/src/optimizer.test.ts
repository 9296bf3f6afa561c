import { assertNoLeaks, InvalidArgumentError, initBackend } from '@diffuse/backend';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { Adam, adamConfig, clipByGlobalNorm, learningRateAt } from './index.js';

beforeAll(async () => {
  await initBackend('wasm');
});

describe('learningRateAt', () => {
  it('linear warm-up to the peak, then constant', () => {
    const c = adamConfig({ learningRate: 1e-3, warmupSteps: 100 });
    expect(learningRateAt(1, c)).toBeCloseTo(1e-5, 15);
    expect(learningRateAt(50, c)).toBeCloseTo(5e-4, 15);
    expect(learningRateAt(100, c)).toBe(1e-3);
    expect(learningRateAt(101, c)).toBe(1e-3);
    expect(learningRateAt(1e6, c)).toBe(1e-3);
    expect(learningRateAt(1, adamConfig({ learningRate: 2e-3 }))).toBe(2e-3);
  });

  it('half-cosine decay from the peak at the end of warm-up to the floor at totalSteps', () => {
    const c = adamConfig({
      learningRate: 1,
      warmupSteps: 10,
      decay: 'cosine',
      totalSteps: 110,
      minLearningRate: 0.1,
    });
    expect(learningRateAt(10, c)).toBeCloseTo(1, 12);
    expect(learningRateAt(60, c)).toBeCloseTo(0.55, 12); // halfway: (1 + 0.1) / 2
    expect(learningRateAt(35, c)).toBeCloseTo(0.1 + (0.9 * (1 + Math.cos(Math.PI / 4))) / 2, 12);
    expect(learningRateAt(110, c)).toBeCloseTo(0.1, 12);
    expect(learningRateAt(500, c)).toBeCloseTo(0.1, 12);
  });

  it('rejects inconsistent options', () => {
    expect(() => adamConfig({ learningRate: 0 })).toThrow(InvalidArgumentError);
    expect(() => adamConfig({ beta1: 1 })).toThrow(/beta1/);
    expect(() => adamConfig({ warmupSteps: 1.5 })).toThrow(/warmupSteps/);
    expect(() => adamConfig({ decay: 'cosine' })).toThrow(/totalSteps/);
    expect(() => adamConfig({ clipNorm: -1 })).toThrow(/clipNorm/);
  });
});

describe('clipByGlobalNorm', () => {
  it('rescales by min(1, c / ||g||) with the norm over all tensors', async () => {
    const g = [tf.tensor1d([3, 4]), tf.tensor2d([[12]])];
    const clipped = await assertNoLeaks(() => clipByGlobalNorm(g, 1), 'clip');
    expect((await clipped.norm.data())[0]).toBeCloseTo(13, 5);
    const c0 = await clipped.grads[0]!.data();
    expect(c0[0]).toBeCloseTo(3 / 13, 6);
    expect(c0[1]).toBeCloseTo(4 / 13, 6);
    expect((await clipped.grads[1]!.data())[0]).toBeCloseTo(12 / 13, 6);
    const loose = clipByGlobalNorm(g, 100);
    expect(Array.from(await loose.grads[0]!.data())).toEqual([3, 4]);
    const zero = clipByGlobalNorm([tf.zeros([3])], 1);
    expect(Array.from(await zero.grads[0]!.data())).toEqual([0, 0, 0]);
    tf.dispose([g, clipped.grads, clipped.norm, loose.grads, loose.norm, zero.grads, zero.norm]);
  });
});

/** Float64 Adam on L(p) = 1/2 sum a_i p_i^2 with warm-up, clipping and decoupled weight decay. */
function referenceAdam(
  p0: number[],
  a: number[],
  steps: number,
  c: ReturnType<typeof adamConfig>,
): number[][] {
  const p = [...p0];
  const m = p.map(() => 0);
  const v = p.map(() => 0);
  const history: number[][] = [];
  for (let t = 1; t <= steps; t++) {
    const g = p.map((pi, i) => a[i]! * pi);
    const norm = Math.hypot(...g);
    const s = Math.min(1, c.clipNorm / norm);
    const lr = learningRateAt(t, c);
    for (let i = 0; i < p.length; i++) {
      const gi = g[i]! * s;
      m[i] = c.beta1 * m[i]! + (1 - c.beta1) * gi;
      v[i] = c.beta2 * v[i]! + (1 - c.beta2) * gi * gi;
      const mh = m[i]! / (1 - c.beta1 ** t);
      const vh = v[i]! / (1 - c.beta2 ** t);
      p[i] = p[i]! - lr * (mh / (Math.sqrt(vh) + c.epsilon) + c.weightDecay * p[i]!);
    }
    history.push([...p]);
  }
  return history;
}

describe('Adam', () => {
  it('matches a float64 reference with warm-up, clipping and weight decay, step by step', async () => {
    const p0 = [1.5, -2, 0.5, 3];
    const a = [1, 10, 100, 0.1];
    const options = { learningRate: 0.05, warmupSteps: 4, clipNorm: 2, weightDecay: 0.01 };
    const c = adamConfig(options);
    const ref = referenceAdam(p0, a, 12, c);
    const p = tf.variable(tf.tensor1d(p0));
    const at = tf.tensor1d(a);
    const adam = new Adam([p], options);
    for (let t = 0; t < 12; t++) {
      const norm = await assertNoLeaks(() => {
        const { value, grads } = tf.variableGrads(
          () => tf.mul(0.5, tf.sum(tf.mul(at, tf.square(p)))) as tf.Scalar,
          [p],
        );
        const n = adam.apply([grads[p.name]!]);
        tf.dispose([value, grads]);
        return n;
      }, 'adam step');
      norm.dispose();
      const got = Array.from(await p.data());
      got.forEach((g, i) => {
        expect(g).toBeCloseTo(ref[t]![i]!, 5);
      });
    }
    expect(adam.step).toBe(12);
    // clipping was active (the first gradient has norm ~ 59 > 2) and warm-up made step 1 small:
    // Adam's first step is lr_1 * g / (|g| + eps) = lr/4 in each coordinate
    expect(ref[0]![0]).toBeCloseTo(1.5 - 0.05 / 4 - (0.05 / 4) * 0.01 * 1.5, 7);
    tf.dispose([p, at]);
    adam.dispose();
  });

  it('saves and restores its moments exactly', async () => {
    const p = tf.variable(tf.tensor1d([1, 2, 3]));
    const adam = new Adam([p], { learningRate: 0.1 });
    const g = tf.tensor1d([0.3, -0.2, 0.1]);
    adam.apply([g]).dispose();
    const copy = new Adam([p], { learningRate: 0.1 });
    copy.loadState(adam.step, adam.stateTensors());
    expect(copy.step).toBe(1);
    for (const [k, t] of Object.entries(adam.stateTensors())) {
      expect(Array.from(await copy.stateTensors()[k]!.data())).toEqual(Array.from(await t.data()));
    }
    expect(() => copy.apply([])).toThrow(/1 parameters/);
    tf.dispose([p, g]);
    adam.dispose();
    copy.dispose();
  });
});

describe('Adam memory', () => {
  it('construct, step and dispose leave no tensors behind (the moments own their memory)', async () => {
    const params = [tf.variable(tf.ones([3, 2])), tf.variable(tf.zeros([4]))];
    const before = tf.memory().numTensors;
    await assertNoLeaks(() => {
      const adam = new Adam(params, { learningRate: 0.1 });
      const grads = params.map((p) => tf.onesLike(p));
      tf.dispose(adam.apply(grads));
      tf.dispose(grads);
      adam.dispose();
    }, 'Adam lifecycle');
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose(params);
  });
});
