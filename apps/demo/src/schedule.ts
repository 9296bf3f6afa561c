/**
 * The schedules the page offers, as functions of t in [0, 1] -> noise level (alpha, sigma): the
 * diffusers beta tables of `@diffuse/schedules` (T = 1000 training steps, t = index / (T - 1)).
 */
import { BETA_SCHEDULES, DiscreteSchedule, type NoiseLevel, logSNRFromLevel } from '@diffuse/schedules';

export interface DemoSchedule {
  name: string;
  level(t: number): NoiseLevel<number>;
}

const T = 1000;

function discrete(betaSchedule: (typeof BETA_SCHEDULES)[number]): DemoSchedule {
  const s = DiscreteSchedule.fromConfig({ numTrainTimesteps: T, betaSchedule });
  return { name: betaSchedule, level: (t) => s.levelAt(Math.min(1, Math.max(0, t)) * (T - 1)) };
}

/** Offered schedules; the first is the default (the cosine schedule keeps some signal longest). */
export const SCHEDULES: DemoSchedule[] = [
  discrete('squaredcos_cap_v2'),
  ...BETA_SCHEDULES.filter((b) => b !== 'squaredcos_cap_v2').map(discrete),
];

/** alpha, sigma and logSNR on a grid of t, for plotting. */
export function scheduleCurves(s: DemoSchedule, n = 101): { t: number[]; alpha: number[]; sigma: number[]; logSNR: number[] } {
  const t: number[] = [];
  const alpha: number[] = [];
  const sigma: number[] = [];
  const logSNR: number[] = [];
  for (let i = 0; i < n; i++) {
    const ti = i / (n - 1);
    const l = s.level(ti);
    t.push(ti);
    alpha.push(l.alpha);
    sigma.push(l.sigma);
    logSNR.push(logSNRFromLevel(l));
  }
  return { t, alpha, sigma, logSNR };
}
