import { assertNoLeaks, initBackend, maxAbsDiff, Random, readFloat32 } from '@diffuse/backend';
import { classifierConfig, NoiseConditionalClassifier } from '@diffuse/models';
import { PREDICTIONS } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type ClassifierLike,
  classifierGradient,
  classifierGuidance,
  GuidanceError,
  mixtureClassifier,
} from './index.js';
import { spy, threeClassMixture } from './test-fixtures.js';

const gm = threeClassMixture();
const B = 12;
let x: tf.Tensor;
let labels: tf.Tensor;
const LEVELS = [0.95, 0.7, 0.3].map((alpha) => ({ alpha, sigma: Math.sqrt(1 - alpha * alpha) }));

beforeAll(async () => {
  await initBackend('wasm');
  x = Random.seed(5).normal([B, 2]);
  labels = tf.tensor1d(
    Array.from({ length: B }, (_, i) => (i * 2) % 3),
    'int32',
  );
});

function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 1e-6;
  for (let i = 0; i < b.length; i++) m = Math.max(m, Math.abs(b[i]!));
  return maxAbsDiff(a, b) / m;
}

describe('the exact classifier of the mixture oracle', () => {
  it('its tfjs gradient is grad log p_t(x | y) - grad log p_t(x) (float64 reference)', async () => {
    const xs = await readFloat32(x);
    const ys = Array.from(labels.dataSync());
    for (const level of LEVELS) {
      const g = await readFloat32(
        classifierGradient(mixtureClassifier(gm), x, level, labels),
        true,
      );
      const cond = gm.scoreArray(xs, level.alpha, level.sigma, ys);
      const marg = gm.scoreArray(xs, level.alpha, level.sigma);
      const expected = cond.map((v, i) => v - marg[i]!);
      expect(relErr(g, expected)).toBeLessThan(2e-4);
    }
  });
});

