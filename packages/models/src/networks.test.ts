import { assertNoLeaks, initBackend, Random } from '@diffuse/backend';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  classifierConfig,
  createModel,
  ImageClassifier,
  imageClassifierConfig,
  loadModel,
  type Mlp,
  type Model,
  ModelError,
  mlpConfig,
  type NoiseConditionalClassifier,
  saveModel,
  unetConfig,
} from './index.js';

beforeAll(async () => {
  await initBackend('wasm');
});

/** Every parameter's gradient of `loss` is finite and not identically zero. */
function expectGradientsFlow(model: Model, loss: () => tf.Scalar) {
  const { value, grads } = tf.variableGrads(loss, model.params);
  const names = model.namedParams().map(([n]) => n);
  model.params.forEach((p, i) => {
    const g = grads[p.name]!;
    expect(g, names[i]).toBeDefined();
    const v = g.dataSync();
    let nonzero = false;
    for (const x of v) {
      if (!Number.isFinite(x)) throw new Error(`gradient of ${names[i]} is not finite`);
      if (x !== 0) nonzero = true;
    }
    expect(nonzero, `gradient of ${names[i]} is zero`).toBe(true);
  });
  value.dispose();
  tf.dispose(Object.values(grads));
}

async function expectRoundTrip(model: Model, run: (m: Model) => tf.Tensor) {
  const saved = await saveModel(model);
  const copy = loadModel(saved);
  // also from the bytes alone (config read from the safetensors metadata)
  const copy2 = loadModel({ weights: saved.weights });
  const a = run(model);
  const b = run(copy);
  const c = run(copy2);
  expect(Array.from(b.dataSync())).toEqual(Array.from(a.dataSync()));
  expect(Array.from(c.dataSync())).toEqual(Array.from(a.dataSync()));
  expect((await saveModel(copy)).weights).toEqual(saved.weights);
  expect(copy.config).toEqual(model.config);
  tf.dispose([a, b, c]);
  copy.dispose();
  copy2.dispose();
}

describe('Mlp', () => {
  const config = mlpConfig({ dim: 3, width: 16, depth: 2, embedDim: 8, numClasses: 4 });

  it('predicts [batch, d] for number and per-example levels, with and without labels, without leaks', async () => {
    const net = createModel(config, { seed: 1 });
    expect(net.numParams).toBeGreaterThan(0);
    const x = Random.seed(0).normal([5, 3]);
    const labels = tf.tensor1d([0, 1, 2, 3, 4], 'int32'); // 4 = the null class
    const alpha = tf.tensor2d([0.9, 0.8, 0.7, 0.6, 0.5], [5, 1]);
    const sigma = tf.sqrt(tf.sub(1, tf.square(alpha)));
    if (!('predict' in net)) throw new Error('not a denoiser');
    expect(net.prediction).toBe('epsilon');
    expect(net.numClasses).toBe(4);
    const nullLabels = tf.fill([5], 4, 'int32');
    const outs = await assertNoLeaks(
      () => [
        net.predict(x, { alpha: 0.8, sigma: 0.6 }),
        net.predict(x, { alpha, sigma }, { labels }),
        net.predict(x, { alpha: 0.8, sigma: 0.6 }, { labels: nullLabels }),
      ],
      'mlp.predict',
    );
    for (const o of outs) expect(o.shape).toEqual([5, 3]);
    // no labels = the null class
    expect(Array.from(outs[2]!.dataSync())).toEqual(Array.from(outs[0]!.dataSync()));
    // conditioning changes the output
    const y0 = net.predict(x, { alpha: 0.8, sigma: 0.6 }, { labels: tf.zeros([5], 'int32') });
    expect(Array.from(y0.dataSync())).not.toEqual(Array.from(outs[0]!.dataSync()));
    tf.dispose([...outs, y0, x, labels, nullLabels, alpha, sigma]);
    net.dispose();
  });

  it('gradients reach every parameter, finite and non-zero', () => {
    const net = createModel(config, { seed: 2 });
    if (!('predict' in net)) throw new Error('not a denoiser');
    const x = Random.seed(1).normal([8, 3]);
    const target = Random.seed(2).normal([8, 3]);
    const labels = tf.tensor1d([0, 1, 2, 3, 4, 0, 1, 2], 'int32');
    const alpha = tf.tensor2d([0.99, 0.9, 0.8, 0.7, 0.5, 0.3, 0.2, 0.1], [8, 1]);
    const sigma = tf.sqrt(tf.sub(1, tf.square(alpha)));
    expectGradientsFlow(
      net,
      () =>
        tf.mean(
          tf.square(tf.sub(net.predict(x, { alpha, sigma }, { labels }), target)),
        ) as tf.Scalar,
    );
    tf.dispose([x, target, labels, alpha, sigma]);
    net.dispose();
  });

  it('save/load round trip gives identical outputs and identical bytes; seeds make weights', async () => {
    const net = createModel(config, { seed: 3 });
    const x = Random.seed(3).normal([4, 3]);
    await expectRoundTrip(net, (m) => (m as Mlp).predict(x, { alpha: 0.6, sigma: 0.8 }));
    const same = createModel(config, { seed: 3 });
    const other = createModel(config, { seed: 4 });
    expect((await saveModel(same)).weights).toEqual((await saveModel(net)).weights);
    expect((await saveModel(other)).weights).not.toEqual((await saveModel(net)).weights);
    tf.dispose(x);
    for (const m of [net, same, other]) m.dispose();
  });

  it('EDM preconditioning declares x0 and maps sigma -> 0 to the identity (c_skip -> 1, c_out -> 0)', () => {
    const net = createModel(
      mlpConfig({
        dim: 2,
        width: 8,
        depth: 1,
        embedDim: 8,
        prediction: 'x0',
        preconditioning: { type: 'edm', sigmaData: 0.5 },
      }),
    );
    if (!('predict' in net)) throw new Error('not a denoiser');
    expect(net.prediction).toBe('x0');
    const x = tf.tensor2d([[0.3, -0.2]]);
    const s = 1e-4;
    const alpha = 1 / Math.sqrt(1 + s * s);
    const out = net.predict(x, { alpha, sigma: s * alpha }).dataSync();
    expect(Math.abs(out[0]! / alpha - 0.3 / alpha)).toBeLessThan(1e-3);
    expect(() =>
      createModel(mlpConfig({ dim: 2, preconditioning: { type: 'edm', sigmaData: 0.5 } })),
    ).toThrow(/predicts x0/);
    tf.dispose(x);
    net.dispose();
  });
});

