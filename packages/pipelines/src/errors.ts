import { DiffuseError } from '@diffuse/backend';

/**
 * A pipeline was given inputs it cannot run: embeddings of the wrong shape, a missing negative
 * prompt for guidance, a strength outside [0, 1], sizes the VAE cannot make.
 *
 * @example
 * try { await textToImage(model, options); } catch (e) { if (e instanceof PipelineError) console.error(e.message); }
 */
export class PipelineError extends DiffuseError {
  constructor(message: string) {
    super('INVALID_PIPELINE_INPUT', message);
  }
}
