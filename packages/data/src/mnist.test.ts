// Loads the built package: see vitest.config.ts.

import { initBackend } from '@diffuse/backend';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type ArrayDataset,
  DataError,
  loadMnist,
  MNIST_SPLIT,
  mnistSplitIndices,
  ShuffledBatches,
  splitMnist,
  subset,
} from '../dist/index.js';

let mnist: ArrayDataset;

beforeAll(async () => {
  await initBackend('cpu');
  mnist = await loadMnist();
});

describe('loadMnist', () => {
  it('10,000 digits of 28x28x1 with the package label counts', () => {
    expect(mnist.count).toBe(10_000);
    expect(mnist.shape).toEqual([28, 28, 1]);
    expect(mnist.numClasses).toBe(10);
    expect(mnist.x.length).toBe(10_000 * 784);
    expect(mnist.labels.length).toBe(10_000);
    const counts = new Array(10).fill(0);
    for (const l of mnist.labels) counts[l]++;
    expect(counts).toEqual([1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]);
  });

  it('pixels are scaled from [0, 1] to [-1, 1]: background -1, full ink 1', () => {
    let min = Infinity;
    let max = -Infinity;
    let background = 0;
    for (const v of mnist.x) {
      if (v < min) min = v;
      if (v > max) max = v;
      if (v === -1) background++;
    }
    expect(min).toBe(-1);
    expect(max).toBe(1);
    // MNIST is mostly background: about 80% of pixels are exactly 0 in [0, 1]
    expect(background / mnist.x.length).toBeGreaterThan(0.7);
    expect(background / mnist.x.length).toBeLessThan(0.9);
    // every image has ink
    for (let i = 0; i < mnist.count; i += 97) {
      const img = mnist.x.subarray(i * 784, (i + 1) * 784);
      expect(img.some((v) => v > 0)).toBe(true);
    }
  });

  it('loads a subset of digits, keeping their labels', async () => {
    const some = await loadMnist({ digits: [3, 7] });
    expect(some.count).toBe(1032 + 1070);
    expect(new Set(some.labels)).toEqual(new Set([3, 7]));
    await expect(loadMnist({ digits: [10] })).rejects.toThrow(DataError);
    await expect(loadMnist({ digits: [1, 1] })).rejects.toThrow(/must not repeat/);
  });
});

