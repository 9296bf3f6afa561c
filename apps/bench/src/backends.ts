/**
 * Switching tfjs backends in Node, recording what each one is (SIMD, threads), and turning the
 * wasm backend's explicit-transpose matMul fix off and on again for one measurement.
 */
import { BackendUnavailableError, initBackend } from '@diffuse/backend';
import * as tf from '@tensorflow/tfjs-core';
import type { BackendRecord } from './results.js';

/** Initialises `name` (wasm or cpu) and returns its record; `available: false` with the reason when it fails. */
export async function useBackend(name: 'wasm' | 'cpu'): Promise<BackendRecord> {
  try {
    const info = await initBackend(name);
    return {
      name: info.name,
      environment: info.environment,
      available: true,
      simd: info.simd,
      threads: info.threads,
      float32: info.float32,
      simdKernels: info.simdKernels,
    };
  } catch (e) {
    const reason = e instanceof BackendUnavailableError ? e.message : (e as Error).message;
    return { name, environment: 'node', available: false, reason };
  }
}

/** Adds `rec` to `list` unless a record of the same backend and environment is there. */
export function recordBackend(list: BackendRecord[], rec: BackendRecord): void {
  if (!list.some((b) => b.name === rec.name && b.environment === rec.environment)) list.push(rec);
}

const MATMUL_KERNELS = ['BatchMatMul', '_FusedMatMul'] as const;
let originals: tf.KernelConfig[] | undefined;

/**
 * Keeps the wasm backend's own matMul kernels before `@diffuse/backend` wraps them (call before the
 * first `initBackend('wasm')`), so `withoutWasmTransposeFix` can measure the difference the fix makes.
 * Returns false when the backend was already initialised (nothing to keep).
 */
export async function keepOriginalWasmMatMul(): Promise<boolean> {
  if (originals !== undefined) return true;
  // @diffuse/backend marks the kernels it wrapped; after that the originals are out of reach.
  if ((globalThis as Record<symbol, unknown>)[Symbol.for('diffuse.wasmKernelsPatched')])
    return false;
  await import('@tensorflow/tfjs-backend-wasm');
  originals = MATMUL_KERNELS.map((n) => tf.getKernel(n, 'wasm')).filter(
    (k): k is tf.KernelConfig => k !== undefined,
  );
  return originals.length === MATMUL_KERNELS.length;
}

/** Runs `fn` with wasm's original (unwrapped) matMul kernels, then puts the fixed ones back. */
export async function withoutWasmTransposeFix<T>(fn: () => Promise<T>): Promise<T> {
  if (originals === undefined)
    throw new Error('keepOriginalWasmMatMul() was not called before initBackend');
  const fixed = MATMUL_KERNELS.map((n) => tf.getKernel(n, 'wasm')).filter(
    (k): k is tf.KernelConfig => k !== undefined,
  );
  const swap = (configs: tf.KernelConfig[]) => {
    for (const c of configs) {
      tf.unregisterKernel(c.kernelName, 'wasm');
      tf.registerKernel(c);
    }
  };
  swap(originals);
  try {
    return await fn();
  } finally {
    swap(fixed);
  }
}

/** Whether the active wasm matMul kernels are the fixed (wrapped) ones. */
export function wasmTransposeFixActive(): boolean {
  if (originals === undefined) return false;
  return MATMUL_KERNELS.some(
    (n, i) => tf.getKernel(n, 'wasm')?.kernelFunc !== originals![i]?.kernelFunc,
  );
}
