/**
 * The conformance test every registered schedule must pass: it runs over `listSchedules()`, so a new
 * schedule (one file + one registry line) is checked with no new test code.
 */
import { assertNoLeaksSync, initBackend } from '@diffuse/backend';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type ContinuousSchedule,
  createSchedule,
  LogSNRLinearSchedule,
  listSchedules,
  registerSchedule,
  type ScheduleConfig,
  ScheduleError,
} from './index.js';

beforeAll(async () => {
  await initBackend('wasm');
});

const cases: ScheduleConfig[] = [
  ...listSchedules().map((name) => ({ name })),
  // a few non-default parameters, so the math is not only right at the defaults
  { name: 'vp-linear', betaMin: 0.5, betaMax: 8 },
  { name: 'sub-vp', betaMin: 0.01, betaMax: 30 },
  { name: 've', sigmaMin: 0.002, sigmaMax: 80 },
  { name: 'cosine', logSNRMin: -30, logSNRMax: 25 },
  { name: 'logsnr-linear', gammaMin: -10, gammaMax: 10 },
  { name: 'edm', sigmaMin: 0.01, sigmaMax: 100, rho: 3 },
  { name: 'vdm-learned', hiddenUnits: 64, initStd: 1.5, seed: 7 },
  { name: 'rectified-flow', shift: 3, tMin: 1e-4, tMax: 0.9999 },
];

const interior = [0.001, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999];

