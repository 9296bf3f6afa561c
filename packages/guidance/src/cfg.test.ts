import {
  assertNoLeaks,
  DiffuseError,
  initBackend,
  maxAbsDiff,
  Random,
  readFloat32,
} from '@diffuse/backend';
import { convertPrediction, PREDICTIONS, type Prediction } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  classifierFreeGuidance,
  GuidanceError,
  guidanceScaleFromWeight,
  rescaleGuidance,
  weightFromGuidanceScale,
} from './index.js';
import { spy, threeClassMixture } from './test-fixtures.js';

const gm = threeClassMixture();
const B = 12;
let x: tf.Tensor;
let labels: tf.Tensor;
const LEVELS = [
  { alpha: 0.95, sigma: Math.sqrt(1 - 0.95 ** 2) },
  { alpha: 0.7, sigma: Math.sqrt(1 - 0.49) },
  { alpha: 0.3, sigma: Math.sqrt(1 - 0.09) },
];

beforeAll(async () => {
  await initBackend('wasm');
  x = Random.seed(3).normal([B, 2]);
  labels = tf.tensor1d(
    Array.from({ length: B }, (_, i) => i % 3),
    'int32',
  );
});

/** The oracle's conditional and unconditional predictions, computed independently of the wrapper. */
async function branches(p: Prediction, level: { alpha: number; sigma: number }) {
  const d = gm.denoiser(p);
  const c = await readFloat32(d.predict(x, level, { labels }), true);
  const u = await readFloat32(d.predict(x, level), true);
  return { c, u };
}

