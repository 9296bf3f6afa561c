import { DiffuseError } from '@diffuse/backend';

/**
 * A schedule was given invalid input (out-of-range time, betas outside (0, 1), non-monotone sigmas,
 * an unknown diffusers config field...). The message says what was wrong; `code` is `INVALID_SCHEDULE`.
 *
 * @example
 * try { createSchedule('cosine').logSNR(2); } catch (e) {
 *   if (e instanceof ScheduleError) console.error(e.message); // cosine: time t = 2 is outside [0, 1]
 * }
 */
export class ScheduleError extends DiffuseError {
  constructor(message: string) {
    super('INVALID_SCHEDULE', message);
  }
}
