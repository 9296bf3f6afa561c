import { DiffuseError } from '@diffuse/backend';

/**
 * A model was given an invalid definition or input: mixture parameters that are not a distribution,
 * a covariance that is not positive definite, a config that does not describe a network, a tensor
 * of the wrong shape, weights that do not match their config.
 *
 * @example
 * try { new GaussianMixture({ weights: [1], means: [[0]], covs: [[[-1]]] }); }
 * catch (e) { if (e instanceof ModelError) console.error(e.message); }
 */
export class ModelError extends DiffuseError {
  constructor(message: string, options?: { code?: string; cause?: unknown }) {
    super(options?.code ?? 'INVALID_MODEL', message, options);
  }
}

/**
 * A network config (from a file, a JSON, a caller) is invalid or over the parameter budget:
 * `field` is the dotted path of the offending key (`mlp.width`, `unet.imageShape[0]`, or `maxParams`
 * for a config that is well-formed but larger than allowed) and `value` what it held.
 *
 * @example
 * try { createModel(JSON.parse(text)); }
 * catch (e) { if (e instanceof ModelConfigError) console.error(e.field, e.message); }
 */
export class ModelConfigError extends ModelError {
  readonly field: string;
  readonly value: unknown;
  constructor(field: string, value: unknown, message: string) {
    super(message, { code: 'INVALID_MODEL_CONFIG' });
    this.field = field;
    this.value = value;
  }
}
