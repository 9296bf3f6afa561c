/**
 * The schedule registry (the extension point, like tfjs' kernel registry): a schedule is one file
 * under `src/continuous/` plus one line in `BUILTIN` below, and the shared conformance test
 * (`registry.test.ts`) then checks it. Users register their own with `registerSchedule`.
 */
import { CosineSchedule } from './continuous/cosine.js';
import { EDMSchedule } from './continuous/edm.js';
import { LearnedVDMSchedule } from './continuous/learned-vdm.js';
import { LogSNRLinearSchedule } from './continuous/logsnr-linear.js';
import { RectifiedFlowSchedule } from './continuous/rectified-flow.js';
import type { ContinuousSchedule, ScheduleConfig } from './continuous/schedule.js';
import { SubVPSchedule } from './continuous/sub-vp.js';
import { VEGeometricSchedule } from './continuous/ve.js';
import { VPLinearSchedule } from './continuous/vp-linear.js';
import { ScheduleError } from './errors.js';
import type { ScheduleName } from './names.js';

/** Builds a schedule from its parameters (everything in the config except `name`). */
export type ScheduleFactory = (params: Record<string, unknown>) => ContinuousSchedule;

const BUILTIN: Record<string, ScheduleFactory> = {
  'vp-linear': (p) => new VPLinearSchedule(p),
  'sub-vp': (p) => new SubVPSchedule(p),
  ve: (p) => new VEGeometricSchedule(p),
  cosine: (p) => new CosineSchedule(p),
  'logsnr-linear': (p) => new LogSNRLinearSchedule(p),
  edm: (p) => new EDMSchedule(p),
  'vdm-learned': (p) => new LearnedVDMSchedule(p),
  'rectified-flow': (p) => new RectifiedFlowSchedule(p),
};

const registry = new Map<string, ScheduleFactory>(Object.entries(BUILTIN));

/**
 * Adds a schedule under `name`, so `createSchedule({ name, ...params })` builds it and the conformance
 * test covers it. Re-registering a name throws unless `{ replace: true }`.
 *
 * @example
 * registerSchedule('my-linear', (p) => new LogSNRLinearSchedule({ gammaMin: -10, gammaMax: 8, ...p }));
 * createSchedule({ name: 'my-linear' }).logSNR(0); // 10
 */
export function registerSchedule(
  name: ScheduleName,
  factory: ScheduleFactory,
  options: { replace?: boolean } = {},
): void {
  if (!/^[a-z][a-z0-9-]*$/.test(name)) {
    throw new ScheduleError(
      `schedule name '${name}' must be lower-case letters, digits and dashes`,
    );
  }
  if (registry.has(name) && !options.replace) {
    throw new ScheduleError(
      `a schedule named '${name}' is already registered (pass { replace: true } to replace it)`,
    );
  }
  registry.set(name, factory);
}

/**
 * Builds a registered schedule from a config `{ name, ...params }` (what `toConfig()` returns).
 *
 * @example
 * const s = createSchedule({ name: 'vp-linear', betaMin: 0.1, betaMax: 20 });
 * createSchedule(s.toConfig()); // the same schedule
 */
export function createSchedule(config: ScheduleConfig | ScheduleName): ContinuousSchedule {
  const c = typeof config === 'string' ? { name: config } : config;
  const factory = registry.get(c.name);
  if (factory === undefined) {
    throw new ScheduleError(
      `unknown schedule '${c.name}'; registered: ${[...registry.keys()].join(', ')}`,
    );
  }
  const { name: _name, ...params } = c;
  return factory(params);
}

/**
 * The names of every registered schedule.
 *
 * @example
 * listSchedules(); // ['vp-linear', 'sub-vp', 've', 'cosine', 'logsnr-linear', 'edm', 'vdm-learned', 'rectified-flow']
 */
export function listSchedules(): ScheduleName[] {
  return [...registry.keys()] as ScheduleName[];
}
