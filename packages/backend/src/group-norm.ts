/**
 * GroupNorm with an optional fused SiLU as ONE tfjs kernel per direction (Wu & He 2018, eq. 1-2;
 * the normalisation of every DDPM / ADM U-Net block, followed there by SiLU).
 *
 * For x of shape [N, ...spatial, C] (channels last), C split into G groups of C/G channels, and
 * m = (spatial size) * C / G values per (example n, group g):
 *
 *     mu_ng = mean(x_n,.,g),  var_ng = mean((x - mu_ng)^2),  xhat = (x - mu_ng) / sqrt(var_ng + eps)
 *     z = gamma_c xhat + beta_c,  y = z (activation 'none') or y = z sigmoid(z) (activation 'silu')
 *
 * Built from tfjs ops this is ~10 kernels forward (moments' Mean, Sub, Square, Mean, then Sub, Mul,
 * Rsqrt, Mul, Add, Sigmoid, Mul) and ~25 backward, each a full memory pass, many with slow
 * broadcasting on wasm: 30-40 ms per U-Net block at batch 32. Here the forward is one kernel (a
 * statistics pass, an output pass, and for SiLU the wasm Sigmoid kernel and a product pass) and the
 * backward one kernel (a statistics pass, two gradient passes) with the analytic gradient
 * (dz = dy * silu'(z), silu'(z) = s (1 + z (1 - s)), s = sigmoid(z)):
 *
 *     dbeta_c  = sum_{n,p} dz,   dgamma_c = sum_{n,p} dz xhat
 *     dx = rstd_ng (gamma_c dz - mean_g(gamma dz) - xhat mean_g(gamma dz xhat))
 *
 * (the backward of batch norm, with the statistics per (n, g): Ioffe & Szegedy 2015, sec. 3; the
 * same formula as PyTorch's native_group_norm_backward). Statistics are recomputed in the backward
 * kernel from the saved x, gamma and beta, so no extra tensors are kept for the tape.
 *
 * Kernels: on wasm, when the channel count is a multiple of 4, the passes of our SIMD module
 * (`simd/kernels.wat`: `gn_sums`, `gn_affine`, `gn_backward1`, `gn_backward2`, `mul`) on the heap in
 * place; otherwise plain JavaScript loops on the backend's Float32Array memory, registered for `wasm`
 * (the heap, views from `typedArrayFromHeap`) and `cpu`. Sums accumulate in float64, so the
 * result is at least as accurate as the composed float32 ops. On wasm, sigmoid(z) comes from the
 * backend's vectorised Sigmoid kernel (a JavaScript Math.exp loop measured ~8x slower); cpu uses
 * Math.exp. Other backends (webgl, webgpu) get the same math composed from tfjs ops, differentiated
 * by tfjs autodiff.
 */