describe('UNet', () => {
  const config = unetConfig({
    imageShape: [8, 8, 1],
    channels: 8,
    channelMults: [1, 2],
    attentionResolutions: [4],
    groups: 4,
    embedDim: 16,
    numClasses: 3,
  });

  it('keeps the image shape, gets gradients in every parameter (wasm conv filter gradient), no leaks', async () => {
    const net = createModel(config, { seed: 0 });
    if (!('predict' in net)) throw new Error('not a denoiser');
    const x = Random.seed(5).normal([2, 8, 8, 1]);
    const labels = tf.tensor1d([1, 3], 'int32');
    const level = {
      alpha: tf.tensor4d([0.9, 0.4], [2, 1, 1, 1]),
      sigma: tf.tensor4d([0.436, 0.917], [2, 1, 1, 1]),
    };
    const y = await assertNoLeaks(() => net.predict(x, level, { labels }), 'unet.predict');
    expect(y.shape).toEqual([2, 8, 8, 1]);
    const target = Random.seed(6).normal([2, 8, 8, 1]);
    expectGradientsFlow(
      net,
      () => tf.mean(tf.square(tf.sub(net.predict(x, level, { labels }), target))) as tf.Scalar,
    );
    await expectRoundTrip(net, (m) => (m as typeof net).predict(x, level, { labels }));
    tf.dispose([x, labels, level.alpha, level.sigma, y, target]);
    net.dispose();
  });

  it('default MNIST config: 28x28x1, two levels of 32/64 channels, attention at 14x14', () => {
    const net = createModel(unetConfig({ numClasses: 10 }));
    if (!('predict' in net)) throw new Error('not a denoiser');
    const x = tf.zeros([1, 28, 28, 1]);
    const y = net.predict(x, { alpha: 0.7, sigma: 0.71 }, { labels: tf.tensor1d([3], 'int32') });
    expect(y.shape).toEqual([1, 28, 28, 1]);
    expect(net.numParams).toBeLessThan(1_000_000);
    tf.dispose([x, y]);
    net.dispose();
  });

  it('rejects configs that cannot work, with a ModelError naming the problem', () => {
    expect(() => createModel(unetConfig({ imageShape: [7, 7, 1] }))).toThrow(/divisible/);
    expect(() => createModel(unetConfig({ groups: 5 }))).toThrow(/groups/);
    expect(() => createModel({ kind: 'gan' } as never)).toThrow(ModelError);
    const net = createModel(
      unetConfig({
        imageShape: [4, 4, 1],
        channels: 4,
        groups: 2,
        channelMults: [1],
        attentionResolutions: [],
      }),
    );
    if (!('predict' in net)) throw new Error('not a denoiser');
    const bad = tf.zeros([1, 4, 4, 3]);
    expect(() => net.predict(bad, { alpha: 1, sigma: 0.1 })).toThrow(
      /expects x of shape \[batch, 4, 4, 1\]/,
    );
    expect(() =>
      net.predict(
        tf.zeros([1, 4, 4, 1]),
        { alpha: 1, sigma: 0.1 },
        { labels: tf.zeros([1], 'int32') },
      ),
    ).toThrow(/unconditional/);
    tf.dispose(bad);
    net.dispose();
  });
});