describe('classifier-free guidance on the exact class-conditional mixture', () => {
  it.each(PREDICTIONS)('scale 1 equals the conditional prediction (%s)', async (p) => {
    for (const level of LEVELS) {
      const guided = classifierFreeGuidance(gm.denoiser(p), { guidanceScale: 1 });
      const out = await readFloat32(guided.predict(x, level, { labels }), true);
      const { c } = await branches(p, level);
      // Evaluated as c + (s - 1)(c - u): exactly c at s = 1.
      expect(maxAbsDiff(out, c)).toBe(0);
      // The paper's convention at w = 0 is the same thing.
      const w0 = classifierFreeGuidance(gm.denoiser(p), { w: 0 });
      expect(maxAbsDiff(await readFloat32(w0.predict(x, level, { labels }), true), out)).toBe(0);
    }
  });

  it.each(PREDICTIONS)('is affine in w and matches (1 + w) c - w u (%s)', async (p) => {
    const level = LEVELS[1]!;
    const { c, u } = await branches(p, level);
    const ws = [-0.5, 1.5, 6];
    const outs: Float32Array[] = [];
    for (const w of ws) {
      const out = await readFloat32(
        classifierFreeGuidance(gm.denoiser(p), { w }).predict(x, level, { labels }),
        true,
      );
      outs.push(out);
      const expected = c.map((ci, i) => (1 + w) * ci - w * u[i]!);
      const scale = Math.max(...expected.map(Math.abs), 1);
      expect(maxAbsDiff(out, expected)).toBeLessThan(2e-6 * scale * (1 + Math.abs(w)));
      // diffusers' guidance_scale s = 1 + w gives the same prediction.
      const viaScale = classifierFreeGuidance(gm.denoiser(p), {
        guidanceScale: guidanceScaleFromWeight(w),
      });
      expect(
        maxAbsDiff(await readFloat32(viaScale.predict(x, level, { labels }), true), out),
      ).toBeLessThan(1e-6 * scale);
    }
    // Three points on one line: out(w3) - out(w1) = (w3 - w1) / (w2 - w1) (out(w2) - out(w1)).
    const [o1, o2, o3] = outs as [Float32Array, Float32Array, Float32Array];
    const t = (ws[2]! - ws[0]!) / (ws[1]! - ws[0]!);
    const line = o1.map((v, i) => v + t * (o2[i]! - v));
    expect(maxAbsDiff(o3, line)).toBeLessThan(1e-5 * Math.max(...o3.map(Math.abs), 1));
  });

  it('the combination is the same in every prediction space (weights sum to 1)', async () => {
    const level = LEVELS[1]!;
    const eps = await readFloat32(
      classifierFreeGuidance(gm.denoiser('epsilon'), { guidanceScale: 3 }).predict(x, level, {
        labels,
      }),
      true,
    );
    for (const p of PREDICTIONS) {
      const guided = classifierFreeGuidance(gm.denoiser(p), { guidanceScale: 3 });
      const asEps = tf.tidy(() =>
        convertPrediction(guided.predict(x, level, { labels }), p, 'epsilon', x, level),
      );
      expect(maxAbsDiff(await readFloat32(asEps, true), eps)).toBeLessThan(2e-5);
    }
  });

  it('evaluates both branches in ONE batched forward pass', async () => {
    const inner = spy(gm.denoiser('epsilon'));
    const guided = classifierFreeGuidance(inner, { guidanceScale: 4 });
    const level = LEVELS[0]!;
    const out = guided.predict(x, level, { labels });
    expect(out.shape).toEqual([B, 2]);
    out.dispose();
    expect(inner.calls).toHaveLength(1);
    expect(inner.calls[0]!.batch).toBe(2 * B);
    // First half: the labels; second half: the null class (numClasses = 3).
    expect(inner.calls[0]!.labels).toEqual([
      ...Array.from(labels.dataSync()),
      ...new Array(B).fill(3),
    ]);
  });

  it('batchBranches: false makes two passes of the original batch with the same result', async () => {
    const inner = spy(gm.denoiser('epsilon'));
    const level = LEVELS[1]!;
    const two = await readFloat32(
      classifierFreeGuidance(inner, { guidanceScale: 4, batchBranches: false }).predict(x, level, {
        labels,
      }),
      true,
    );
    expect(inner.calls.map((c) => c.batch)).toEqual([B, B]);
    expect(inner.calls[1]!.labels).toEqual(new Array(B).fill(3));
    const one = await readFloat32(
      classifierFreeGuidance(gm.denoiser('epsilon'), { guidanceScale: 4 }).predict(x, level, {
        labels,
      }),
      true,
    );
    expect(maxAbsDiff(two, one)).toBeLessThan(1e-5);
  });

  it('duplicates per-example (tensor) noise levels along with the batch', async () => {
    const inner = spy(gm.denoiser('x0'));
    const alphas = Array.from({ length: B }, (_, i) => 0.2 + (0.7 * i) / B);
    const alpha = tf.tensor2d(alphas, [B, 1]);
    const sigma = tf.tensor2d(
      alphas.map((a) => Math.sqrt(1 - a * a)),
      [B, 1],
    );
    const out = await readFloat32(
      classifierFreeGuidance(inner, { guidanceScale: 2 }).predict(x, { alpha, sigma }, { labels }),
      true,
    );
    expect(inner.calls).toHaveLength(1);
    expect((inner.calls[0]!.level.alpha as tf.Tensor).shape).toEqual([2 * B, 1]);
    // Row by row against the numeric-level computation.
    const xs = await readFloat32(x);
    for (let i = 0; i < B; i++) {
      const level = { alpha: alphas[i]!, sigma: Math.sqrt(1 - alphas[i]! ** 2) };
      const xi = tf.tensor2d(xs.slice(2 * i, 2 * i + 2), [1, 2]);
      const li = tf.tensor1d([i % 3], 'int32');
      const row = await readFloat32(
        classifierFreeGuidance(gm.denoiser('x0'), { guidanceScale: 2 }).predict(xi, level, {
          labels: li,
        }),
        true,
      );
      expect(maxAbsDiff(out.slice(2 * i, 2 * i + 2), row)).toBeLessThan(1e-5);
      xi.dispose();
      li.dispose();
    }
    alpha.dispose();
    sigma.dispose();
  });

  it('a separate unconditional denoiser costs a second pass and gives the same result', async () => {
    const level = LEVELS[1]!;
    const cond = spy(gm.denoiser('v'));
    const uncond = spy(gm.denoiser('v'));
    const two = classifierFreeGuidance(cond, { guidanceScale: 3, unconditional: uncond });
    const a = await readFloat32(two.predict(x, level, { labels }), true);
    expect(cond.calls).toHaveLength(1);
    expect(uncond.calls).toHaveLength(1);
    expect(uncond.calls[0]!.labels).toBeUndefined();
    const one = classifierFreeGuidance(gm.denoiser('v'), { guidanceScale: 3 });
    expect(maxAbsDiff(a, await readFloat32(one.predict(x, level, { labels }), true))).toBeLessThan(
      2e-6,
    );
  });

  it('negative conditioning replaces the unconditional branch by the negative label', async () => {
    const level = LEVELS[1]!;
    const d = gm.denoiser('epsilon');
    const neg = 2;
    const c = await readFloat32(d.predict(x, level, { labels }), true);
    const negLabels = tf.fill([B], neg, 'int32');
    const n = await readFloat32(d.predict(x, level, { labels: negLabels }), true);
    const s = 2.5;
    const inner = spy(d);
    const out = await readFloat32(
      classifierFreeGuidance(inner, { guidanceScale: s, negativeLabels: neg }).predict(x, level, {
        labels,
      }),
      true,
    );
    expect(inner.calls[0]!.labels!.slice(B)).toEqual(new Array(B).fill(neg));
    expect(
      maxAbsDiff(
        out,
        c.map((ci, i) => n[i]! + s * (ci - n[i]!)),
      ),
    ).toBeLessThan(1e-5);
    // Per-example negative labels as a tensor give the same for a constant tensor.
    const out2 = await readFloat32(
      classifierFreeGuidance(d, { guidanceScale: s, negativeLabels: negLabels }).predict(x, level, {
        labels,
      }),
      true,
    );
    expect(maxAbsDiff(out2, out)).toBe(0);
    negLabels.dispose();
  });
});