describe('ShuffledBatches', () => {
  const read = (b: { x: tf.Tensor; labels: tf.Tensor }) => {
    const out = {
      x: b.x.dataSync().slice(0, 784 * 2),
      labels: Array.from(b.labels.dataSync()),
      shape: b.x.shape,
    };
    tf.dispose([b.x, b.labels]);
    return out;
  };

  it('batches have the data set shape; one epoch visits every example exactly once', () => {
    const it = new ShuffledBatches(mnist, { batchSize: 100, seed: 3 });
    expect(it.batchesPerEpoch).toBe(100);
    const seen = new Uint8Array(mnist.count);
    for (let b = 0; b < it.batchesPerEpoch; b++) {
      for (const i of it.nextIndices()) seen[i]!++;
    }
    expect(seen.every((c) => c === 1)).toBe(true);
    expect(it.epoch).toBe(0);
    const batch = it.next();
    expect(it.epoch).toBe(1);
    expect(batch.x.shape).toEqual([100, 28, 28, 1]);
    expect(batch.labels.shape).toEqual([100]);
    expect(batch.labels.dtype).toBe('int32');
    tf.dispose([batch.x, batch.labels]);
  });

  it('the batch content matches the indexed examples', () => {
    const a = new ShuffledBatches(mnist, { batchSize: 8, seed: 5 });
    const b = new ShuffledBatches(mnist, { batchSize: 8, seed: 5 });
    const idx = a.nextIndices();
    const batch = b.next();
    const x = batch.x.dataSync();
    const labels = batch.labels.dataSync();
    idx.forEach((j, i) => {
      expect(labels[i]).toBe(mnist.labels[j]);
      expect(x.slice(i * 784, (i + 1) * 784)).toEqual(mnist.x.slice(j * 784, (j + 1) * 784));
    });
    tf.dispose([batch.x, batch.labels]);
  });

  it('is seeded: same seed same batches, other seed other batches; batches are shuffled across digits', () => {
    const a = new ShuffledBatches(mnist, { batchSize: 32, seed: 1 });
    const b = new ShuffledBatches(mnist, { batchSize: 32, seed: 1 });
    const c = new ShuffledBatches(mnist, { batchSize: 32, seed: 2 });
    const ra = read(a.next());
    expect(ra).toEqual(read(b.next()));
    expect(ra.labels).not.toEqual(read(c.next()).labels);
    expect(new Set(ra.labels).size).toBeGreaterThan(5);
  });

  it('restores from state() and continues with the same batches, across an epoch boundary', () => {
    const a = new ShuffledBatches(mnist, { batchSize: 3000, seed: 9 }); // 3 batches per epoch
    for (let i = 0; i < 4; i++) read(a.next());
    const saved = JSON.parse(JSON.stringify(a.state()));
    const b = ShuffledBatches.restore(mnist, saved);
    for (let i = 0; i < 5; i++) expect(read(b.next())).toEqual(read(a.next()));
    expect(b.epoch).toBe(a.epoch);
  });

  it('without dropLast the last short batch is kept', () => {
    const it = new ShuffledBatches(mnist, { batchSize: 3000, seed: 0, dropLast: false });
    expect(it.batchesPerEpoch).toBe(4);
    const sizes = [0, 1, 2, 3].map(() => it.nextIndices().length);
    expect(sizes).toEqual([3000, 3000, 3000, 1000]);
  });

  it('rejects bad sizes and foreign states with DataError', () => {
    expect(() => new ShuffledBatches(mnist, { batchSize: 0, seed: 0 })).toThrow(DataError);
    expect(() => new ShuffledBatches(mnist, { batchSize: 20_000, seed: 0 })).toThrow(
      /larger than the data set/,
    );
    expect(() => new ShuffledBatches(mnist, { batchSize: 8 })).toThrow(/seed or an rng/);
    const state = new ShuffledBatches(mnist, { batchSize: 8, seed: 0 }).state();
    const small = {
      ...mnist,
      count: 10,
      x: mnist.x.subarray(0, 7840),
      labels: mnist.labels.subarray(0, 10),
    };
    expect(() => ShuffledBatches.restore(small, state)).toThrow(/10000 examples/);
  });
});

describe('splitMnist', () => {
  it('three disjoint parts covering all 10,000 digits, each with every class in proportion', () => {
    const parts = splitMnist(mnist);
    expect(parts.heldOut.count).toBe(1000);
    expect(parts.judge.count).toBe(4000);
    expect(parts.generator.count).toBe(5000);
    const all = [
      ...mnistSplitIndices('heldOut', 10_000),
      ...mnistSplitIndices('judge', 10_000),
      ...mnistSplitIndices('generator', 10_000),
    ];
    expect(new Set(all).size).toBe(10_000);
    expect(mnistSplitIndices('heldOut', 10_000).slice(0, 3)).toEqual([0, 10, 20]);
    expect(Object.values(MNIST_SPLIT).flat().sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    // digit i of a part is digit idx[i] of the full set, pixels and label
    const idx = mnistSplitIndices('judge', 10_000);
    for (const i of [0, 1234, 3999]) {
      const j = idx[i]!;
      expect(parts.judge.labels[i]).toBe(mnist.labels[j]);
      expect(parts.judge.x.subarray(i * 784, (i + 1) * 784)).toEqual(
        mnist.x.subarray(j * 784, (j + 1) * 784),
      );
    }
    // stratified: each part's class shares are within 1 point of the full set's
    const share = (ds: ArrayDataset, c: number) =>
      ds.labels.filter((l: number) => l === c).length / ds.count;
    for (let c = 0; c < 10; c++) {
      for (const p of Object.values(parts)) {
        expect(Math.abs(share(p, c) - share(mnist, c))).toBeLessThan(0.01);
      }
    }
  });

  it('refuses a partial data set, an unknown part and out-of-range indices', async () => {
    const some = await loadMnist({ digits: [3] });
    expect(() => splitMnist(some)).toThrow(/expects all 10,000 digits/);
    expect(() => mnistSplitIndices('train' as never, 10)).toThrow(
      /unknown MNIST split part 'train'/,
    );
    expect(() => subset(some, [some.count])).toThrow(DataError);
    expect(() => subset(some, [-1])).toThrow(/outside/);
  });
});
