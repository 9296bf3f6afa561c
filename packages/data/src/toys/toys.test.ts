/**
 * Moments of every toy distribution against the exact moments of its recipe (closed form, or a
 * 1-D quadrature of the generating curve), within 5 standard errors estimated from the sample.
 */

import { InvalidArgumentError, initBackend, Random } from '@diffuse/backend';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  checkerboard,
  eightGaussians,
  gaussianMixture,
  spirals,
  swissRoll,
  TOYS,
  type ToyDistribution,
  toyDistribution,
  twoMoons,
} from '../index.js';

beforeAll(async () => {
  await initBackend('cpu');
});

interface Moments {
  mean: [number, number];
  /** E[x^2], E[y^2], E[xy] (raw second moments). */
  second: [number, number, number];
}

/** Simpson's rule for E[f(t)] under a density p on [a, b]. */
function expect1d(
  f: (t: number) => number,
  p: (t: number) => number,
  a: number,
  b: number,
  m = 20_000,
): number {
  const h = (b - a) / m;
  let s = 0;
  for (let i = 0; i <= m; i++) {
    const t = a + i * h;
    const w = i === 0 || i === m ? 1 : i % 2 === 1 ? 4 : 2;
    s += w * f(t) * p(t);
  }
  return (s * h) / 3;
}

function draw(
  toy: ToyDistribution,
  n: number,
  seed: number,
): { x: Float32Array; labels: Int32Array } {
  const { x, labels } = toy.sample(n, Random.seed(seed));
  const out = { x: x.dataSync() as Float32Array, labels: labels.dataSync() as Int32Array };
  x.dispose();
  labels.dispose();
  return out;
}

/** Checks sample means and raw second moments against `exact`, each within 5 standard errors. */
function checkMoments(x: Float32Array, exact: Moments): void {
  const n = x.length / 2;
  const stats: ((i: number) => number)[] = [
    (i) => x[2 * i]!,
    (i) => x[2 * i + 1]!,
    (i) => x[2 * i]! ** 2,
    (i) => x[2 * i + 1]! ** 2,
    (i) => x[2 * i]! * x[2 * i + 1]!,
  ];
  const targets = [...exact.mean, ...exact.second];
  stats.forEach((f, k) => {
    let s = 0;
    let s2 = 0;
    for (let i = 0; i < n; i++) {
      const v = f(i);
      s += v;
      s2 += v * v;
    }
    const m = s / n;
    const se = Math.sqrt(Math.max(s2 / n - m * m, 1e-12) / n);
    expect(
      Math.abs(m - targets[k]!),
      `statistic ${k}: sample ${m} vs exact ${targets[k]}`,
    ).toBeLessThan(5 * se);
  });
}

const N = 100_000;

