/**
 * `@diffuse/models`: one `Denoiser` interface, exact oracles for Gaussian and Gaussian-mixture data,
 * and trainable tfjs networks.
 *
 * @packageDocumentation
 */
export type { Conditioning, Denoiser } from './denoiser.js';
