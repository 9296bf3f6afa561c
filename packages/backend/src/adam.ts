/**
 * One Adam(W) update of a parameter tensor as ONE kernel on wasm (Kingma & Ba 2015, Algorithm 1;
 * decoupled weight decay: Loshchilov & Hutter 2019):
 *
 *     g <- g s                                   (s: the gradient-clipping scale, or 1)
 *     m' = b1 m + (1 - b1) g,   v' = b2 v + (1 - b2) g^2
 *     p' = p - lr ( (m' / c1) / (sqrt(v' / c2) + eps) + wd p ),   c1 = 1 - b1^t,  c2 = 1 - b2^t
 *
 * Composed of tfjs ops this is ~12 kernels per parameter tensor, each a full pass with a broadcast
 * scalar operand: 105 ms per step for the 2.6M parameters (184 tensors) of the bench U-Net on wasm.
 * The wasm kernel (`adam` in `simd/kernels.wat`) makes one SIMD pass in float32 with the same
 * operations in the same order, so it gives the composed ops' results bit for bit. Other backends,
 * and wasm without the SIMD module, run the composed ops.
 */

import * as tf from '@tensorflow/tfjs-core';
import {
  engine,
  getKernel,
  type KernelFunc,
  registerKernel,
  type Tensor,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { InvalidArgumentError } from './errors.js';
import { Heap, simdKernels, type WasmHeapBackend } from './simd/index.js';

/** Name of the fused kernel: inputs `p`, `m`, `v`, `g` (and `scale`); outputs [p', m', v']. */
export const ADAM_UPDATE = 'DiffuseAdamUpdate';

/** The constants of one Adam step. */
export interface AdamUpdateConfig {
  /** lr of this step (after warm-up and decay). */
  learningRate: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  /** Decoupled weight decay wd (0: plain Adam). */
  weightDecay: number;
  /** Bias corrections c1 = 1 - beta1^t and c2 = 1 - beta2^t of step t. */
  c1: number;
  c2: number;
}

/** The updated parameter and moments (new tensors, owned by the caller). */
export interface AdamUpdate {
  p: Tensor;
  m: Tensor;
  v: Tensor;
}

/**
 * The same step composed of tfjs ops on any backend: what `adamUpdate` runs off wasm, and the
 * reference its kernel is tested against.
 *
 * @example
 * const next = adamUpdateComposed(p, m, v, grad, tf.scalar(0.5), config); // gradient halved first
 */
export function adamUpdateComposed(
  p: Tensor,
  m: Tensor,
  v: Tensor,
  g: Tensor,
  scale: Tensor | null,
  c: AdamUpdateConfig,
): AdamUpdate {
  return tf.tidy(() => {
    const gs = scale === null ? g : tf.mul(g, scale);
    const m2 = tf.add(tf.mul(m, c.beta1), tf.mul(gs, 1 - c.beta1));
    const v2 = tf.add(tf.mul(v, c.beta2), tf.mul(tf.square(gs), 1 - c.beta2));
    let update = tf.div(tf.div(m2, c.c1), tf.add(tf.sqrt(tf.div(v2, c.c2)), c.epsilon));
    if (c.weightDecay > 0) update = tf.add(update, tf.mul(p, c.weightDecay));
    return { p: tf.sub(p, tf.mul(update, c.learningRate)), m: m2, v: v2 };
  });
}

const simdKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const { p, m, v, g, scale } = inputs as Record<string, TensorInfo>;
  const c = attrs as unknown as AdamUpdateConfig;
  const k = simdKernels(backend)!;
  const be = backend as unknown as WasmHeapBackend & {
    typedArrayFromHeap(t: TensorInfo): Float32Array;
  };
  const heap = new Heap(be);
  const shape = [...p!.shape];
  const out = [heap.output(shape), heap.output(shape), heap.output(shape)] as const;
  const s = scale === undefined ? 1 : be.typedArrayFromHeap(scale)[0]!;
  k.adam(
    heap.ptr(p!),
    heap.ptr(m!),
    heap.ptr(v!),
    heap.ptr(g!),
    heap.ptr(out[0]),
    heap.ptr(out[1]),
    heap.ptr(out[2]),
    tf.util.sizeFromShape(shape),
    s,
    c.beta1,
    1 - c.beta1,
    c.beta2,
    1 - c.beta2,
    c.c1,
    c.c2,
    c.epsilon,
    c.weightDecay,
    c.learningRate,
  );
  return [...out];
};

if (getKernel(ADAM_UPDATE, 'wasm') === undefined) {
  registerKernel({ kernelName: ADAM_UPDATE, backendName: 'wasm', kernelFunc: simdKernel });
}

/**
 * One Adam(W) step for one parameter (see the file comment for the math): returns the new
 * parameter value and moments as new tensors; `p`, `m`, `v` and `g` are not changed. `scale`, a
 * scalar tensor, multiplies the gradient first (gradient clipping); null for none. One fused SIMD
 * kernel on wasm, composed tfjs ops elsewhere, with the same float32 results.
 *
 * @example
 * const t = 1;
 * const next = adamUpdate(p, m, v, grad, null, {
 *   learningRate: 1e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0,
 *   c1: 1 - 0.9 ** t, c2: 1 - 0.999 ** t,
 * });
 * p.assign(next.p); m.assign(next.m); v.assign(next.v);
 */
