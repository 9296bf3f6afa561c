/**
 * Schedule names as types: `createSchedule('cosine')` and `{ name: 'cosine', ... }` configs
 * autocomplete the built-in names and a typo fails to compile. A schedule you register yourself joins
 * them by declaration merging, next to its `registerSchedule` call:
 *
 * @example
 * declare module '@diffuse/schedules' {
 *   interface ScheduleNames {
 *     'my-linear': true;
 *   }
 * }
 * registerSchedule('my-linear', (p) => new LogSNRLinearSchedule({ gammaMin: -10, gammaMax: 8, ...p }));
 * createSchedule('my-linear');
 */

/** The built-in schedules' names, in registration order (`pnpm new schedule` adds one). */
export const BUILTIN_SCHEDULE_NAMES = [
  'vp-linear',
  'sub-vp',
  've',
  'cosine',
  'logsnr-linear',
  'edm',
  'vdm-learned',
  'rectified-flow',
  // new schedule names above this line
] as const;

/** A built-in schedule's name. */
export type BuiltinScheduleName = (typeof BUILTIN_SCHEDULE_NAMES)[number];

/**
 * Every schedule name `createSchedule` accepts, as the keys of this interface: the built-ins, plus the
 * names your modules add by declaration merging (see the module comment).
 */
export interface ScheduleNames extends Record<BuiltinScheduleName, true> {}

/** A schedule name: a key of `ScheduleNames`. */
export type ScheduleName = keyof ScheduleNames & string;