describe('guidance rescale (Lin et al. 2023, sec. 3.4)', () => {
  /** diffusers' rescale_noise_cfg in float64 (torch.std is unbiased; the ratio does not depend on it). */
  function rescaleRef(g: Float32Array, c: Float32Array, phi: number, batch: number): Float64Array {
    const n = g.length / batch;
    const out = new Float64Array(g.length);
    const std = (a: Float32Array, o: number) => {
      let m = 0;
      for (let i = 0; i < n; i++) m += a[o + i]!;
      m /= n;
      let v = 0;
      for (let i = 0; i < n; i++) v += (a[o + i]! - m) ** 2;
      return Math.sqrt(v / (n - 1));
    };
    for (let b = 0; b < batch; b++) {
      const f = std(c, b * n) / std(g, b * n);
      for (let i = 0; i < n; i++) {
        const gi = g[b * n + i]!;
        out[b * n + i] = phi * gi * f + (1 - phi) * gi;
      }
    }
    return out;
  }

  it('matches diffusers rescale_noise_cfg, and phi = 1 restores the conditional std', async () => {
    const rng = Random.seed(11);
    const g = rng.normal([4, 3, 5, 2]);
    const c = tf.tidy(() => tf.mul(rng.normal([4, 3, 5, 2]), 0.4));
    const gs = await readFloat32(g);
    const cs = await readFloat32(c);
    for (const phi of [0, 0.3, 0.7, 1]) {
      const out = await readFloat32(rescaleGuidance(g, c, phi), true);
      expect(maxAbsDiff(out, rescaleRef(gs, cs, phi, 4))).toBeLessThan(1e-5);
    }
    g.dispose();
    c.dispose();
  });

  it('is applied to the guided prediction in the denoiser space, or in rescaleSpace', async () => {
    const level = LEVELS[1]!;
    const phi = 0.7;
    const { c, u } = await branches('epsilon', level);
    const g = Float32Array.from(c, (ci, i) => u[i]! + 5 * (ci - u[i]!));
    const out = await readFloat32(
      classifierFreeGuidance(gm.denoiser('epsilon'), { guidanceScale: 5, rescale: phi }).predict(
        x,
        level,
        { labels },
      ),
      true,
    );
    expect(maxAbsDiff(out, rescaleRef(g, c, phi, B))).toBeLessThan(1e-5);
    // Rescaling in x0 space: the wrapper's output converted to x0 must be the x0-space rescale.
    const x0 = await branches('x0', level);
    const gx0 = Float32Array.from(x0.c, (ci, i) => x0.u[i]! + 5 * (ci - x0.u[i]!));
    const inX0 = classifierFreeGuidance(gm.denoiser('epsilon'), {
      guidanceScale: 5,
      rescale: phi,
      rescaleSpace: 'x0',
    });
    const asX0 = tf.tidy(() =>
      convertPrediction(inX0.predict(x, level, { labels }), 'epsilon', 'x0', x, level),
    );
    expect(maxAbsDiff(await readFloat32(asX0, true), rescaleRef(gx0, x0.c, phi, B))).toBeLessThan(
      2e-5,
    );
  });
});