describe.each(cases.map((c) => [JSON.stringify(c), c] as const))(
  'conformance %s',
  (_id, config) => {
    let s: ContinuousSchedule;
    beforeAll(() => {
      s = createSchedule(config);
      return () => s.dispose();
    });

    it('logSNR is strictly decreasing, with the declared endpoints', () => {
      const grid = [0, ...interior, 1];
      const l = grid.map((t) => s.logSNR(t));
      for (let i = 1; i < l.length; i++) expect(l[i]!).toBeLessThan(l[i - 1]!);
      expect(s.logSNR(0)).toBe(s.logSNRMax);
      expect(s.logSNR(1)).toBe(s.logSNRMin);
      expect(Number.isFinite(s.logSNRMin)).toBe(true);
      expect(s.logSNRMax > 0 || Number.isFinite(s.logSNRMax)).toBe(true);
    });

    it('the noise level agrees with logSNR; VP schedules keep alpha^2 + sigma^2 = 1', () => {
      for (const t of interior) {
        const { alpha, sigma } = s.level(t);
        expect(alpha).toBe(s.alpha(t));
        expect(sigma).toBe(s.sigma(t));
        expect(alpha).toBeGreaterThan(0);
        expect(sigma).toBeGreaterThan(0);
        const l = s.logSNR(t);
        expect(Math.abs(2 * Math.log(alpha / sigma) - l)).toBeLessThan(
          1e-9 * Math.max(1, Math.abs(l)),
        );
        if (s.variancePreserving)
          expect(Math.abs(alpha * alpha + sigma * sigma - 1)).toBeLessThan(1e-13);
      }
    });

    it('inverts: t -> logSNR -> t and t -> sigma -> t', () => {
      for (const t of interior) {
        expect(Math.abs(s.tFromLogSNR(s.logSNR(t)) - t)).toBeLessThan(1e-9);
        expect(Math.abs(s.tFromSigma(s.sigma(t)) - t)).toBeLessThan(1e-6);
      }
      expect(s.tFromLogSNR(s.logSNRMin)).toBeCloseTo(1, 9);
      if (Number.isFinite(s.logSNRMax)) expect(s.tFromLogSNR(s.logSNRMax)).toBeCloseTo(0, 9);
    });

    it('dlogSNR/dt matches a central finite difference', () => {
      for (const t of interior.filter((x) => x >= 0.01 && x <= 0.99)) {
        const h = 1e-5;
        const fd = (s.logSNR(t + h) - s.logSNR(t - h)) / (2 * h);
        const d = s.dLogSNRdt(t);
        expect(d).toBeLessThan(0);
        expect(Math.abs(d - fd)).toBeLessThan(1e-5 * Math.abs(fd) + 1e-6);
      }
    });

    it('tensor versions agree with the numbers, and dlogSNR/dt with tf.grad', async () => {
      const ts = interior.filter((x) => x >= 0.01 && x <= 0.99);
      const t = tf.tensor1d(ts);
      const [l, d, g, alpha, sigma] = assertNoLeaksSync(() => {
        const lvl = s.levelTensor(t);
        const grad = tf.grad((x: tf.Tensor) => tf.sum(s.logSNRTensor(x)))(t);
        return [s.logSNRTensor(t), s.dLogSNRdtTensor(t), grad, lvl.alpha, lvl.sigma];
      }, 'tensor schedule');
      const [lv, dv, gv, av, sv] = await Promise.all([l, d, g, alpha, sigma].map((x) => x!.data()));
      ts.forEach((tt, i) => {
        const ln = s.logSNR(tt);
        const dn = s.dLogSNRdt(tt);
        expect(Math.abs(lv![i]! - ln)).toBeLessThan(2e-5 * Math.max(1, Math.abs(ln)));
        expect(Math.abs(dv![i]! - dn)).toBeLessThan(1e-4 * Math.abs(dn));
        expect(Math.abs(gv![i]! - dn)).toBeLessThan(2e-3 * Math.abs(dn));
        const { alpha: an, sigma: sn } = s.level(tt);
        expect(Math.abs(av![i]! - an)).toBeLessThan(1e-5 * Math.max(1, an));
        expect(Math.abs(sv![i]! - sn)).toBeLessThan(1e-5 * Math.max(1, sn));
      });
      tf.dispose([t, l!, d!, g!, alpha!, sigma!]);
    });

    it('rejects times and logSNRs out of range with a ScheduleError', () => {
      for (const bad of [-0.01, 1.01, Number.NaN]) {
        expect(() => s.logSNR(bad)).toThrow(ScheduleError);
        expect(() => s.level(bad)).toThrow(/outside \[0, 1\]/);
      }
      expect(() => s.tFromLogSNR(s.logSNRMin - 1)).toThrow(/outside the schedule's range/);
      expect(() => s.tFromSigma(-1)).toThrow(ScheduleError);
    });

    it('round-trips through its config', () => {
      const c = s.toConfig();
      expect(c.name).toBe(config.name);
      const again = createSchedule(c);
      expect(again.logSNR(0.37)).toBe(s.logSNR(0.37));
      again.dispose();
    });
  },
);

// A schedule registered by a test joins the typed names as a user's would (see src/names.ts).
declare module './names.js' {
  interface ScheduleNames {
    'test-linear': true;
  }
}

describe('registry', () => {
  it('registers a new schedule in one line, and rejects unknown names and parameters', () => {
    registerSchedule(
      'test-linear',
      (p) => new LogSNRLinearSchedule({ gammaMin: -10, gammaMax: 8, ...p }),
    );
    expect(createSchedule({ name: 'test-linear' }).logSNR(0)).toBe(10);
    expect(listSchedules()).toContain('test-linear');
    expect(() => registerSchedule('test-linear', () => new LogSNRLinearSchedule())).toThrow(
      /already registered/,
    );
    // @ts-expect-error: not a schedule name (and not a valid one at run time)
    expect(() => registerSchedule('Bad Name', () => new LogSNRLinearSchedule())).toThrow(
      /lower-case/,
    );
    // @ts-expect-error: an unknown schedule name fails to compile, and throws at run time
    expect(() => createSchedule({ name: 'nope' })).toThrow(
      /unknown schedule 'nope'; registered: vp-linear/,
    );
    expect(() => createSchedule({ name: 've', sigmaMaxx: 3 })).toThrow(
      /ve: unknown parameter 'sigmaMaxx'/,
    );
    expect(() => createSchedule({ name: 've', sigmaMax: '3' })).toThrow(
      /'sigmaMax' must be a finite number/,
    );
    expect(() => createSchedule({ name: 've', sigmaMin: 5, sigmaMax: 3 })).toThrow(
      /sigmaMin < sigmaMax/,
    );
    expect(() => createSchedule({ name: 'vp-linear', betaMin: 5, betaMax: 3 })).toThrow(
      /betaMin < betaMax/,
    );
  });
});