describe('toy distributions: moments against the exact recipe', () => {
  it('two moons: closed form', () => {
    const noise = 0.1;
    const { x, labels } = draw(twoMoons({ noise }), N, 1);
    const s2 = noise * noise;
    checkMoments(x, {
      mean: [0.5, 0.25],
      second: [1 + s2, 0.625 - 1 / Math.PI + s2, 0.25 - 1 / Math.PI],
    });
    const ones = labels.reduce((a, b) => a + b, 0);
    expect(Math.abs(ones / N - 0.5)).toBeLessThan(5 * Math.sqrt(0.25 / N));
  });

  it('two moons: each label is its own moon (means (0, 2/pi) and (1, 1/2 - 2/pi))', () => {
    const { x, labels } = draw(twoMoons({ noise: 0 }), 20_000, 2);
    const sums = [
      [0, 0, 0],
      [0, 0, 0],
    ];
    for (let i = 0; i < labels.length; i++) {
      const r = sums[labels[i]!]!;
      r[0]! += x[2 * i]!;
      r[1]! += x[2 * i + 1]!;
      r[2]! += 1;
      // noiseless points lie exactly on their circle
      const [cx, cy] = labels[i] === 0 ? [0, 0] : [1, 0.5];
      expect(Math.hypot(x[2 * i]! - cx, x[2 * i + 1]! - cy)).toBeCloseTo(1, 5);
    }
    expect(sums[0]![0]! / sums[0]![2]!).toBeCloseTo(0, 1);
    expect(sums[0]![1]! / sums[0]![2]!).toBeCloseTo(2 / Math.PI, 1);
    expect(sums[1]![0]! / sums[1]![2]!).toBeCloseTo(1, 1);
    expect(sums[1]![1]! / sums[1]![2]!).toBeCloseTo(0.5 - 2 / Math.PI, 1);
  });

  it('swiss roll: quadrature over t ~ U[1.5 pi, 4.5 pi]', () => {
    const noise = 0.05;
    const scale = 1 / 15;
    const { x } = draw(swissRoll({ noise, scale }), N, 3);
    const a = 1.5 * Math.PI;
    const b = 4.5 * Math.PI;
    const p = () => 1 / (b - a);
    const E = (f: (t: number) => number) => expect1d(f, p, a, b);
    checkMoments(x, {
      mean: [scale * E((t) => t * Math.cos(t)), scale * E((t) => t * Math.sin(t))],
      second: [
        scale ** 2 * E((t) => (t * Math.cos(t)) ** 2) + noise ** 2,
        scale ** 2 * E((t) => (t * Math.sin(t)) ** 2) + noise ** 2,
        scale ** 2 * E((t) => t * t * Math.cos(t) * Math.sin(t)),
      ],
    });
  });

  it('checkerboard: uniform marginals and the dark-square cross moment', () => {
    const k = 4;
    const L = 2;
    const { x } = draw(checkerboard({ squares: k, halfWidth: L }), N, 4);
    const side = (2 * L) / k;
    let exy = 0;
    let dark = 0;
    for (let i = 0; i < k; i++) {
      for (let j = 0; j < k; j++) {
        if ((i + j) % 2 !== 0) continue;
        exy += (-L + side * (i + 0.5)) * (-L + side * (j + 0.5));
        dark++;
      }
    }
    checkMoments(x, { mean: [0, 0], second: [(L * L) / 3, (L * L) / 3, exy / dark] });
    // and no point lands on a light square (points within float32 rounding of an edge are skipped)
    const nearEdge = (v: number) => Math.abs((v + L) / side - Math.round((v + L) / side)) < 1e-5;
    for (let i = 0; i < x.length / 2; i++) {
      if (nearEdge(x[2 * i]!) || nearEdge(x[2 * i + 1]!)) continue;
      const ci = Math.floor((x[2 * i]! + L) / side);
      const cj = Math.floor((x[2 * i + 1]! + L) / side);
      expect((ci + cj) % 2).toBe(0);
    }
  });

  it('spirals: quadrature over n with density 2n / N^2', () => {
    const noise = 0.1;
    const scale = 1 / 3;
    const turns = 1.5;
    const { x, labels } = draw(spirals({ noise, scale, turns }), N, 5);
    const top = 2 * Math.PI * turns;
    const p = (n: number) => (2 * n) / (top * top);
    const E = (f: (t: number) => number) => expect1d(f, p, 0, top);
    checkMoments(x, {
      mean: [0, 0],
      second: [
        scale ** 2 * E((n) => (n * Math.cos(n)) ** 2) + noise ** 2,
        scale ** 2 * E((n) => (n * Math.sin(n)) ** 2) + noise ** 2,
        -(scale ** 2) * E((n) => n * n * Math.cos(n) * Math.sin(n)),
      ],
    });
    // the two arms are reflections: the mean of arm 0 is minus the mean of arm 1
    const m = [0, 0, 0, 0];
    const c = [0, 0];
    for (let i = 0; i < labels.length; i++) {
      const l = labels[i]!;
      m[2 * l]! += x[2 * i]!;
      m[2 * l + 1]! += x[2 * i + 1]!;
      c[l]! += 1;
    }
    const armMean = scale * E((n) => -n * Math.cos(n));
    expect(m[0]! / c[0]!).toBeCloseTo(armMean, 1);
    expect(m[2]! / c[1]!).toBeCloseTo(-armMean, 1);
  });

  it('eight Gaussians: mean 0, covariance (r^2/2 + s^2) I, eight equal classes', () => {
    const radius = 2;
    const std = 0.2;
    const { x, labels } = draw(eightGaussians({ radius, std }), N, 6);
    const v = (radius * radius) / 2 + std * std;
    checkMoments(x, { mean: [0, 0], second: [v, v, 0] });
    const counts = new Array(8).fill(0);
    for (const l of labels) counts[l]++;
    for (const c of counts)
      expect(Math.abs(c / N - 1 / 8)).toBeLessThan(5 * Math.sqrt(((1 / 8) * (7 / 8)) / N));
  });

  it('a full-covariance Gaussian mixture: mixture moments, and it carries the exact oracle', () => {
    const spec = {
      weights: [0.5, 0.3, 0.2],
      means: [
        [-1.5, 0],
        [1, 1.2],
        [1.2, -1.3],
      ],
      covs: [
        [
          [0.05, 0],
          [0, 0.05],
        ],
        [
          [0.2, 0.1],
          [0.1, 0.1],
        ],
        [
          [0.1, -0.05],
          [-0.05, 0.3],
        ],
      ],
      labels: [0, 1, 1],
    };
    const toy = gaussianMixture(spec);
    expect(toy.numClasses).toBe(2);
    const { x, labels } = draw(toy, N, 7);
    let mx = 0;
    let my = 0;
    const sec = [0, 0, 0];
    spec.weights.forEach((w, k) => {
      const [a, b] = spec.means[k]!;
      const S = spec.covs[k]!;
      mx += w * a!;
      my += w * b!;
      sec[0]! += w * (S[0]![0]! + a! * a!);
      sec[1]! += w * (S[1]![1]! + b! * b!);
      sec[2]! += w * (S[0]![1]! + a! * b!);
    });
    checkMoments(x, { mean: [mx, my], second: sec as [number, number, number] });
    const ones = labels.reduce((s, l) => s + l, 0);
    expect(Math.abs(ones / N - 0.5)).toBeLessThan(5 * Math.sqrt(0.25 / N));
    // the oracle belongs to the same distribution: at alpha = 1, sigma -> 0 the posterior mean is x
    const pts = tf.tensor2d([[-1.5, 0]]);
    const x0 = toy.mixture.x0(pts, { alpha: 1, sigma: 1e-3 });
    expect(Array.from(x0.dataSync())[0]).toBeCloseTo(-1.5, 3);
    tf.dispose([pts, x0]);
  });
});

