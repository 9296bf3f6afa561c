import { DiffuseError } from '@diffuse/backend';

/**
 * A model was given an invalid definition or input: mixture parameters that are not a distribution,
 * a covariance that is not positive definite, a config that does not describe a network, a tensor
 * of the wrong shape.
 *
 * @example
 * try { new GaussianMixture({ weights: [1], means: [[0]], covs: [[[-1]]] }); }
 * catch (e) { if (e instanceof ModelError) console.error(e.message); }
 */
export class ModelError extends DiffuseError {
  constructor(message: string) {
    super('INVALID_MODEL', message);
  }
}