describe('guidance interval (Kynkäänniemi et al. 2024)', () => {
  it('guides only for sigma/alpha in (lo, hi], and skips the unconditional pass outside', async () => {
    const interval = { sigmaLo: 0.5, sigmaHi: 2 };
    for (const level of LEVELS) {
      const s = level.sigma / level.alpha; // 0.33, 1.02, 3.18
      const inner = spy(gm.denoiser('epsilon'));
      const out = await readFloat32(
        classifierFreeGuidance(inner, { guidanceScale: 3, interval }).predict(x, level, { labels }),
        true,
      );
      const { c, u } = await branches('epsilon', level);
      const inside = s > 0.5 && s <= 2;
      expect(inner.calls).toHaveLength(1);
      expect(inner.calls[0]!.batch).toBe(inside ? 2 * B : B);
      const expected = inside ? c.map((ci, i) => u[i]! + 3 * (ci - u[i]!)) : c;
      expect(maxAbsDiff(out, expected)).toBeLessThan(2e-5);
    }
  });

  it('per-example tensor levels: rows inside are guided, rows outside conditional', async () => {
    const alphas = LEVELS.flatMap((l) => [l.alpha, l.alpha, l.alpha, l.alpha]);
    const alpha = tf.tensor2d(alphas, [B, 1]);
    const sigma = tf.tensor2d(
      alphas.map((a) => Math.sqrt(1 - a * a)),
      [B, 1],
    );
    const guided = classifierFreeGuidance(gm.denoiser('x0'), {
      guidanceScale: 3,
      interval: { sigmaLo: 0.5, sigmaHi: 2 },
    });
    const out = await assertNoLeaks(
      () => guided.predict(x, { alpha, sigma }, { labels }),
      'cfg interval',
    );
    const o = await readFloat32(out, true);
    const xs = await readFloat32(x);
    const ls = labels.dataSync();
    for (let i = 0; i < B; i++) {
      const level = LEVELS[Math.floor(i / 4)]!;
      const xi = tf.tensor2d(xs.slice(2 * i, 2 * i + 2), [1, 2]);
      const li = tf.tensor1d([ls[i]!], 'int32');
      const row = await readFloat32(guided.predict(xi, level, { labels: li }), true);
      expect(maxAbsDiff(o.slice(2 * i, 2 * i + 2), row)).toBeLessThan(1e-5);
      tf.dispose([xi, li]);
    }
    tf.dispose([alpha, sigma]);
  });
});