import * as tf from '@tensorflow/tfjs-core';
import {
  type DataType,
  engine,
  getKernel,
  type KernelConfig,
  type KernelFunc,
  type NamedAttrMap,
  registerGradient,
  registerKernel,
  type Tensor,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { InvalidArgumentError } from './errors.js';
import { Heap, type SimdKernels, simdKernels, type WasmHeapBackend } from './simd/index.js';

/** Name of the forward kernel: inputs `x`, `gamma`, `beta`; attrs `groups`, `epsilon`, `activation`. */
export const GROUP_NORM = 'DiffuseGroupNorm';
/** Name of the backward kernel: inputs `x`, `gamma`, `beta`, `dy`; outputs [dx, dgamma, dbeta]. */
export const GROUP_NORM_GRAD = 'DiffuseGroupNormGrad';

/** The activation applied after the affine transform. */
export type GroupNormActivation = 'none' | 'silu';

/** Options of `groupNorm`. */
export interface GroupNormOptions {
  /** Number of channel groups G; must divide the channel count (the last axis). */
  groups: number;
  /** Added to the variance before the square root (default 1e-5, as PyTorch's GroupNorm). */
  epsilon?: number;
  /** 'silu' fuses y = z sigmoid(z) after the affine transform (default 'none'). */
  activation?: GroupNormActivation;
}

interface Attrs {
  groups: number;
  epsilon: number;
  activation: GroupNormActivation;
}

/** Sizes of a channels-last tensor viewed as [n, s, c]. */
interface Dims {
  n: number;
  s: number;
  c: number;
  groups: number;
}

function dimsOf(shape: readonly number[], groups: number): Dims {
  const n = shape[0]!;
  const c = shape[shape.length - 1]!;
  let s = 1;
  for (let i = 1; i < shape.length - 1; i++) s *= shape[i]!;
  return { n, s, c, groups };
}

/** Statistics of each (example, channel)'s group, [n * c]: the mean and 1 / sqrt(var + eps). */
interface Stats {
  mean: Float64Array;
  rstd: Float64Array;
}

/**
 * Per example b and channel k, the shifted sums sum_p (x - K) and sum_p (x - K)^2 in float64 into
 * `sum` and `sumSq` [n * c], K = x[b, 0, k] the channel's first value in the example (the shifted-data
 * algorithm, so a large mean does not cancel the variance: Chan, Golub & LeVeque 1983). The SIMD
 * kernel `gn_sums` computes the same sums.
 */
function channelSums(x: Float32Array, d: Dims, sum: Float64Array, sumSq: Float64Array): void {
  const { n, s, c } = d;
  for (let b = 0; b < n; b++) {
    const base = b * s * c;
    const end = base + s * c;
    const at = b * c;
    for (let k = 0; k < c; k++) {
      const shift = x[base + k]!;
      let s1 = 0;
      let s2 = 0;
      for (let off = base + k; off < end; off += c) {
        const v = x[off]! - shift;
        s1 += v;
        s2 += v * v;
      }
      sum[at + k] = s1;
      sumSq[at + k] = s2;
    }
  }
}

/**
 * Group means and variances from the channels' shifted sums (`channelSums`): the sums are pooled
 * around a common shift K_g (the group's first channel), (x - K_g) = (x - K_k) + (K_k - K_g).
 */
function groupStats(
  x: Float32Array,
  sum: Float64Array,
  sumSq: Float64Array,
  d: Dims,
  eps: number,
): Stats {
  const { n, s, c, groups } = d;
  const cg = c / groups;
  const m = s * cg;
  const mean = new Float64Array(n * c);
  const rstd = new Float64Array(n * c);
  for (let b = 0; b < n; b++) {
    const base = b * s * c;
    const at = b * c;
    for (let g = 0; g < groups; g++) {
      const kg = x[base + g * cg]!;
      let s1 = 0;
      let s2 = 0;
      for (let k = g * cg; k < (g + 1) * cg; k++) {
        const delta = x[base + k]! - kg;
        s1 += sum[at + k]! + s * delta;
        s2 += sumSq[at + k]! + 2 * delta * sum[at + k]! + s * delta * delta;
      }
      const meanShifted = s1 / m;
      const variance = Math.max(0, s2 / m - meanShifted * meanShifted);
      const r = 1 / Math.sqrt(variance + eps);
      for (let k = g * cg; k < (g + 1) * cg; k++) {
        mean[at + k] = kg + meanShifted;
        rstd[at + k] = r;
      }
    }
  }
  return { mean, rstd };
}

/** Group statistics of x by JavaScript loops. */
function statsJs(x: Float32Array, d: Dims, eps: number): Stats {
  const sum = new Float64Array(d.n * d.c);
  const sumSq = new Float64Array(d.n * d.c);
  channelSums(x, d, sum, sumSq);
  return groupStats(x, sum, sumSq, d, eps);
}

/** z = gamma xhat + beta into `z` (same layout as x). */
function affine(
  x: Float32Array,
  gamma: Float32Array,
  beta: Float32Array,
  st: Stats,
  z: Float32Array,
  d: Dims,
): void {
  const { n, s, c } = d;
  const scale = new Float64Array(c);
  const shift = new Float64Array(c);
  for (let b = 0; b < n; b++) {
    for (let k = 0; k < c; k++) {
      scale[k] = gamma[k]! * st.rstd[b * c + k]!;
      shift[k] = beta[k]! - st.mean[b * c + k]! * scale[k]!;
    }
    const end = (b + 1) * s * c;
    for (let off = b * s * c; off < end; off += c) {
      for (let k = 0; k < c; k++) z[off + k] = x[off + k]! * scale[k]! + shift[k]!;
    }
  }
}

/** y <- y sigmoid(y) in place, with sigmoid(y) from `sig` when given (a backend's fast kernel). */
function siluInPlace(y: Float32Array, sig: Float32Array | null): void {
  if (sig) {
    for (let i = 0; i < y.length; i++) y[i]! *= sig[i]!;
  } else {
    for (let i = 0; i < y.length; i++) {
      const z = y[i]!;
      y[i] = z / (1 + Math.exp(-z));
    }
  }
}

/**
 * Backward pass: dx (same layout as x), dgamma and dbeta [c]. With activation 'silu', `sig` may hold
 * sigmoid(z) (from a backend's fast kernel); otherwise it is computed here.
 */
function backward(
  x: Float32Array,
  gamma: Float32Array,
  beta: Float32Array,
  dy: Float32Array,
  sig: Float32Array | null,
  dx: Float32Array,
  dgamma: Float32Array,
  dbeta: Float32Array,
  st: Stats,
  d: Dims,
  attrs: Attrs,
): void {
  const { n, s, c, groups } = d;
  const cg = c / groups;
  const m = s * cg;
  const silu = attrs.activation === 'silu';
  // Per channel of the current example: xhat = x a + o (a = rstd, o = -mean rstd).
  const a = new Float64Array(c);
  const o = new Float64Array(c);
  const gam = Float64Array.from(gamma);
  const bet = Float64Array.from(beta);
  const s1 = new Float64Array(c); // sum_p dz, per channel of this example
  const s2 = new Float64Array(c); // sum_p dz xhat
  const k1 = new Float64Array(c); // rstd * mean over the group of gamma dz
  const k2 = new Float64Array(c); // rstd * mean over the group of gamma dz xhat
  const gr = new Float64Array(c); // rstd gamma
  const dgammaAcc = new Float64Array(c);
  const dbetaAcc = new Float64Array(c);
  for (let b = 0; b < n; b++) {
    for (let k = 0; k < c; k++) {
      a[k] = st.rstd[b * c + k]!;
      o[k] = -st.mean[b * c + k]! * a[k]!;
    }
    s1.fill(0);
    s2.fill(0);
    const base = b * s * c;
    const end = base + s * c;
    // Pass 1: dz = dy act'(z) (into dx), and its per-channel sums.
    if (!silu) {
      for (let off = base; off < end; off += c) {
        for (let k = 0; k < c; k++) {
          const dz = dy[off + k]!;
          dx[off + k] = dz;
          s1[k]! += dz;
          s2[k]! += dz * (x[off + k]! * a[k]! + o[k]!);
        }
      }
    } else if (sig) {
      for (let off = base; off < end; off += c) {
        for (let k = 0; k < c; k++) {
          const xhat = x[off + k]! * a[k]! + o[k]!;
          const z = xhat * gam[k]! + bet[k]!;
          const sg = sig[off + k]!;
          const dz = dy[off + k]! * sg * (1 + z * (1 - sg));
          dx[off + k] = dz;
          s1[k]! += dz;
          s2[k]! += dz * xhat;
        }
      }
    } else {
      for (let off = base; off < end; off += c) {
        for (let k = 0; k < c; k++) {
          const xhat = x[off + k]! * a[k]! + o[k]!;
          const z = xhat * gam[k]! + bet[k]!;
          const sg = 1 / (1 + Math.exp(-z));
          const dz = dy[off + k]! * sg * (1 + z * (1 - sg));
          dx[off + k] = dz;
          s1[k]! += dz;
          s2[k]! += dz * xhat;
        }
      }
    }
    for (let g = 0; g < groups; g++) {
      let sum1 = 0;
      let sum2 = 0;
      for (let k = g * cg; k < (g + 1) * cg; k++) {
        sum1 += gam[k]! * s1[k]!;
        sum2 += gam[k]! * s2[k]!;
      }
      for (let k = g * cg; k < (g + 1) * cg; k++) {
        k1[k] = (a[k]! * sum1) / m;
        k2[k] = (a[k]! * sum2) / m;
      }
    }
    for (let k = 0; k < c; k++) {
      dbetaAcc[k]! += s1[k]!;
      dgammaAcc[k]! += s2[k]!;
      gr[k] = a[k]! * gam[k]!;
    }
    // Pass 2: dx = rstd (gamma dz - mean(gamma dz) - xhat mean(gamma dz xhat)).
    for (let off = base; off < end; off += c) {
      for (let k = 0; k < c; k++) {
        const xhat = x[off + k]! * a[k]! + o[k]!;
        dx[off + k] = gr[k]! * dx[off + k]! - k1[k]! - xhat * k2[k]!;
      }
    }
  }
  for (let k = 0; k < c; k++) {
    dgamma[k] = dgammaAcc[k]!;
    dbeta[k] = dbetaAcc[k]!;
  }
}

// ------------------------------------------------------------------ kernels

/** How a backend exposes memory to the kernels: float32 views of inputs, fresh outputs. */
interface Memory {
  /** Allocates a float32 output. Views taken before it (or before `sigmoid`) may be stale on wasm. */
  output(shape: number[]): TensorInfo;
  view(t: TensorInfo): Float32Array;
  /** sigmoid(t) as a new tensor, by the backend's own (vectorised) kernel; absent: use Math.exp. */
  sigmoid?(t: TensorInfo): TensorInfo;
  free(t: TensorInfo): void;
}

/** The wasm backend: tensors live in the WebAssembly heap. */
interface WasmBackend {
  makeOutput(shape: number[], dtype: DataType): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array;
  disposeData(dataId: object): boolean;
}

/** The cpu backend: tensors are JavaScript typed arrays. */
interface CpuBackend {
  readSync(dataId: object): unknown;
  makeTensorInfo(shape: number[], dtype: DataType, values?: Float32Array): TensorInfo;
  disposeData(dataId: object): boolean;
}

/**
 * wasm: views into the heap (re-taken after every allocation, which can grow and detach it), and
 * XNNPACK's Sigmoid kernel (measured ~8x faster than a JavaScript Math.exp loop here).
 */
function wasmMemory(backend: unknown): Memory {
  const be = backend as WasmBackend;
  const sigmoidKernel = getKernel('Sigmoid', 'wasm')?.kernelFunc;
  return {
    output: (shape) => be.makeOutput(shape, 'float32'),
    view: (t) => be.typedArrayFromHeap(t),
    ...(sigmoidKernel
      ? {
          sigmoid: (t: TensorInfo) =>
            sigmoidKernel({ inputs: { x: t }, backend: backend as never, attrs: {} }) as TensorInfo,
        }
      : {}),
    free: (t) => {
      be.disposeData(t.dataId);
    },
  };
}

function cpuMemory(backend: unknown): Memory {
  const be = backend as CpuBackend;
  const fresh = new Map<object, Float32Array>();
  return {
    output: (shape) => {
      const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
      const info = be.makeTensorInfo(shape, 'float32', values);
      fresh.set(info.dataId, values);
      return info;
    },
    view: (t) => fresh.get(t.dataId) ?? (be.readSync(t.dataId) as Float32Array),
    free: (t) => {
      be.disposeData(t.dataId);
    },
  };
}

function checkFloat32(kernel: string, inputs: Record<string, TensorInfo>): void {
  for (const [name, t] of Object.entries(inputs)) {
    if (t.dtype !== 'float32') {
      throw new InvalidArgumentError(`${kernel}: input '${name}' must be float32, got ${t.dtype}`);
    }
  }
}

function forwardKernel(memory: (backend: unknown) => Memory): KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const { x, gamma, beta } = inputs as Record<string, TensorInfo>;
    checkFloat32(GROUP_NORM, { x: x!, gamma: gamma!, beta: beta! });
    const a = attrs as unknown as Attrs;
    const mem = memory(backend);
    const d = dimsOf(x!.shape, a.groups);
    const y = mem.output([...x!.shape]);
    const st = statsJs(mem.view(x!), d, a.epsilon);
    affine(mem.view(x!), mem.view(gamma!), mem.view(beta!), st, mem.view(y), d);
    if (a.activation === 'silu') {
      const sig = mem.sigmoid?.(y);
      siluInPlace(mem.view(y), sig ? mem.view(sig) : null);
      if (sig) mem.free(sig);
    }
    return y;
  };
}

