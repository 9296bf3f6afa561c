/**
 * `@diffuse/pipelines`: diffusers-style pipelines on diffusers checkpoints (pixel-space DDPM/DDIM,
 * latent text-to-image and image-to-image from prompt embeddings), on any sampler of
 * `@diffuse/samplers` and the guidance of `@diffuse/guidance`, with progress and cancellation.
 *
 * @packageDocumentation
 */
export { PipelineError } from './errors.js';
export {
  type ImageToImageOptions,
  imageToImage,
  type LatentModel,
  type LatentResult,
  type PipelineOptions,
  type PipelineProgress,
  type PixelPipelineOptions,
  pixelPipeline,
  type TextToImageOptions,
  textToImage,
} from './pipelines.js';