describe('classifier-free guidance: errors and memory', () => {
  const d = gm.denoiser('epsilon');
  const level = LEVELS[1]!;

  it('rejects a scale that is NaN or infinite, and ambiguous conventions', () => {
    expect(() => classifierFreeGuidance(d, { guidanceScale: Number.NaN })).toThrow(GuidanceError);
    expect(() => classifierFreeGuidance(d, { w: Number.POSITIVE_INFINITY })).toThrow(
      /w must be a finite number/,
    );
    expect(() => classifierFreeGuidance(d, {})).toThrow(/exactly one of guidanceScale/);
    expect(() => classifierFreeGuidance(d, { guidanceScale: 2, w: 1 })).toThrow(
      /exactly one of guidanceScale/,
    );
    expect(() => weightFromGuidanceScale(Number.NaN)).toThrow(GuidanceError);
    const err = (() => {
      try {
        classifierFreeGuidance(d, { guidanceScale: Number.NaN });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(DiffuseError);
    expect((err as DiffuseError).code).toBe('INVALID_GUIDANCE');
  });

  it('rejects bad rescale, interval, negative labels and null labels', () => {
    expect(() => classifierFreeGuidance(d, { guidanceScale: 2, rescale: 1.5 })).toThrow(
      /rescale \(phi\) must lie in \[0, 1\]/,
    );
    expect(() => classifierFreeGuidance(d, { guidanceScale: 2, rescale: Number.NaN })).toThrow(
      GuidanceError,
    );
    expect(() =>
      classifierFreeGuidance(d, { guidanceScale: 2, interval: { sigmaLo: 2, sigmaHi: 1 } }),
    ).toThrow(/sigmaLo < sigmaHi/);
    expect(() => classifierFreeGuidance(d, { guidanceScale: 2, negativeLabels: 3 })).toThrow(
      /out of range.*0\.\.2/,
    );
    expect(() => classifierFreeGuidance(d, { guidanceScale: 2, negativeLabels: 0.5 })).toThrow(
      /integer/,
    );
    const noClasses = { prediction: 'epsilon' as const, predict: d.predict };
    expect(() => classifierFreeGuidance(noClasses, { guidanceScale: 2 })).toThrow(/no null label/);
    expect(() =>
      classifierFreeGuidance(d, { guidanceScale: 2, unconditional: gm.denoiser('x0') }),
    ).toThrow(/predicts 'x0' but the conditional one 'epsilon'/);
  });

  it('rejects missing, out-of-range, mis-shaped and non-integer labels at predict time', async () => {
    const guided = classifierFreeGuidance(d, { guidanceScale: 2 });
    expect(() => guided.predict(x, level)).toThrow(/needs cond\.labels/);
    const bad = tf.tensor1d([...new Array(B - 1).fill(0), 3], 'int32');
    expect(() => guided.predict(x, level, { labels: bad })).toThrow(
      /cond\.labels\[11\] = 3 is out of range/,
    );
    const negative = tf.tensor1d([...new Array(B - 1).fill(0), -1], 'int32');
    expect(() => guided.predict(x, level, { labels: negative })).toThrow(GuidanceError);
    const short = tf.tensor1d([0, 1], 'int32');
    expect(() => guided.predict(x, level, { labels: short })).toThrow(/shape \[12\]/);
    const floats = tf.zeros([B]);
    expect(() => guided.predict(x, level, { labels: floats })).toThrow(/int32/);
    const negTensor = tf.fill([B], 7, 'int32');
    expect(() =>
      classifierFreeGuidance(d, { guidanceScale: 2, negativeLabels: negTensor }).predict(x, level, {
        labels,
      }),
    ).toThrow(/negativeLabels\[0\] = 7/);
    tf.dispose([bad, negative, short, floats, negTensor]);
  });

  it('leaks no tensors, with every option on', async () => {
    const guided = classifierFreeGuidance(d, {
      guidanceScale: 4,
      rescale: 0.7,
      rescaleSpace: 'x0',
      negativeLabels: 1,
      interval: { sigmaLo: 0.1, sigmaHi: 10 },
    });
    const out = await assertNoLeaks(() => guided.predict(x, level, { labels }), 'cfg');
    expect(out.shape).toEqual([B, 2]);
    out.dispose();
    const plain = classifierFreeGuidance(d, { w: 2 });
    (await assertNoLeaks(() => plain.predict(x, level, { labels }), 'cfg plain')).dispose();
  });
});