describe('toy distributions: seeding, registry and errors', () => {
  it('every registered toy: same seed same points, other seed other points, no leaked tensors', () => {
    for (const name of Object.keys(TOYS)) {
      const toy = toyDistribution(name);
      expect(toy.name).toBe(name);
      expect(toy.dim).toBe(2);
      const before = tf.memory().numTensors;
      const a = draw(toy, 64, 11);
      const b = draw(toy, 64, 11);
      const c = draw(toy, 64, 12);
      expect(tf.memory().numTensors).toBe(before);
      expect(a.x).toEqual(b.x);
      expect(a.labels).toEqual(b.labels);
      expect(a.x).not.toEqual(c.x);
      expect(a.x.every(Number.isFinite)).toBe(true);
      for (const l of a.labels) expect(l >= 0 && l < toy.numClasses).toBe(true);
    }
  });

  it('rejects bad options and counts with typed errors', () => {
    expect(() => toyDistribution('moons')).toThrow(/unknown toy distribution 'moons'/);
    expect(() => twoMoons({ noise: -1 })).toThrow(InvalidArgumentError);
    expect(() => checkerboard({ squares: 3 })).toThrow(/even integer/);
    expect(() => spirals({ turns: 0 })).toThrow(InvalidArgumentError);
    expect(() => eightGaussians({ std: 0 })).toThrow(InvalidArgumentError);
    expect(() => twoMoons().sample(0, Random.seed(0))).toThrow(/positive integer/);
    expect(() => swissRoll().sample(1.5, Random.seed(0))).toThrow(InvalidArgumentError);
  });
});
