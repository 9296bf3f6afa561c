/**
 * The schedules the page offers, as functions of t in [0, 1] -> noise level (alpha, sigma): every
 * continuous schedule registered in `@diffuse/schedules` (with its default parameters), then the
 * diffusers beta tables (T = 1000 training steps, t = index / (T - 1)).
 */
import {
  BETA_SCHEDULES,
  createSchedule,
  DiscreteSchedule,
  listSchedules,
  logSNRFromLevel,
  type NoiseLevel,
  type ScheduleName,
} from '@diffuse/schedules';

export interface DemoSchedule {
  name: string;
  /** alpha^2 + sigma^2 = 1. */
  variancePreserving: boolean;
  level(t: number): NoiseLevel<number>;
}

/** Schedules with trainable parameters (the learned VDM schedule) belong to training, not to this view. */
const SKIP = new Set(['vdm-learned']);

function continuous(name: ScheduleName): DemoSchedule {
  const s = createSchedule(name);
  return { name, variancePreserving: s.variancePreserving, level: (t) => s.level(t) };
}

const T = 1000;

function discrete(betaSchedule: (typeof BETA_SCHEDULES)[number]): DemoSchedule {
  const s = DiscreteSchedule.fromConfig({ numTrainTimesteps: T, betaSchedule });
  return {
    name: `diffusers ${betaSchedule} (T=${T})`,
    variancePreserving: true,
    level: (t) => s.levelAt(Math.min(1, Math.max(0, t)) * (T - 1)),
  };
}

/** Offered schedules; the first is the default. */
export const SCHEDULES: DemoSchedule[] = [
  ...listSchedules()
    .filter((n) => !SKIP.has(n))
    .sort((a, b) => (a === 'cosine' ? -1 : b === 'cosine' ? 1 : 0))
    .map(continuous),
  ...BETA_SCHEDULES.map(discrete),
];

/** alpha, sigma and logSNR on a grid of t, for plotting. */
export function scheduleCurves(
  s: DemoSchedule,
  n = 101,
): { t: number[]; alpha: number[]; sigma: number[]; logSNR: number[] } {
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
