/**
 * SiLU(x) = x sigmoid(x) (Elfwing et al. 2018, "Sigmoid-weighted linear units"; PyTorch's
 * `torch.nn.SiLU`) as one kernel each way on wasm.
 *
 * Composed of tfjs ops, `tf.mul(x, tf.sigmoid(x))` costs 2 kernels forward and 6 backward (tfjs's
 * gradients of Mul and Sigmoid: dy s, dy x, 1 - s, s (1 - s), their product, and the sum), each a
 * full pass that allocates its result. Here the forward pass is the wasm Sigmoid kernel then one
 * SIMD product into its buffer, and the backward pass the Sigmoid kernel again then one SIMD pass
 * (`silu_grad` in `simd/kernels.wat`) computing
 *
 *     dx = dy s + (dy x) (s (1 - s)),   s = sigmoid(x)
 *
 * in the float32 operations and order of tfjs's composed gradient, so both passes give the composed
 * ops' results bit for bit. Other backends, and wasm without the SIMD module, run the composed ops.
 */
import * as tf from '@tensorflow/tfjs-core';
import {
  engine,
  type GradConfig,
  getGradient,
  getKernel,
  type KernelFunc,
  registerGradient,
  registerKernel,
  type Tensor,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { Heap, simdKernels, type WasmHeapBackend } from './simd/index.js';

/** Name of the forward kernel: input `x`; output x sigmoid(x). */
export const SILU = 'DiffuseSilu';
/** Name of the backward kernel: inputs `dy`, `x`; output dx. */
export const SILU_GRAD = 'DiffuseSiluGrad';

/** The wasm Sigmoid kernel's result for x (a new float32 tensor the caller owns). */
function sigmoid(backend: unknown, x: TensorInfo): TensorInfo {
  const k = getKernel('Sigmoid', 'wasm')!;
  // biome-ignore lint/suspicious/noExplicitAny: the kernel signature takes the concrete backend.
  return k.kernelFunc({ inputs: { x }, backend: backend as any, attrs: {} }) as TensorInfo;
}

const forward: KernelFunc = ({ inputs, backend }) => {
  const { x } = inputs as { x: TensorInfo };
  const k = simdKernels(backend)!;
  const heap = new Heap(backend as unknown as WasmHeapBackend);
  const s = sigmoid(backend, x);
  k.mul(heap.ptr(s), heap.ptr(x), tf.util.sizeFromShape(x.shape)); // s <- s x = x sigmoid(x)
  return s;
};

const backward: KernelFunc = ({ inputs, backend }) => {
  const { dy, x } = inputs as { dy: TensorInfo; x: TensorInfo };
  const k = simdKernels(backend)!;
  const heap = new Heap(backend as unknown as WasmHeapBackend);
  const s = sigmoid(backend, x);
  k.silu_grad(heap.ptr(x), heap.ptr(dy), heap.ptr(s), tf.util.sizeFromShape(x.shape));
  return s;
};

/** dx of SiLU from composed tfjs ops, in the order of tfjs's own gradients of mul(x, sigmoid(x)). */
function composedGrad(dy: Tensor, x: Tensor): Tensor {
  return tf.tidy(() => {
    const s = tf.sigmoid(x);
    return tf.add(tf.mul(dy, s), tf.mul(tf.mul(dy, x), tf.mul(s, tf.sub(1, s))));
  });
}

if (getKernel(SILU, 'wasm') === undefined) {
  registerKernel({ kernelName: SILU, backendName: 'wasm', kernelFunc: forward });
  registerKernel({ kernelName: SILU_GRAD, backendName: 'wasm', kernelFunc: backward });
}
if (getGradient(SILU) === undefined) {
  const grad: GradConfig = {
    kernelName: SILU,
    inputsToSave: ['x'],
    gradFunc: (dy, saved) => {
      const [x] = saved as [Tensor];
      return {
        x: () =>
          usable(x)
            ? (engine().runKernel(SILU_GRAD, { dy: dy as Tensor, x }) as Tensor)
            : composedGrad(dy as Tensor, x),
      };
    },
  };
  registerGradient(grad);
}

/** Whether the fused kernels can run on x here. */
function usable(x: Tensor): boolean {
  return x.dtype === 'float32' && tf.getBackend() === 'wasm' && simdKernels(tf.backend()) !== null;
}

/**
 * SiLU(x) = x sigmoid(x), elementwise, differentiable: one fused kernel each way on wasm (see the
 * file comment), `tf.mul(x, tf.sigmoid(x))` elsewhere, with the same float32 results.
 *
 * @example
 * const y = silu(tf.tensor1d([-1, 0, 2])); // [-0.2689, 0, 1.7616]
 */
export function silu(x: Tensor): Tensor {
  if (!usable(x)) return tf.mul(x, tf.sigmoid(x));
  return engine().runKernel(SILU, { x }) as Tensor;
}
