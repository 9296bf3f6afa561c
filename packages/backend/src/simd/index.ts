/**
 * Our own WebAssembly SIMD kernels, run on the tfjs wasm backend's heap (`kernels.wat`): GroupNorm
 * passes, the Adam step, stride-1 conv2d and its filter gradient, and matrix products.
 *
 * tfjs-wasm 4.22 offers no way to add C++ kernels, and a JavaScript loop over the heap costs
 * 2-6 ns per value per pass here (one scalar load, store and bounds check at a time), 10-30x a SIMD
 * loop; and XNNPACK repacks a convolution's filter on every training step. The module here is
 * ~4 KB of hand-written WebAssembly text (assembled by `scripts/build-simd.mjs` with wabt, the
 * bytes committed in `kernels.generated.ts`) that imports the backend's `WebAssembly.Memory`, so it
 * reads and writes tensors in place by their heap offsets: no copies, no allocation, no state.
 *
 * Available when the backend exposes its memory as a non-shared `WebAssembly.Memory` and the
 * engine runs wasm SIMD (Node 16.4+, every current browser). Otherwise (tfjs-wasm's threaded build
 * has shared memory, which this module does not import) `simdKernels` returns null and callers keep
 * their JavaScript loops.
 */

import { backend as activeBackend, type TensorInfo } from '@tensorflow/tfjs-core';
import { SIMD_KERNELS_BASE64 } from './kernels.generated.js';

/** The module's exports. Every pointer is a byte offset into the backend's heap. */
export interface SimdKernels {
  mul(y: number, w: number, len: number): void;
  silu_grad(x: number, dy: number, s: number, len: number): void;
  gn_sums(x: number, n: number, s: number, c: number, sum: number, sq: number): void;
  gn_affine(
    x: number,
    z: number,
    n: number,
    s: number,
    c: number,
    meanHi: number,
    meanLo: number,
    scale: number,
    shift: number,
  ): void;
  gn_backward1(
    x: number,
    dy: number,
    sig: number,
    dx: number,
    n: number,
    s: number,
    c: number,
    silu: number,
    meanHi: number,
    meanLo: number,
    rstd: number,
    gamma: number,
    beta: number,
    s1: number,
    s2: number,
  ): void;
  gn_backward2(
    x: number,
    dx: number,
    n: number,
    s: number,
    c: number,
    gr: number,
    k1: number,
    meanHi: number,
    meanLo: number,
    k2: number,
  ): void;
  conv2d_filter_grad_tap(
    xp: number,
    dy: number,
    dw: number,
    nb: number,
    oh: number,
    ow: number,
    ci: number,
    co: number,
    xsn: number,
    xsh: number,
    accumulate: number,
  ): void;
  col_sums(x: number, acc: number, outer: number, inner: number): void;
  copy_rows(src: number, dst: number, rows: number, row: number, stride: number): void;
  pack8(w: number, out: number, rows: number, co: number): void;
  pack8t(w: number, out: number, rows: number, co: number): void;
  conv2d(
    xp: number,
    w: number,
    y: number,
    nb: number,
    oh: number,
    ow: number,
    ci: number,
    co: number,
    kh: number,
    kw: number,
    xsn: number,
    xsh: number,
  ): void;
  adam(
    p: number,
    m: number,
    v: number,
    g: number,
    po: number,
    mo: number,
    vo: number,
    len: number,
    gs: number,
    b1: number,
    om1: number,
    b2: number,
    om2: number,
    c1: number,
    c2: number,
    eps: number,
    wd: number,
    lr: number,
  ): void;
}

let compiled: WebAssembly.Module | null | undefined;
const instances = new WeakMap<object, SimdKernels | null>();

function decode(base64: string): Uint8Array {
  const text = atob(base64);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}

/**
 * Compiles the module ahead of use (`initBackend('wasm')` awaits this). Browsers refuse to compile
 * modules over 4 KB synchronously on the main thread, and this one is a little over: where this
 * was not called, `simdKernels` compiles synchronously, which works in Node and in workers; on a
 * page's main thread it fails and the kernels stay off (their callers keep their other paths).
 */
export async function compileSimdKernels(): Promise<void> {
  if (compiled !== undefined) return;
  try {
    compiled = await WebAssembly.compile(decode(SIMD_KERNELS_BASE64) as BufferSource);
  } catch {
    compiled = null; // no wasm SIMD in this engine
  }
}