function backwardKernel(memory: (backend: unknown) => Memory): KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const { x, gamma, beta, dy } = inputs as Record<string, TensorInfo>;
    checkFloat32(GROUP_NORM_GRAD, { x: x!, gamma: gamma!, beta: beta!, dy: dy! });
    const a = attrs as unknown as Attrs;
    const mem = memory(backend);
    const d = dimsOf(x!.shape, a.groups);
    const dx = mem.output([...x!.shape]);
    const dgamma = mem.output([...gamma!.shape]);
    const dbeta = mem.output([...beta!.shape]);
    const st = statsJs(mem.view(x!), d, a.epsilon);
    let sig: TensorInfo | undefined;
    if (a.activation === 'silu' && mem.sigmoid) {
      // z into dx (overwritten below), then sigmoid(z) by the backend's kernel.
      affine(mem.view(x!), mem.view(gamma!), mem.view(beta!), st, mem.view(dx), d);
      sig = mem.sigmoid(dx);
    }
    try {
      backward(
        mem.view(x!),
        mem.view(gamma!),
        mem.view(beta!),
        mem.view(dy!),
        sig ? mem.view(sig) : null,
        mem.view(dx),
        mem.view(dgamma),
        mem.view(dbeta),
        st,
        d,
        a,
      );
    } finally {
      if (sig) mem.free(sig);
    }
    return [dx, dgamma, dbeta];
  };
}