export function adamUpdate(
  p: Tensor,
  m: Tensor,
  v: Tensor,
  g: Tensor,
  scale: Tensor | null,
  config: AdamUpdateConfig,
): AdamUpdate {
  checkAdamInputs('adamUpdate', p, m, v, g, scale);
  if (tf.getBackend() === 'wasm' && simdKernels(tf.backend()) !== null) {
    const [p2, m2, v2] = engine().runKernel(
      ADAM_UPDATE,
      scale === null ? { p, m, v, g } : { p, m, v, g, scale },
      { ...config },
    ) as Tensor[];
    return { p: p2!, m: m2!, v: v2! };
  }
  return adamUpdateComposed(p, m, v, g, scale, config);
}

/** Throws `InvalidArgumentError` unless m, v, g have p's shape and every input is float32. */
function checkAdamInputs(
  fn: string,
  p: Tensor,
  m: Tensor,
  v: Tensor,
  g: Tensor,
  scale: Tensor | null,
): void {
  for (const [name, t] of [
    ['m', m],
    ['v', v],
    ['g', g],
  ] as const) {
    if (!tf.util.arraysEqual(t.shape, p.shape)) {
      throw new InvalidArgumentError(
        `${fn}: ${name} has shape [${t.shape.join(', ')}], the parameter [${p.shape.join(', ')}]`,
      );
    }
  }
  for (const [name, t] of [
    ['p', p],
    ['m', m],
    ['v', v],
    ['g', g],
    ...(scale === null ? [] : ([['scale', scale]] as const)),
  ] as const) {
    if (t.dtype !== 'float32') {
      throw new InvalidArgumentError(`${fn}: ${name} must be float32, got ${t.dtype}`);
    }
  }
  if (scale !== null && scale.size !== 1) {
    throw new InvalidArgumentError(`${fn}: scale must be a scalar, got shape [${scale.shape}]`);
  }
}

/** What `adamUpdateInPlace` needs of the tfjs wasm backend beyond the heap. */
interface RefCountedBackend extends WasmHeapBackend {
  refCount(dataId: object): number;
  typedArrayFromHeap(t: TensorInfo): Float32Array;
}

/**
 * The same Adam(W) step as `adamUpdate`, with the new moments written into the buffers of the
 * variables `m` and `v` themselves (one SIMD pass that reads each value before it overwrites it);
 * returns the new parameter value as a new tensor, for the caller to `assign` (and dispose). This
 * saves two of the three allocations and assigns per parameter and step that `adamUpdate` costs
 * (2 x 4 bytes per parameter through the wasm allocator; ~21 MB per step for the 2.6M parameters
 * of the bench U-Net). The results are bit for bit those of `adamUpdate`.
 *
 * The parameter itself is never overwritten: tfjs-wasm's XNNPACK kernels (Conv2D, BatchMatMul...)
 * keep the weights they packed under the weight tensor's id until that tensor is disposed, so a
 * parameter whose values changed in place would be multiplied with its old values.
 *
 * Tensors are immutable in tfjs, so this only runs where no other tensor can see the change: on
 * wasm with Diffuse's SIMD kernels, when `m` and `v` are each the only holder of their buffer (the
 * backend's reference count is 1: a clone, which shares the buffer on wasm, makes it 2) and no
 * buffer is passed twice. It returns null and changes nothing otherwise; the caller then runs
 * `adamUpdate`.
 *
 * @example
 * const p2 = adamUpdateInPlace(p, m, v, grad, null, config); // m and v updated
 * if (p2 !== null) {
 *   p.assign(p2);
 *   p2.dispose();
 * }
 */
export function adamUpdateInPlace(
  p: Tensor,
  m: tf.Variable,
  v: tf.Variable,
  g: Tensor,
  scale: Tensor | null,
  config: AdamUpdateConfig,
): Tensor | null {
  checkAdamInputs('adamUpdateInPlace', p, m, v, g, scale);
  if (tf.getBackend() !== 'wasm') return null;
  const be = tf.backend() as unknown as RefCountedBackend;
  const k = simdKernels(be);
  if (k === null || typeof be.refCount !== 'function') return null;
  if (p.isDisposed || m.isDisposed || v.isDisposed || g.isDisposed) return null;
  const ids = [p.dataId, m.dataId, v.dataId, g.dataId];
  if (new Set(ids).size !== 4 || be.refCount(m.dataId) !== 1 || be.refCount(v.dataId) !== 1) {
    return null;
  }
  const heap = new Heap(be);
  const out = heap.output([...p.shape]);
  const [pm, pv] = [heap.ptr(m), heap.ptr(v)];
  const s = scale === null ? 1 : be.typedArrayFromHeap(scale)[0]!;
  k.adam(
    heap.ptr(p),
    pm,
    pv,
    heap.ptr(g),
    heap.ptr(out),
    pm,
    pv,
    p.size,
    s,
    config.beta1,
    1 - config.beta1,
    config.beta2,
    1 - config.beta2,
    config.c1,
    config.c2,
    config.epsilon,
    config.weightDecay,
    config.learningRate,
  );
  return engine().makeTensorFromTensorInfo(out) as Tensor;
}