describe('classifier guidance on the exact class-conditional mixture', () => {
  it('gamma = 1 with the exact classifier equals the conditional score', async () => {
    const xs = await readFloat32(x);
    const ys = Array.from(labels.dataSync());
    for (const level of LEVELS) {
      const guided = classifierGuidance(gm.denoiser('score'), mixtureClassifier(gm), { scale: 1 });
      const out = await readFloat32(guided.predict(x, level, { labels }), true);
      expect(relErr(out, gm.scoreArray(xs, level.alpha, level.sigma, ys))).toBeLessThan(2e-4);
    }
  });

  it.each(PREDICTIONS)(
    'gamma = 1 equals the conditional denoiser in its own prediction (%s)',
    async (p) => {
      for (const level of LEVELS) {
        const guided = classifierGuidance(gm.denoiser(p), mixtureClassifier(gm), { scale: 1 });
        const out = await readFloat32(guided.predict(x, level, { labels }), true);
        const expected = await readFloat32(gm.denoiser(p).predict(x, level, { labels }), true);
        expect(relErr(out, expected)).toBeLessThan(5e-4);
      }
    },
  );

  it('is score + gamma (grad log p(x|y) - grad log p(x)): eps_guided = eps - sigma gamma grad', async () => {
    const level = LEVELS[1]!;
    const xs = await readFloat32(x);
    const ys = Array.from(labels.dataSync());
    const marg = gm.scoreArray(xs, level.alpha, level.sigma);
    const cond = gm.scoreArray(xs, level.alpha, level.sigma, ys);
    for (const gamma of [0, 2, 5]) {
      const guided = classifierGuidance(gm.denoiser('epsilon'), mixtureClassifier(gm), {
        scale: gamma,
      });
      const out = await readFloat32(guided.predict(x, level, { labels }), true);
      const expected = marg.map((m, i) => -level.sigma * (m + gamma * (cond[i]! - m)));
      expect(relErr(out, expected)).toBeLessThan(3e-4);
    }
  });

  it('the wrapped denoiser sees the conditioning without labels (it models p_t(x)), unless asked', async () => {
    const level = LEVELS[0]!;
    const inner = spy(gm.denoiser('x0'));
    classifierGuidance(inner, mixtureClassifier(gm), { scale: 2 })
      .predict(x, level, { labels })
      .dispose();
    expect(inner.calls).toHaveLength(1);
    expect(inner.calls[0]!.labels).toBeUndefined();
    classifierGuidance(inner, mixtureClassifier(gm), { scale: 2, conditionDenoiser: true })
      .predict(x, level, { labels })
      .dispose();
    expect(inner.calls[1]!.labels).toEqual(Array.from(labels.dataSync()));
  });

  it('works with any differentiable classifier, e.g. a linear softmax in tfjs', async () => {
    // logits = x W (+ b): grad_x log softmax_y = W[:, y] - sum_c p_c W[:, c], in closed form.
    const W = [
      [1, -2, 0.5],
      [0.3, 0.7, -1],
    ];
    const Wt = tf.tensor2d(W);
    const classifier: ClassifierLike = {
      numClasses: 3,
      logits: (input, level) =>
        tf.tidy(() => tf.add(tf.matMul(input, Wt), tf.mul(level.sigma, tf.ones([1, 3])))),
    };
    const level = LEVELS[1]!;
    const g = await readFloat32(classifierGradient(classifier, x, level, labels), true);
    const xs = await readFloat32(x);
    const ys = labels.dataSync();
    const expected = new Float64Array(2 * B);
    for (let b = 0; b < B; b++) {
      const z = [0, 1, 2].map((c) => xs[2 * b]! * W[0]![c]! + xs[2 * b + 1]! * W[1]![c]!);
      const mx = Math.max(...z);
      const e = z.map((v) => Math.exp(v - mx));
      const sum = e.reduce((a, v) => a + v, 0);
      for (let i = 0; i < 2; i++) {
        expected[2 * b + i] =
          W[i]![ys[b]!]! - [0, 1, 2].reduce((a, c) => a + (e[c]! / sum) * W[i]![c]!, 0);
      }
    }
    expect(maxAbsDiff(g, expected)).toBeLessThan(1e-5);
    Wt.dispose();
  });

  it('takes its gradient through a tfjs network (@diffuse/models NoiseConditionalClassifier), as finite differences say', async () => {
    const net = new NoiseConditionalClassifier(
      classifierConfig({ inputShape: [2], numClasses: 3, width: 32, depth: 2 }),
      { seed: 4 },
    );
    const level = LEVELS[1]!;
    const g = await readFloat32(classifierGradient(net, x, level, labels), true);
    // Central differences of sum_b log softmax(logits(x))[b, y_b] in each coordinate.
    const logLik = (input: tf.Tensor) =>
      tf.tidy(
        () =>
          tf
            .sum(tf.mul(tf.oneHot(labels, 3), tf.logSoftmax(net.logits(input, level))))
            .dataSync()[0]!,
      );
    const xs = await readFloat32(x);
    const h = 1e-2;
    const fd = new Float64Array(xs.length);
    for (let i = 0; i < xs.length; i++) {
      const plus = Float32Array.from(xs);
      const minus = Float32Array.from(xs);
      plus[i]! += h;
      minus[i]! -= h;
      const tp = tf.tensor2d(plus, [B, 2]);
      const tm = tf.tensor2d(minus, [B, 2]);
      fd[i] = (logLik(tp) - logLik(tm)) / (2 * h);
      tf.dispose([tp, tm]);
    }
    expect(relErr(g, fd)).toBeLessThan(2e-2);
    // And it plugs into classifierGuidance directly: eps - sigma gamma grad.
    const guided = classifierGuidance(gm.denoiser('epsilon'), net, { scale: 2 });
    const out = await readFloat32(guided.predict(x, level, { labels }), true);
    const eps = await readFloat32(gm.denoiser('epsilon').predict(x, level), true);
    expect(
      maxAbsDiff(
        out,
        eps.map((e, i) => e - level.sigma * 2 * g[i]!),
      ),
    ).toBeLessThan(1e-5);
    net.dispose();
  });

  it('rejects bad input with typed errors', () => {
    const d = gm.denoiser('epsilon');
    const c = mixtureClassifier(gm);
    expect(() => classifierGuidance(d, c, { scale: Number.NaN })).toThrow(GuidanceError);
    expect(() => classifierGuidance(d, c, { scale: Number.NaN })).toThrow(
      /scale \(gamma\) must be a finite number/,
    );
    const guided = classifierGuidance(d, c, { scale: 1 });
    const level = LEVELS[0]!;
    expect(() => guided.predict(x, level)).toThrow(/needs cond\.labels/);
    const out = tf.fill([B], 3, 'int32');
    expect(() => guided.predict(x, level, { labels: out })).toThrow(
      /out of range: the model accepts labels 0\.\.2/,
    );
    out.dispose();
    const wrong: ClassifierLike = {
      numClasses: 3,
      logits: (input) => tf.zeros([input.shape[0]!, 2]),
    };
    expect(() => classifierGradient(wrong, x, level, labels)).toThrow(/logits of shape \[12, 3\]/);
  });

  it('leaks no tensors', async () => {
    const guided = classifierGuidance(gm.denoiser('v'), mixtureClassifier(gm), { scale: 3 });
    const out = await assertNoLeaks(
      () => guided.predict(x, LEVELS[1]!, { labels }),
      'classifier guidance',
    );
    expect(out.shape).toEqual([B, 2]);
    out.dispose();
  });
});