// ------------------------------------------------------------------ wasm SIMD kernels

/**
 * The forward kernel on wasm with our SIMD module (`simd/kernels.wat`): `gn_sums` (float64 shifted
 * sums per channel), the group pooling here, `gn_affine` z = (x - mu) (gamma rstd) + beta, then for
 * SiLU the backend's Sigmoid kernel and `mul`. Null when the module cannot run (the JS loops then do).
 */
function simdForward(
  backend: unknown,
  x: TensorInfo,
  gamma: TensorInfo,
  beta: TensorInfo,
  a: Attrs,
): TensorInfo | null {
  const k = simdKernels(backend);
  const d = dimsOf(x.shape, a.groups);
  const sigmoid = wasmMemory(backend).sigmoid;
  if (k === null || d.c % 4 !== 0 || (a.activation === 'silu' && sigmoid === undefined)) {
    return null;
  }
  const be = backend as WasmHeapBackend & WasmBackend;
  const heap = new Heap(be);
  const y = heap.output([...x.shape]);
  try {
    const st = simdStats(k, heap, be, x, d, a.epsilon);
    const len = d.n * d.c;
    // [mean (hi) | mean (lo) | gamma rstd | beta], each [n, c]
    const coef = heap.f32(4 * len);
    const [hi, lo, scale, shift] = [0, 1, 2, 3].map((i) =>
      heap.view32(coef + 4 * i * len, len),
    ) as Float32Array[];
    const gam = be.typedArrayFromHeap(gamma);
    const bet = be.typedArrayFromHeap(beta);
    for (let i = 0; i < len; i++) {
      const c = i % d.c;
      hi![i] = st.mean[i]!;
      lo![i] = st.mean[i]! - hi![i]!;
      scale![i] = gam[c]! * st.rstd[i]!;
      shift![i] = bet[c]!;
    }
    k.gn_affine(
      heap.ptr(x),
      heap.ptr(y),
      d.n,
      d.s,
      d.c,
      coef,
      coef + 4 * len,
      coef + 8 * len,
      coef + 12 * len,
    );
    if (a.activation === 'silu') {
      const sig = sigmoid!(y);
      try {
        k.mul(heap.ptr(y), heap.ptr(sig), d.n * d.s * d.c);
      } finally {
        be.disposeData(sig.dataId);
      }
    }
    return y;
  } catch (e) {
    be.disposeData(y.dataId);
    throw e;
  } finally {
    heap.free();
  }
}

