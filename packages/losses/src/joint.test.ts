import { assertNoLeaks, DiffuseError, initBackend, Random } from '@diffuse/backend';
import { GaussianMixture } from '@diffuse/models';
import {
  type ContinuousSchedule,
  CosineSchedule,
  EDMSchedule,
  LearnedVDMSchedule,
  LogSNRLinearSchedule,
} from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exactContinuous, exactDiscrete } from './gaussian-fixture.js';
import {
  continuousDiffusionLoss,
  discreteDiffusionLoss,
  LossError,
  meanAndStandardError,
  negativeELBO,
  vdmJointStep,
} from './index.js';

// Gaussian data x0 ~ N(mu, s^2 I_d) and its exact denoiser.
const d = 4;
const s = 0.5;
const gm = GaussianMixture.gaussian(
  Array(d).fill(0.3),
  Array.from({ length: d }, (_, i) => Array.from({ length: d }, (_, j) => (i === j ? s * s : 0))),
);
const model = gm.denoiser('epsilon');
const exact = exactContinuous(d, s, -10, 10);

const learned = (seed: number, initStd: number) =>
  new LearnedVDMSchedule({ gammaMin: -10, gammaMax: 10, hiddenUnits: 32, seed, initStd });
const shapeOf = (sch: LearnedVDMSchedule) => [sch.w1, sch.w2, sch.b2, sch.w3];

async function lossStats(schedule: ContinuousSchedule, seed: number, n = 8192) {
  const rng = Random.seed(seed);
  const x0 = gm.sample(n, rng);
  const l = continuousDiffusionLoss(model, x0, { schedule, rng, sampling: 'iid' });
  const v = (await l.data()) as Float32Array;
  tf.dispose([x0, l]);
  const { mean, standardError } = meanAndStandardError(v);
  return { mean, standardError, variance: standardError * standardError * n };
}

beforeAll(async () => {
  await initBackend('wasm');
});