describe('NoiseConditionalClassifier', () => {
  it.each([
    [
      'vector',
      classifierConfig({ inputShape: [2], numClasses: 3, width: 16, depth: 2, embedDim: 8 }),
      [6, 2],
    ],
    [
      'image',
      classifierConfig({
        inputShape: [8, 8, 1],
        numClasses: 4,
        channels: 8,
        groups: 4,
        embedDim: 8,
      }),
      [3, 8, 8, 1],
    ],
  ] as const)(
    '%s: logits [batch, C], log-posterior normalised, differentiable in x and in every parameter',
    async (_, config, shape) => {
      const clf = createModel(config, { seed: 1 }) as NoiseConditionalClassifier;
      const x = Random.seed(9).normal([...shape]);
      const level = { alpha: 0.8, sigma: 0.6 };
      const logits = await assertNoLeaks(() => clf.logits(x, level), 'classifier');
      expect(logits.shape).toEqual([shape[0], config.numClasses]);
      const p = tf.sum(tf.exp(clf.classLogPosterior(x, level)), 1).dataSync();
      for (const v of p) expect(v).toBeCloseTo(1, 5);
      // (tf.gather's gradient needs UnsortedSegmentSum, missing on wasm: select class 0 with a mask)
      const first = tf.oneHot(tf.zeros([shape[0]], 'int32'), config.numClasses);
      const gx = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(clf.classLogPosterior(v, level), first)))(
        x,
      );
      expect(gx.shape).toEqual(x.shape);
      const gv = gx.dataSync();
      expect(gv.every(Number.isFinite) && gv.some((v) => v !== 0)).toBe(true);
      const labels = tf.oneHot(
        tf.tensor1d(
          Array.from({ length: shape[0] }, (_, i) => i % config.numClasses),
          'int32',
        ),
        config.numClasses,
      );
      expectGradientsFlow(
        clf,
        () =>
          tf.neg(tf.mean(tf.sum(tf.mul(labels, clf.classLogPosterior(x, level)), 1))) as tf.Scalar,
      );
      await expectRoundTrip(clf, (m) => (m as NoiseConditionalClassifier).logits(x, level));
      tf.dispose([x, logits, gx, labels, first]);
      clf.dispose();
    },
  );
});

/**
 * Float64 reference of a 3x3 'same' conv (TensorFlow's padding: total pad max((out - 1) s + 3 - in, 0),
 * the smaller half before), NHWC, one image.
 */
function refConv(
  x: Float64Array,
  [h, w, c]: [number, number, number],
  k: Float32Array,
  b: Float32Array,
  out: number,
  s: number,
): { y: Float64Array; shape: [number, number, number] } {
  const oh = Math.ceil(h / s);
  const ow = Math.ceil(w / s);
  const top = Math.floor(Math.max((oh - 1) * s + 3 - h, 0) / 2);
  const left = Math.floor(Math.max((ow - 1) * s + 3 - w, 0) / 2);
  const y = new Float64Array(oh * ow * out);
  for (let i = 0; i < oh; i++)
    for (let j = 0; j < ow; j++)
      for (let o = 0; o < out; o++) {
        let acc = b[o]!;
        for (let di = 0; di < 3; di++)
          for (let dj = 0; dj < 3; dj++) {
            const r = i * s + di - top;
            const q = j * s + dj - left;
            if (r < 0 || r >= h || q < 0 || q >= w) continue;
            for (let ci = 0; ci < c; ci++)
              acc += x[(r * w + q) * c + ci]! * k[((di * 3 + dj) * c + ci) * out + o]!;
          }
        y[(i * ow + j) * out + o] = acc;
      }
  return { y, shape: [oh, ow, out] };
}