/** Group statistics by the SIMD `gn_sums` and the pooling of `groupStats`. */
function simdStats(
  k: SimdKernels,
  heap: Heap,
  be: WasmBackend,
  x: TensorInfo,
  d: Dims,
  eps: number,
): Stats {
  const len = d.n * d.c;
  const sum = heap.f64(len);
  const sumSq = heap.f64(len);
  k.gn_sums(heap.ptr(x), d.n, d.s, d.c, sum, sumSq);
  return groupStats(
    be.typedArrayFromHeap(x),
    heap.view64(sum, len),
    heap.view64(sumSq, len),
    d,
    eps,
  );
}

/**
 * The backward kernel on wasm with the SIMD module: `gn_backward1` (dz and its float64 sums per
 * channel), the per-group reductions here, and `gn_backward2`
 * dx = rstd gamma dz - k1 - (x - mu) rstd k2 (the file comment's formula). Null when it cannot run.
 */
function simdBackward(
  backend: unknown,
  x: TensorInfo,
  gamma: TensorInfo,
  beta: TensorInfo,
  dy: TensorInfo,
  a: Attrs,
): TensorInfo[] | null {
  const k = simdKernels(backend);
  const d = dimsOf(x.shape, a.groups);
  const sigmoid = wasmMemory(backend).sigmoid;
  if (k === null || d.c % 4 !== 0 || (a.activation === 'silu' && sigmoid === undefined)) {
    return null;
  }
  const be = backend as WasmHeapBackend & WasmBackend;
  const heap = new Heap(be);
  const dx = heap.output([...x.shape]);
  const dgamma = heap.output([...gamma.shape]);
  const dbeta = heap.output([...beta.shape]);
  let sig: TensorInfo | null = null;
  try {
    const { n, s, c, groups } = d;
    const len = n * c;
    const cg = c / groups;
    const m = s * cg;
    const silu = a.activation === 'silu';
    const st = simdStats(k, heap, be, x, d, a.epsilon);
    // [mean (hi) | mean (lo) | rstd | gamma | beta | gamma rstd], each [n, c]
    const coef = heap.f32(6 * len);
    const at = (i: number) => coef + 4 * i * len;
    const s1Ptr = heap.f64(len);
    const s2Ptr = heap.f64(len);
    {
      const [hi, lo, rstd, gam, bet, scale] = [0, 1, 2, 3, 4, 5].map((i) =>
        heap.view32(at(i), len),
      ) as Float32Array[];
      const g0 = be.typedArrayFromHeap(gamma);
      const b0 = be.typedArrayFromHeap(beta);
      for (let i = 0; i < len; i++) {
        const ch = i % c;
        hi![i] = st.mean[i]!;
        lo![i] = st.mean[i]! - hi![i]!;
        rstd![i] = st.rstd[i]!;
        gam![i] = g0[ch]!;
        bet![i] = b0[ch]!;
        scale![i] = g0[ch]! * st.rstd[i]!;
      }
    }
    if (silu) {
      // z into dx (overwritten by gn_backward1), then sigmoid(z) by the backend's kernel
      k.gn_affine(heap.ptr(x), heap.ptr(dx), n, s, c, at(0), at(1), at(5), at(4));
      sig = sigmoid!(dx);
    }
    k.gn_backward1(
      heap.ptr(x),
      heap.ptr(dy),
      sig === null ? 0 : heap.ptr(sig),
      heap.ptr(dx),
      n,
      s,
      c,
      silu ? 1 : 0,
      at(0),
      at(1),
      at(2),
      at(3),
      at(4),
      s1Ptr,
      s2Ptr,
    );
    // gr = rstd gamma, k1 = rstd mean_g(gamma dz), k2 = rstd^2 mean_g(gamma dz xhat) (in place of gamma, beta, scale)
    const s1 = heap.view64(s1Ptr, len);
    const s2 = heap.view64(s2Ptr, len);
    const [gr, k1, k2] = [3, 4, 5].map((i) => heap.view32(at(i), len)) as Float32Array[];
    const g0 = be.typedArrayFromHeap(gamma);
    const dgammaAcc = new Float64Array(c);
    const dbetaAcc = new Float64Array(c);
    for (let b = 0; b < n; b++) {
      for (let g = 0; g < groups; g++) {
        let sum1 = 0;
        let sum2 = 0;
        for (let ch = g * cg; ch < (g + 1) * cg; ch++) {
          sum1 += g0[ch]! * s1[b * c + ch]!;
          sum2 += g0[ch]! * s2[b * c + ch]!;
        }
        for (let ch = g * cg; ch < (g + 1) * cg; ch++) {
          const i = b * c + ch;
          const r = st.rstd[i]!;
          dbetaAcc[ch]! += s1[i]!;
          dgammaAcc[ch]! += s2[i]!;
          k1![i] = (r * sum1) / m;
          k2![i] = (r * r * sum2) / m;
          gr![i] = r * g0[ch]!;
        }
      }
    }
    k.gn_backward2(heap.ptr(x), heap.ptr(dx), n, s, c, at(3), at(4), at(0), at(1), at(5));
    be.typedArrayFromHeap(dgamma).set(dgammaAcc);
    be.typedArrayFromHeap(dbeta).set(dbetaAcc);
    return [dx, dgamma, dbeta];
  } catch (e) {
    for (const t of [dx, dgamma, dbeta]) be.disposeData(t.dataId);
    throw e;
  } finally {
    if (sig !== null) be.disposeData(sig.dataId);
    heap.free();
  }
}

