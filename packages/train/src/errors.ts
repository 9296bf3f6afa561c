import { DiffuseError } from '@diffuse/backend';

/**
 * Training could not go on: the loss or a gradient became NaN or infinite, a parameter set does not
 * match what the optimizer or checkpoint holds, or the options are inconsistent.
 *
 * @example
 * try { await trainer.run(1000); } catch (e) { if (e instanceof TrainError) console.error(e.message); }
 */
export class TrainError extends DiffuseError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('TRAINING_FAILED', message, options);
  }
}

/**
 * A checkpoint could not be written or read back: a missing or corrupt file, a checksum or size
 * mismatch, or a checkpoint made for different parameters.
 *
 * @example
 * try { await loadCheckpoint(store); } catch (e) { if (e instanceof CheckpointError) console.error(e.message); }
 */
export class CheckpointError extends DiffuseError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CHECKPOINT_FAILED', message, options);
  }
}
