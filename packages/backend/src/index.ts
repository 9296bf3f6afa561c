/**
 * `@diffuse/backend`: the pluggable tensor backend every Diffuse package runs on.
 *
 * - `initBackend(kind)` chooses and initialises wasm, webgl, webgpu or cpu, and reports capabilities.
 * - Importing this package registers tfjs gradients, so training works with tfjs-core alone.
 * - On wasm, it adds the missing `Conv2DBackpropFilter` kernel and fast transposed matMuls.
 * - `groupNorm(x, gamma, beta, { groups, activation: 'silu' })`: GroupNorm (+ SiLU) as one kernel
 *   each way on wasm and cpu, with its analytic gradient.
 * - `adamUpdate(p, m, v, g, scale, config)`: one Adam(W) step of one parameter, one SIMD kernel on wasm;
 *   `adamUpdateInPlace` writes it into the variables' own buffers when nothing else can see them.
 * - `silu(x)`: x sigmoid(x), one kernel each way on wasm.
 * - `Random` gives seeded noise that is identical on every backend.
 * - Test helpers: `assertNoLeaks`, `readFloat32`, `maxAbsDiff`, and the seeded fuzz harness `Fuzzer`.
 *
 * @packageDocumentation
 */
import './gradients.js';

export {
  ADAM_UPDATE,
  type AdamUpdate,
  type AdamUpdateConfig,
  adamUpdate,
  adamUpdateComposed,
  adamUpdateInPlace,
} from './adam.js';
export {
  BackendUnavailableError,
  DiffuseError,
  InvalidArgumentError,
  TensorLeakError,
} from './errors.js';
export {
  GROUP_NORM,
  GROUP_NORM_GRAD,
  type GroupNormActivation,
  type GroupNormOptions,
  groupNorm,
  groupNormComposed,
} from './group-norm.js';
export {
  AUTO_ORDER,
  type BackendInfo,
  type BackendKind,
  type BackendName,
  type InitBackendOptions,
  initBackend,
  isFallbackAdapter,
  isNode,
  isSoftwareRenderer,
} from './init.js';
export {
  BACKEND_PACKAGES,
  type BackendPackage,
  provideBackendPackage,
} from './packages.js';
export { Random } from './random.js';
export { SILU, SILU_GRAD, silu } from './silu.js';
export { useSimdKernels } from './simd/index.js';
export {
  assertNoLeaks,
  assertNoLeaksSync,
  Fuzzer,
  type FuzzerOptions,
  type FuzzOutcome,
  liveTensors,
  maxAbsDiff,
  readArray,
  readFloat32,
} from './testing.js';
export { installWasmKernelFixes } from './wasm-kernels.js';
