import { DiffuseError } from '@diffuse/backend';

/**
 * A data set could not be loaded or used as asked: a missing or malformed file, a batch size larger
 * than the data set, an iterator state that does not belong to this data set.
 *
 * @example
 * try { new ShuffledBatches(mnist, { batchSize: 20_000, seed: 0 }); }
 * catch (e) { if (e instanceof DataError) console.error(e.message); }
 */
export class DataError extends DiffuseError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('INVALID_DATA', message, options);
  }
}
