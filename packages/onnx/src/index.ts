/**
 * `@diffuse/onnx`: native inference for Diffuse networks. `exportOnnx` writes an MLP, U-Net or
 * classifier as a standard ONNX file (traced from the tfjs model itself); `onnxDenoiser` runs it
 * with ONNX Runtime (`onnxruntime-node`, an optional peer dependency) behind the `Denoiser`
 * interface, so samplers and guidance run unchanged on it; `onnxDenoiserAsync` is the same model as an
 * `AsyncDenoiser` on Node's main thread. In the browser, use `@diffuse/onnx/web` (`onnxDenoiserWeb`).
 *
 * @packageDocumentation
 */
export { type DiffusersExportOptions, exportDiffusersOnnx } from './diffusers.js';
export { onnxDenoiserAsync } from './node-async.js';
export * from './portable.js';
export { OnnxNetwork, type OnnxOptions, onnxDenoiser } from './runtime.js';