describe('ImageClassifier', () => {
  it('features and logits equal a float64 reference of the convnet (stride 1, then 2; odd and even sizes)', async () => {
    for (const inputShape of [
      [5, 6, 2],
      [8, 8, 1],
    ] as [number, number, number][]) {
      const config = imageClassifierConfig({
        inputShape,
        numClasses: 3,
        channels: [4, 3, 2],
        hidden: 5,
      });
      const clf = createModel(config, { seed: 2 }) as ImageClassifier;
      const [h, w, c] = inputShape as [number, number, number];
      // parameters: 3x3 convs, then hidden x (ceil(ceil(h/2)/2) ceil(ceil(w/2)/2) 2), then the head
      const flat = Math.ceil(Math.ceil(h / 2) / 2) * Math.ceil(Math.ceil(w / 2) / 2) * 2;
      expect(clf.numParams).toBe(
        9 * c * 4 + 4 + 9 * 4 * 3 + 3 + 9 * 3 * 2 + 2 + flat * 5 + 5 + 5 * 3 + 3,
      );
      const x = Random.seed(4).normal([2, h, w, c]);
      const feats = await assertNoLeaks(() => clf.features(x), 'image-classifier features');
      const logits = clf.logits(x);
      expect(feats.shape).toEqual([2, 5]);
      expect(logits.shape).toEqual([2, 3]);
      const p = Object.fromEntries(
        clf.namedParams().map(([n, v]) => [n, v.dataSync() as Float32Array]),
      );
      const xs = x.dataSync();
      const fv = feats.dataSync();
      const lv = logits.dataSync();
      for (let n = 0; n < 2; n++) {
        let a = Float64Array.from(xs.subarray(n * h * w * c, (n + 1) * h * w * c));
        let shape: [number, number, number] = [h, w, c];
        [4, 3, 2].forEach((out, i) => {
          const r = refConv(
            a,
            shape,
            p[`conv.${i}.weight`]!,
            p[`conv.${i}.bias`]!,
            out,
            i === 0 ? 1 : 2,
          );
          a = r.y.map((v) => Math.max(v, 0));
          shape = r.shape;
        });
        const hid = new Float64Array(5);
        for (let o = 0; o < 5; o++) {
          let acc = p['fc.bias']![o]!;
          for (let k = 0; k < a.length; k++) acc += a[k]! * p['fc.weight']![k * 5 + o]!;
          hid[o] = Math.max(acc, 0);
          expect(fv[n * 5 + o]).toBeCloseTo(hid[o]!, 4);
        }
        for (let o = 0; o < 3; o++) {
          let acc = p['head.bias']![o]!;
          for (let k = 0; k < 5; k++) acc += hid[k]! * p['head.weight']![k * 3 + o]!;
          expect(lv[n * 3 + o]).toBeCloseTo(acc, 4);
        }
      }
      const again = clf.logitsOfFeatures(feats);
      expect(Array.from(again.dataSync())).toEqual(Array.from(lv));
      tf.dispose([x, feats, logits, again]);
      clf.dispose();
    }
  });

  it('trains (gradients reach every parameter), saves and loads, and refuses bad configs and inputs', async () => {
    const config = imageClassifierConfig({
      inputShape: [8, 8, 1],
      numClasses: 4,
      channels: [4, 4],
      hidden: 8,
    });
    const clf = createModel(config, { seed: 1 }) as ImageClassifier;
    expect(clf).toBeInstanceOf(ImageClassifier);
    const x = Random.seed(3).normal([6, 8, 8, 1]);
    const labels = tf.oneHot(tf.tensor1d([0, 1, 2, 3, 0, 1], 'int32'), 4);
    expectGradientsFlow(
      clf,
      () => tf.losses.softmaxCrossEntropy(labels, clf.logits(x)) as tf.Scalar,
    );
    await expectRoundTrip(clf, (m) => (m as ImageClassifier).logits(x));
    expect(() => clf.logits(tf.zeros([1, 8, 8, 2]))).toThrow(
      /expects x of shape \[batch, 8, 8, 1\]/,
    );
    expect(() => createModel({ ...config, channels: [] })).toThrow(
      /image-classifier.channels must be an array of 1 to 16 integers/,
    );
    expect(() => createModel({ ...config, hidden: 0 })).toThrow(
      /image-classifier.hidden must be a positive integer/,
    );
    expect(() => createModel({ ...config, inputShape: [8, 8] as never })).toThrow(ModelError);
    expect(() => createModel({ ...config, channels: [4, 2.5] })).toThrow(
      /image-classifier.channels\[1\] must be a positive integer/,
    );
    tf.dispose([x, labels]);
    clf.dispose();
  });
});

describe('loadModel rejects weights that do not fit the config', () => {
  it('missing, extra and mis-shaped parameters', async () => {
    const net = createModel(mlpConfig({ dim: 2, width: 8, depth: 1, embedDim: 8 }));
    const saved = await saveModel(net);
    expect(() =>
      loadModel({
        config: mlpConfig({ dim: 2, width: 8, depth: 2, embedDim: 8 }),
        weights: saved.weights,
      }),
    ).toThrow(/lack parameter 'blocks.1/);
    expect(() =>
      loadModel({
        config: mlpConfig({ dim: 2, width: 8, depth: 0, embedDim: 8 }),
        weights: saved.weights,
      }),
    ).toThrow(/no parameter for/);
    expect(() =>
      loadModel({
        config: mlpConfig({ dim: 2, width: 16, depth: 1, embedDim: 8 }),
        weights: saved.weights,
      }),
    ).toThrow(/has shape/);
    net.dispose();
  });
});
