import { DiffuseError } from '@diffuse/backend';

/**
 * Guidance was configured or called with invalid input: a guidance scale that is not finite, a class
 * label out of range, a mask whose shape does not match the image, a missing `cond.labels`...
 * `code` is `INVALID_GUIDANCE`; the message says which argument and what was expected.
 *
 * @example
 * try { classifierFreeGuidance(model, { guidanceScale: Number.NaN }); }
 * catch (e) { if (e instanceof GuidanceError) console.error(e.message); }
 */
export class GuidanceError extends DiffuseError {
  constructor(message: string) {
    super('INVALID_GUIDANCE', message);
  }
}