/** The backends that run the fused kernels (plain JS over their Float32Array memory). */
const KERNEL_BACKENDS: Record<string, (backend: unknown) => Memory> = {
  wasm: wasmMemory,
  cpu: cpuMemory,
};

function register(config: KernelConfig): void {
  if (getKernel(config.kernelName, config.backendName) === undefined) registerKernel(config);
}

/** The wasm kernels: the SIMD module where it runs, the JavaScript loops otherwise. */
function withSimd(
  js: KernelFunc,
  simd: (args: Parameters<KernelFunc>[0]) => TensorInfo | TensorInfo[] | null,
): KernelFunc {
  return (args) => simd(args) ?? js(args);
}

for (const [backendName, memory] of Object.entries(KERNEL_BACKENDS)) {
  let forward = forwardKernel(memory);
  let backward = backwardKernel(memory);
  if (backendName === 'wasm') {
    forward = withSimd(forward, ({ inputs, backend, attrs }) => {
      const { x, gamma, beta } = inputs as Record<string, TensorInfo>;
      checkFloat32(GROUP_NORM, { x: x!, gamma: gamma!, beta: beta! });
      return simdForward(backend, x!, gamma!, beta!, attrs as unknown as Attrs);
    });
    backward = withSimd(backward, ({ inputs, backend, attrs }) => {
      const { x, gamma, beta, dy } = inputs as Record<string, TensorInfo>;
      checkFloat32(GROUP_NORM_GRAD, { x: x!, gamma: gamma!, beta: beta!, dy: dy! });
      return simdBackward(backend, x!, gamma!, beta!, dy!, attrs as unknown as Attrs);
    });
  }
  register({ kernelName: GROUP_NORM, backendName, kernelFunc: forward });
  register({ kernelName: GROUP_NORM_GRAD, backendName, kernelFunc: backward });
}

