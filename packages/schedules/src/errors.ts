import { DiffuseError } from '@diffuse/backend';

/** A schedule was given invalid input (out-of-range time, betas outside (0, 1), bad config...). */
export class ScheduleError extends DiffuseError {
  constructor(message: string) {
    super('INVALID_SCHEDULE', message);
  }
}