/** The compiled module (synchronously, if `compileSimdKernels` has not run). */
function module(): WebAssembly.Module | null {
  if (compiled === undefined) {
    try {
      compiled = new WebAssembly.Module(decode(SIMD_KERNELS_BASE64) as BufferSource);
    } catch {
      compiled = null; // no wasm SIMD in this engine
    }
  }
  return compiled;
}

/**
 * The SIMD kernels bound to this tfjs wasm backend's memory, or null when they cannot run here
 * (not a wasm backend, shared memory, no SIMD). Instantiated once per backend instance.
 *
 * @example
 * const k = simdKernels(tf.backend());
 * if (k) k.mul(ptrY, ptrW, n);
 */
export function simdKernels(backend: unknown): SimdKernels | null {
  if (typeof backend !== 'object' || backend === null) return null;
  const cached = instances.get(backend);
  if (cached !== undefined) return cached;
  let kernels: SimdKernels | null = null;
  const memory = (backend as { wasm?: { asm?: { memory?: unknown } } }).wasm?.asm?.memory;
  const mod = memory instanceof WebAssembly.Memory ? module() : null;
  if (mod !== null) {
    try {
      kernels = new WebAssembly.Instance(mod, { env: { memory: memory as WebAssembly.Memory } })
        .exports as unknown as SimdKernels;
    } catch {
      kernels = null; // e.g. the threaded build's shared memory
    }
  }
  instances.set(backend, kernels);
  return kernels;
}

/**
 * Turns the SIMD kernels off (or back on) for one backend instance, so that tests can compare them
 * with the paths they replace on the same backend. The public form is `useSimdKernels`.
 */
export function setSimdKernelsEnabled(backend: object, enabled: boolean): void {
  instances.delete(backend);
  if (!enabled) instances.set(backend, null);
}

/** What the SIMD kernels' callers need of the tfjs wasm backend. */
export interface WasmHeapBackend {
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
  disposeData(dataId: object): boolean;
  getMemoryOffset(dataId: object): number;
  wasm: { asm: { memory: WebAssembly.Memory } };
}

/**
 * Heap access for one kernel call: tensor offsets, and scratch arrays (float32 tensors the backend
 * allocates, freed together by `free`). Views are taken from the memory's current buffer, so they
 * stay valid only until the next allocation (which can grow the heap).
 */
export class Heap {
  private readonly temps: TensorInfo[] = [];
  constructor(private readonly be: WasmHeapBackend) {}

  /** Byte offset of a tensor's data. */
  ptr(t: TensorInfo): number {
    return this.be.getMemoryOffset(t.dataId);
  }

  /** A new float32 tensor (the caller owns it; it is not scratch). */
  output(shape: number[]): TensorInfo {
    return this.be.makeOutput(shape, 'float32');
  }

  /** Scratch for `length` float32 values: its byte offset. */
  f32(length: number): number {
    const t = this.be.makeOutput([Math.max(1, length)], 'float32');
    this.temps.push(t);
    return this.ptr(t);
  }

  /** Scratch for `length` float64 values: its byte offset, 8-byte aligned. */
  f64(length: number): number {
    const t = this.be.makeOutput([2 * Math.max(1, length) + 1], 'float32');
    this.temps.push(t);
    const at = this.ptr(t);
    return at + (at & 7); // heap blocks are at least 4-byte aligned
  }

  view32(ptr: number, length: number): Float32Array {
    return new Float32Array(this.be.wasm.asm.memory.buffer, ptr, length);
  }

  view64(ptr: number, length: number): Float64Array {
    return new Float64Array(this.be.wasm.asm.memory.buffer, ptr, length);
  }

  /** Frees the scratch arrays. */
  free(): void {
    for (const t of this.temps) this.be.disposeData(t.dataId);
    this.temps.length = 0;
  }
}

/**
 * Turns Diffuse's own SIMD kernels off (or back on) on the active backend: GroupNorm, Adam, conv2d
 * and matMul then take the paths they replace (XNNPACK, tfjs ops, JavaScript loops), with the same
 * results up to float32 rounding. For benchmarks (the bench's `no-simd-kernels` rows) and for
 * debugging. `initBackend` turns them on again. No effect on backends other than wasm.
 *
 * @example
 * useSimdKernels(false);
 * const slow = await timeStep(); // the step without Diffuse's SIMD kernels
 * useSimdKernels(true);
 */
export function useSimdKernels(enabled: boolean): void {
  setSimdKernelsEnabled(activeBackend(), enabled);
}
