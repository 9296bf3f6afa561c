import { describe, expect, it } from 'vitest';
import { createSchedule, RectifiedFlowSchedule, sigmaVE } from '../index.js';

describe('rectified-flow schedule', () => {
  it('is the straight path alpha = 1 - tau, sigma = tau, with SD 3 shift and its VE view', () => {
    const s = new RectifiedFlowSchedule({ shift: 3, tMin: 1e-4, tMax: 1 - 1e-4 });
    for (const t of [0, 0.1, 0.5, 0.9, 1]) {
      const u = 1e-4 + (1 - 2e-4) * t;
      const tau = (3 * u) / (1 + 2 * u); // diffusers: shift * s / (1 + (shift - 1) * s)
      const l = s.level(t);
      expect(l.alpha).toBeCloseTo(1 - tau, 14);
      expect(l.sigma).toBeCloseTo(tau, 14);
      expect(l.alpha + l.sigma).toBeCloseTo(1, 14);
      // the VE view sigma_VE = tau / (1 - tau) = exp(-lambda / 2)
      expect(sigmaVE(l)).toBeCloseTo(tau / (1 - tau), 10);
      expect(Math.exp(-0.5 * s.logSNR(t))).toBeCloseTo(tau / (1 - tau), 10);
    }
    expect(createSchedule({ name: 'rectified-flow' }).level(0.5)).toEqual({
      alpha: 0.5,
      sigma: 0.5,
    });
    expect(() => new RectifiedFlowSchedule({ tMax: 1 })).toThrow(/0 < tMin < tMax < 1/);
  });
});