registerGradient({
  kernelName: GROUP_NORM,
  inputsToSave: ['x', 'gamma', 'beta'],
  gradFunc: (dy, saved, attrs) => {
    const [x, gamma, beta] = saved as Tensor[];
    const [dx, dgamma, dbeta] = engine().runKernel(
      GROUP_NORM_GRAD,
      { x: x!, gamma: gamma!, beta: beta!, dy: dy as Tensor },
      attrs as NamedAttrMap,
    ) as Tensor[];
    return { x: () => dx!, gamma: () => dgamma!, beta: () => dbeta! };
  },
});

// ------------------------------------------------------------------ op

function resolve(x: Tensor, gamma: Tensor, beta: Tensor, options: GroupNormOptions): Attrs {
  const groups = options?.groups;
  const epsilon = options?.epsilon ?? 1e-5;
  const activation = options?.activation ?? 'none';
  if (x.rank < 2) {
    throw new InvalidArgumentError(
      `groupNorm needs x of rank >= 2 ([batch, ..., channels]), got shape [${x.shape.join(', ')}]`,
    );
  }
  const c = x.shape[x.rank - 1]!;
  if (!Number.isInteger(groups) || groups <= 0 || c % groups !== 0) {
    throw new InvalidArgumentError(
      `groupNorm: groups must be a positive integer dividing the channel count ${c}, got ${String(groups)}`,
    );
  }
  for (const [name, t] of [
    ['gamma', gamma],
    ['beta', beta],
  ] as const) {
    if (t.rank !== 1 || t.shape[0] !== c) {
      throw new InvalidArgumentError(
        `groupNorm: ${name} must have shape [${c}] (one value per channel), got [${t.shape.join(', ')}]`,
      );
    }
  }
  if (!(epsilon >= 0) || !Number.isFinite(epsilon)) {
    throw new InvalidArgumentError(
      `groupNorm: epsilon must be finite and >= 0, got ${String(epsilon)}`,
    );
  }
  if (activation !== 'none' && activation !== 'silu') {
    throw new InvalidArgumentError(
      `groupNorm: activation must be 'none' or 'silu', got '${String(activation)}'`,
    );
  }
  for (const [name, t] of [
    ['x', x],
    ['gamma', gamma],
    ['beta', beta],
  ] as const) {
    if (t.dtype !== 'float32') {
      throw new InvalidArgumentError(`groupNorm: ${name} must be float32, got ${t.dtype}`);
    }
  }
  return { groups, epsilon, activation };
}

