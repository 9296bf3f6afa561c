/**
 * The part of `@diffuse/onnx`'s surface that runs anywhere (no Node API): export, the ONNX graph
 * writer, the kernel tracer, the async runtime core and the errors. Both entries re-export it:
 * `index.ts` (Node) and `web.ts` (browser), so the two cannot drift apart.
 */
export {
  AsyncOnnxNetwork,
  type DenoiserInfo,
  type DenoiserSource,
  type OnnxAsyncDenoiser,
  type OnnxFileInfo,
  type OrtModule,
  type OrtSessionLike,
  type OrtTensorLike,
  readOnnxInfo,
} from './async-runtime.js';
export { OnnxError } from './errors.js';
export {
  CLASSIFIER_INPUTS,
  DENOISER_INPUTS,
  type ExportableNetwork,
  type ExportOptions,
  exportOnnx,
} from './export.js';
export { BATCH_DIM, SUPPORTED_KERNELS, type ToOnnxOptions, toOnnx } from './onnx-graph.js';
export {
  type TracedConstant,
  type TracedGraph,
  type TracedNode,
  type TracedValue,
  traceKernels,
} from './trace.js';