describe('the learned VDM schedule, trained through the continuous-time ELBO', () => {
  const schedules: LearnedVDMSchedule[] = [];
  afterAll(() => {
    for (const sch of schedules) sch.dispose();
  });

  it('gradients reach every parameter and match d E[L]/d gamma at the endpoints (zero for the shape)', async () => {
    const schedule = learned(1, 0.5);
    schedules.push(schedule);
    const rng = Random.seed(2);
    const names = ['gamma0', 'gamma1', 'w1', 'w3'] as const;
    const draws: Record<string, number[]> = { gamma0: [], gamma1: [], w1: [], w3: [] };
    for (let r = 0; r < 24; r++) {
      const x0 = gm.sample(512, rng);
      const { value, grads } = tf.variableGrads(
        () => tf.mean(continuousDiffusionLoss(model, x0, { schedule, rng })) as tf.Scalar,
        schedule.trainableVariables,
      );
      for (const g of Object.values(grads))
        expect(Number.isFinite(tf.sum(tf.abs(g)).dataSync()[0]!)).toBe(true);
      draws.gamma0!.push(grads[schedule.gamma0.name]!.dataSync()[0]!);
      draws.gamma1!.push(grads[schedule.gamma1.name]!.dataSync()[0]!);
      draws.w1!.push(grads[schedule.w1.name]!.dataSync()[0]!);
      draws.w3!.push(grads[schedule.w3.name]!.dataSync()[0]!);
      tf.dispose([x0, value, ...Object.values(grads)]);
    }
    // E[L] = d/2 [log(1 + e^lmax s^2) - log(1 + e^lmin s^2)], lmax = -gamma0, lmin = -gamma1.
    const sig = (x: number) => 1 / (1 + Math.exp(-x));
    const expected = {
      gamma0: -(d / 2) * sig(10 + Math.log(s * s)),
      gamma1: (d / 2) * sig(-10 + Math.log(s * s)),
      w1: 0,
      w3: 0,
    };
    for (const k of names) {
      const est = meanAndStandardError(draws[k]!);
      expect(Math.abs(est.mean - expected[k])).toBeLessThan(4 * est.standardError + 1e-3);
    }
    // The shape gradients are noise around zero but not identically zero: they do flow.
    for (const k of ['w1', 'w3']) expect(draws[k]!.some((g) => Math.abs(g) > 1e-7)).toBe(true);
  });

  it('the loss is invariant to the interior shape for fixed endpoints, while its variance changes', async () => {
    // Five schedules with lambda(0) = 10 and lambda(1) = -10 (EDM and VE: sigma = e^(-lambda/2)).
    const shaped = [learned(3, 0.01), learned(4, 3)];
    schedules.push(...shaped);
    const all = [
      new LogSNRLinearSchedule({ gammaMin: -10, gammaMax: 10 }),
      new CosineSchedule({ logSNRMin: -10, logSNRMax: 10 }),
      new EDMSchedule({ sigmaMin: Math.exp(-5), sigmaMax: Math.exp(5), rho: 7 }),
      ...shaped,
    ];
    const stats = [];
    for (const [i, sch] of all.entries()) stats.push(await lossStats(sch, 10 + i));
    for (const st of stats) expect(Math.abs(st.mean - exact)).toBeLessThan(4 * st.standardError);
    const variances = stats.map((st) => st.variance);
    expect(Math.max(...variances) / Math.min(...variances)).toBeGreaterThan(3);
  });

  it('vdmJointStep: training the shape on E[L^2] lowers the variance and leaves the loss unchanged', async () => {
    const schedule = learned(6, 1);
    schedules.push(schedule);
    const before = await lossStats(schedule, 20);
    const rng = Random.seed(21);
    const optimizer = tf.train.adam(0.5);
    for (let step = 0; step < 40; step++) {
      const x0 = gm.sample(256, rng);
      const out = vdmJointStep({
        denoiser: model,
        x0,
        schedule,
        rng,
        optimizer,
        modelVariables: [],
        shapeVariables: shapeOf(schedule),
      });
      tf.dispose([x0, out.negativeELBO, out.diffusionSecondMoment]);
    }
    optimizer.dispose();
    const after = await lossStats(schedule, 22);
    expect(schedule.logSNR(0)).toBeCloseTo(10, 4); // endpoints untouched
    expect(schedule.logSNR(1)).toBeCloseTo(-10, 4);
    expect(Math.abs(after.mean - exact)).toBeLessThan(4 * after.standardError);
    expect(after.variance).toBeLessThan(0.6 * before.variance);
  });

  it('vdmJointStep trains the endpoints on the ELBO: -ELBO falls', async () => {
    const schedule = new LearnedVDMSchedule({
      gammaMin: -3,
      gammaMax: 3,
      hiddenUnits: 8,
      seed: 7,
      initStd: 0.1,
    });
    schedules.push(schedule);
    const rng = Random.seed(30);
    const evaluate = () =>
      tf.tidy(() => {
        const x0 = gm.sample(4096, Random.seed(31));
        return tf
          .mean(negativeELBO(model, x0, { schedule, rng: Random.seed(32) }).total)
          .dataSync()[0]!;
      });
    const start = evaluate();
    const optimizer = tf.train.adam(0.1);
    for (let step = 0; step < 30; step++) {
      const x0 = gm.sample(256, rng);
      const out = vdmJointStep({
        denoiser: model,
        x0,
        schedule,
        rng,
        optimizer,
        modelVariables: [],
        endpointVariables: [schedule.gamma0, schedule.gamma1],
      });
      tf.dispose([x0, out.negativeELBO, out.diffusionSecondMoment]);
    }
    optimizer.dispose();
    // The bound tightens: lambda_max grows, lambda_min falls.
    expect(schedule.logSNR(0)).toBeGreaterThan(3.5);
    expect(schedule.logSNR(1)).toBeLessThan(-3.5);
    expect(evaluate()).toBeLessThan(start - 0.1);
  });

  it('the discrete-time loss through a learned schedule: matches its closed form, differentiable in gamma_0', async () => {
    const schedule = learned(11, 2);
    schedules.push(schedule);
    const T = 8;
    const rng = Random.seed(50);
    const x0 = gm.sample(8192, rng);
    const l = discreteDiffusionLoss(model, x0, { schedule, steps: T, rng, sampling: 'iid' });
    const est = meanAndStandardError((await l.data()) as Float32Array);
    tf.dispose([l]);
    const exactT = exactDiscrete(d, s, (t) => schedule.logSNR(t), T);
    expect(exactT).toBeGreaterThan(exact);
    expect(Math.abs(est.mean - exactT)).toBeLessThan(4 * est.standardError);
    const { value, grads } = tf.variableGrads(
      () =>
        tf.mean(
          discreteDiffusionLoss(model, x0, { schedule, steps: T, rng: Random.seed(51) }),
        ) as tf.Scalar,
      [schedule.gamma0, schedule.w3],
    );
    for (const g of Object.values(grads))
      expect(Number.isFinite(tf.sum(tf.abs(g)).dataSync()[0]!)).toBe(true);
    expect(Math.abs(grads[schedule.gamma0.name]!.dataSync()[0]!)).toBeGreaterThan(0);
    tf.dispose([x0, value, ...Object.values(grads)]);
  });

  it('a schedule with only logSNRTensor: the derivative comes from tf.grad, gradients from a second tf.grad', async () => {
    const schedule = learned(9, 1);
    schedules.push(schedule);
    const onlyTensor = {
      logSNRTensor: (t: tf.Tensor) => schedule.logSNRTensor(t),
      trainableVariables: schedule.trainableVariables,
    };
    const x0 = gm.sample(64, Random.seed(40));
    const noise = Random.seed(41).normal([64, d]);
    const run = (sch: typeof onlyTensor | LearnedVDMSchedule) =>
      tf.variableGrads(
        () =>
          tf.mean(
            continuousDiffusionLoss(model, x0, { schedule: sch, rng: Random.seed(42), noise }),
          ) as tf.Scalar,
        [schedule.gamma0, schedule.w1, schedule.w3],
      );
    const a = run(schedule); // closed-form dLogSNRdtTensor
    const b = run(onlyTensor); // tf.grad of logSNRTensor, then differentiated again
    expect(b.value.dataSync()[0]!).toBeCloseTo(a.value.dataSync()[0]!, 3);
    for (const v of [schedule.gamma0, schedule.w1, schedule.w3]) {
      const ga = await a.grads[v.name]!.data();
      const gb = await b.grads[v.name]!.data();
      const scale = Math.max(...Array.from(ga, Math.abs), 1e-6);
      for (let i = 0; i < ga.length; i++)
        expect(Math.abs(gb[i]! - ga[i]!) / scale).toBeLessThan(2e-3);
    }
    tf.dispose([x0, noise, a.value, b.value, ...Object.values(a.grads), ...Object.values(b.grads)]);
  });

  it('no tensor leaks: a joint step keeps only its two scalars', async () => {
    const schedule = learned(10, 0.5);
    schedules.push(schedule);
    const x0 = gm.sample(32, Random.seed(43));
    const optimizer = tf.train.sgd(1e-3);
    // The first step creates the optimizer's state; count from the second.
    const step = () =>
      vdmJointStep({
        denoiser: model,
        x0,
        schedule,
        rng: Random.seed(44),
        optimizer,
        modelVariables: [],
        endpointVariables: [schedule.gamma0, schedule.gamma1],
        shapeVariables: shapeOf(schedule),
      });
    const first = step();
    tf.dispose([first.negativeELBO, first.diffusionSecondMoment]);
    const out = await assertNoLeaks(step, 'vdmJointStep');
    tf.dispose([x0, out.negativeELBO, out.diffusionSecondMoment]);
    optimizer.dispose();
  });

  it('bad input gives typed errors', () => {
    const schedule = learned(8, 0.1);
    schedules.push(schedule);
    const x0 = tf.zeros([2, d]);
    const base = {
      denoiser: model,
      x0,
      schedule,
      rng: Random.seed(0),
      optimizer: tf.train.sgd(0.1),
      modelVariables: [],
    };
    const cases: [() => unknown, RegExp][] = [
      [
        () => vdmJointStep({ ...base, schedule: {} as never }),
        /needs a schedule with logSNRTensor/,
      ],
      [() => vdmJointStep({ ...base, optimizer: undefined as never }), /needs an optimizer/],
      [
        () =>
          vdmJointStep({
            ...base,
            endpointVariables: [schedule.w1],
            shapeVariables: [schedule.w1],
          }),
        /in both the ELBO group/,
      ],
      [() => vdmJointStep({ ...base }), /no variables to train/],
      [
        () => vdmJointStep({ ...base, shapeVariables: [tf.zeros([1]) as never] }),
        /must be a tf.Variable/,
      ],
    ];
    for (const [fn, message] of cases) {
      let err: unknown;
      try {
        fn();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(LossError);
      expect(err).toBeInstanceOf(DiffuseError);
      expect((err as Error).message).toMatch(message);
    }
    x0.dispose();
  });
});
