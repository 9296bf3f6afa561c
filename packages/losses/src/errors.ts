import { DiffuseError } from '@diffuse/backend';

/**
 * A loss, weighting or training-time sampler was given invalid input: a bad shape, a logSNR out of
 * range, a schedule whose logSNR does not decrease, a weighting that is negative or not finite...
 * The message names the argument and what was wrong with it.
 *
 * @example
 * try { minSNRWeighting(-1); } catch (e) { if (e instanceof LossError) console.error(e.message); }
 */
export class LossError extends DiffuseError {
  constructor(message: string) {
    super('INVALID_LOSS_ARGUMENT', message);
  }
}