/**
 * The same GroupNorm (+ SiLU) composed of tfjs ops: the path for backends without the fused kernel
 * (webgl, webgpu), and the reference the kernels are tested against.
 *
 * @example
 * const y = groupNormComposed(x, gamma, beta, { groups: 8, activation: 'silu' });
 */
export function groupNormComposed(
  x: Tensor,
  gamma: Tensor,
  beta: Tensor,
  options: GroupNormOptions,
): Tensor {
  const { groups, epsilon, activation } = resolve(x, gamma, beta, options);
  return tf.tidy(() => {
    const { n, s, c } = dimsOf(x.shape, groups);
    const g = tf.reshape(x, [n, s, groups, c / groups]);
    const { mean, variance } = tf.moments(g, [1, 3], true);
    const xhat = tf.reshape(tf.mul(tf.sub(g, mean), tf.rsqrt(tf.add(variance, epsilon))), x.shape);
    const z = tf.add(tf.mul(xhat, gamma), beta);
    return activation === 'silu' ? tf.mul(z, tf.sigmoid(z)) : z;
  });
}

/**
 * GroupNorm (Wu & He 2018) over the last (channel) axis of x [batch, ...spatial, channels], with an
 * optional fused SiLU: y = act(gamma (x - mu) / sqrt(var + eps) + beta), mean and variance per
 * example and channel group over the spatial positions and the group's channels (see the file
 * comment for the gradient). One kernel each way on wasm and cpu; composed tfjs ops elsewhere.
 * Differentiable in x, gamma and beta. Matches PyTorch's `F.silu(F.group_norm(x, G, w, b, eps))`
 * (NCHW there, NHWC here).
 *
 * @example
 * const h = groupNorm(x, gamma, beta, { groups: 8, activation: 'silu' }); // x [b, 28, 28, 32]
 */
export function groupNorm(
  x: Tensor,
  gamma: Tensor,
  beta: Tensor,
  options: GroupNormOptions,
): Tensor {
  const attrs = resolve(x, gamma, beta, options);
  if (getKernel(GROUP_NORM, tf.getBackend()) === undefined) {
    return groupNormComposed(x, gamma, beta, attrs);
  }
  return engine().runKernel(GROUP_NORM, { x, gamma, beta }, { ...attrs }) as Tensor;
}
