/**
 * Fixes for the tfjs wasm backend's two training gaps, made at the kernel level so every model,
 * every op and every gradient that reaches these kernels gets them:
 *
 * 1. `Conv2DBackpropFilter` has no wasm kernel, so the gradient of any conv net fails on wasm.
 *    We register one, composed of kernels the wasm backend does have (Transpose, Conv2D, Slice),
 *    through the classic identity
 *
 *        dW[kh, kw, ci, co] = sum_{n, oh, ow} xpad[n, oh*sh + kh, ow*sw + kw, ci] * dy[n, oh, ow, co]
 *
 *    which is a stride-1 convolution with dilation (sh, sw) of x^T = transpose(x, [3, 1, 2, 0])
 *    (channels as batch, batch as channels) by the filter dy^T = transpose(dy, [1, 2, 0, 3]);
 *    its [Ci, KH', KW', Co] output is cropped to the filter size and transposed back.
 *
 * 2. The wasm `BatchMatMul` and `_FusedMatMul` kernels run an order of magnitude slower with
 *    `transposeA` or `transposeB` set (measured: 0.75 against 14.8 GFLOP/s for 4096x256 by
 *    4096x256), and matMul's gradient uses exactly those forms. We wrap both kernels: a transposed
 *    operand is transposed explicitly (a cheap memory pass) and the fast untransposed kernel runs.
 *
 * 3. The wasm `_FusedMatMul` kernel gives wrong results for batched (rank-3, batch > 1) operands
 *    (found by our tests against the cpu backend: every batch after the first is wrong). Batched
 *    fused matMuls are computed as BatchMatMul, then bias add, then the activation kernel.
 *
 * 4. The wasm `OneHot` kernel writes int32 values whatever the requested dtype, so
 *    `tf.oneHot(i, n, 1, 0, 'float32')` returns int32 bit patterns (1 reads as 1.4e-45), and it
 *    truncates non-integer on/off values. We build a 0/1 int32 mask with it, then cast and scale.
 *
 * 5. `UnsortedSegmentSum` has no wasm kernel, so the gradient of `tf.gather` fails on wasm. We
 *    register one: out[s] = sum_{i : ids[i] = s} x[i] is the matrix product onehot(ids)^T x.
 *
 * 6. The wasm `Conv2DBackpropInput` kernel (conv2d's input gradient, conv2dTranspose) runs ~9x
 *    slower than a forward Conv2D of the same size (measured: 59.8 against 6.6 ms for 16x28x28x16,
 *    3x3). For stride 1 it is a forward correlation of dy with the flipped, in/out-swapped filter:
 *
 *        dx[i] = sum_k dy[i + top - k] w[k] = sum_k' dy[i - (kh - 1 - top) + k'] w[kh - 1 - k']
 *
 *    i.e. Conv2D(dy, transpose(reverse(w, [0, 1]), [0, 1, 3, 2])) with leading padding kh - 1 - top
 *    and trailing padding chosen so the output has the input's size. A strided conv's input
 *    gradient is the same of dy dilated by the strides (zeros between its rows and columns:
 *    4x the multiply-adds at stride 2, still 3-4x faster than the original kernel on the bench
 *    U-Net's downsampling convs). The flipped, swapped filter is written by one JavaScript loop on the heap:
 *    the wasm `Reverse` kernel took 10 ms for a 3x3x128x128 filter, twice the convolution itself.
 *
 * 7. The wasm `BatchMatMul` kernel reaches XNNPACK only for a batch of one; with batch > 1 it runs
 *    a scalar loop, 6-10x slower (measured, CPU ms: [4,196,196] x [4,196,64] 13.8 batched against
 *    2.1 as four 2-D products; [4,784,64] x [4,64,784] 242 against 21). Attention in every U-Net
 *    block is exactly this shape, forward and backward. A batched product with enough work per
 *    entry is computed as one product per entry (or, when only `a` has batch dims, as one product
 *    of all of a's rows), each on the fast path, written into one output.
 *
 * 8. The wasm `Sum` kernel reduces only innermost axes: any other reduction first transposes the
 *    whole input with the wasm `Transpose` kernel (4.1 ms for a 2048x256 matrix). Every bias
 *    gradient is a sum over the leading (batch, spatial) axes, sum_i dy[i, j]: 5.2 ms for
 *    [2048, 256] over axis 0, 10% of an MLP training step. A reduction over a leading run of axes is
 *    one pass over the heap here (column sums in float64): 0.4-0.9 ms for that case; on the SIMD
 *    module (`col_sums`, the same sums in the same order) 0.40 against 0.65 CPU ms (median) for the
 *    MLP's [4096, 256].
 *
 * 9. The wasm `Identity` kernel (and `Cast` to the same dtype) copies the whole buffer, and tfjs
 *    clones every tensor it saves for a gradient (`saveTensorsForBackwardMode`): 35 full copies of
 *    [2048, 256] activations per MLP training step. Tensors are immutable, so here, as in the cpu
 *    and webgl backends and the wasm `Reshape` kernel, the output shares the input's buffer
 *    (reference-counted by the backend).
 *
 * 10. XNNPACK packs a convolution's filter (or a product's right operand) into its own layout when
 *    it creates an operator, and tfjs creates one per new filter tensor: every call in training.
 *    `Conv2DBackpropFilter` as a Conv2D of transposed tensors (fix 1) also reduces over chunks of
 *    only N values (the batch). Measured on the bench U-Net at batch 4: 5.5-15 GFLOP/s. Stride-1
 *    `Conv2D` (so also fix 6's `Conv2DBackpropInput`), `Conv2DBackpropFilter` and `BatchMatMul` run
 *    on our SIMD module (`simd/kernels.wat`, see `simd/index.ts`) where the shapes allow: register
 *    blocks of 4 x 8 outputs over the operands in place (a cheap pack of the filter, no
 *    transposes), 16-30 GFLOP/s on the same shapes. The U-Net's training step at batch 4 went from
 *    ~965 to ~620-690 CPU ms. Other shapes and strides keep the paths above.
 *
 * 11. The SIMD A^T B product (fix 10) needs M a multiple of 4 and N of 8. A weight gradient with
 *    2 inputs or 2 outputs ([4096, 2]^T [4096, 256], [4096, 256]^T [4096, 2] in the bench MLP)
 *    otherwise took XNNPACK after an explicit transpose, which packs the fresh activation matrix
 *    as its right operand on every call: 6-11 and 8 CPU ms in an MLP training step. Such products
 *    run on the SIMD module with the operands zero-padded to those multiples and the result
 *    sliced: 0.7 and 1.1 CPU ms.
 *
 * 12. The wasm `Concat` kernel copies row by row from JavaScript (a subarray and a set per row of
 *    each input: 12,544 calls for the U-Net's [8, 28, 28, 32] + [8, 28, 28, 32] skip connection).
 *    The rows are copied by the SIMD module instead, one `memory.copy` each: 0.82 against 0.40 CPU
 *    ms (fastest of 40; medians 2.3 and 1.7 on a loaded machine) for [8, 28, 28, 64] + [8, 28, 28, 32].
 */
import {
  backend_util,
  getKernel,
  type KernelConfig,
  type KernelFunc,
  type NamedAttrMap,
  type NamedTensorInfoMap,
  registerKernel,
  type TensorInfo,
  unregisterKernel,
  util,
} from '@tensorflow/tfjs-core';
import { Heap, simdKernels, type WasmHeapBackend } from './simd/index.js';

const WASM = 'wasm';

/** Minimal view of the wasm backend object that kernels receive. */
interface KernelBackend {
  disposeData(dataId: object): boolean;
}

function kernel(name: string): KernelFunc {
  const config = getKernel(name, WASM);
  if (config === undefined) {
    throw new Error(`wasm kernel '${name}' is not registered`);
  }
  return config.kernelFunc;
}

/** Runs another wasm kernel from inside a kernel, as tfjs backends do for composite kernels. */
function run(
  name: string,
  backend: KernelBackend,
  inputs: NamedTensorInfoMap,
  attrs: NamedAttrMap = {},
): TensorInfo {
  // biome-ignore lint/suspicious/noExplicitAny: the kernel signature takes the concrete backend.
  return kernel(name)({ inputs, backend: backend as any, attrs }) as TensorInfo;
}

function transpose(backend: KernelBackend, x: TensorInfo, perm: number[]): TensorInfo {
  return run('Transpose', backend, { x }, { perm });
}

/** Swaps the last two axes. */
function transposeLast2(backend: KernelBackend, x: TensorInfo): TensorInfo {
  const rank = x.shape.length;
  const perm = [...Array(rank).keys()];
  perm[rank - 2] = rank - 1;
  perm[rank - 1] = rank - 2;
  return transpose(backend, x, perm);
}

/** `Conv2DBackpropFilter` for wasm: the filter gradient of conv2d (see the file comment). */
const conv2DBackpropFilter: KernelFunc = ({ inputs, backend, attrs }) => {
  const be = backend as unknown as KernelBackend;
  const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
  const { strides, pad, dataFormat, dimRoundingMode, filterShape } = attrs as unknown as {
    strides: [number, number] | number;
    pad: 'valid' | 'same' | number | backend_util.ExplicitPadding;
    dataFormat: 'NHWC' | 'NCHW';
    dimRoundingMode?: 'floor' | 'round' | 'ceil';
    filterShape: [number, number, number, number];
  };
  const temps: TensorInfo[] = [];
  const keep = (t: TensorInfo) => {
    temps.push(t);
    return t;
  };
  try {
    // Work in NHWC: x [N, H, W, Ci], dy [N, OH, OW, Co].
    const xNhwc = dataFormat === 'NCHW' ? keep(transpose(be, x, [0, 2, 3, 1])) : x;
    const dyNhwc = dataFormat === 'NCHW' ? keep(transpose(be, dy, [0, 2, 3, 1])) : dy;
    const info = backend_util.computeConv2DInfo(
      xNhwc.shape as [number, number, number, number],
      filterShape,
      strides,
      1,
      pad,
      dimRoundingMode,
      false,
      'channelsLast',
    );
    const [kh, kw, ci, co] = filterShape;
    const { top, bottom, left, right } = info.padInfo;
    const fast = simdFilterGrad(backend, xNhwc, dyNhwc, info, keep);
    if (fast !== null) return fast;
    const xT = keep(transpose(be, xNhwc, [3, 1, 2, 0])); // [Ci, H, W, N]
    const dyT = keep(transpose(be, dyNhwc, [1, 2, 0, 3])); // [OH, OW, N, Co]
    const full = keep(
      run(
        'Conv2D',
        be,
        { x: xT, filter: dyT },
        {
          strides: [1, 1],
          pad: [
            [0, 0],
            [top, bottom],
            [left, right],
            [0, 0],
          ],
          dataFormat: 'NHWC',
          dilations: [info.strideHeight, info.strideWidth],
          dimRoundingMode: 'floor',
        },
      ),
    ); // [Ci, >=KH, >=KW, Co]
    const cropped =
      full.shape[1] === kh && full.shape[2] === kw
        ? full
        : keep(run('Slice', be, { x: full }, { begin: [0, 0, 0, 0], size: [ci, kh, kw, co] }));
    return transpose(be, cropped, [1, 2, 0, 3]); // [KH, KW, Ci, Co]
  } finally {
    for (const t of temps) be.disposeData(t.dataId);
  }
};

/**
 * Shortest reduction (K of a product, kh kw Ci of a conv) the SIMD products take: below it the
 * fixed work per 4 x 8 block outweighs the multiply-adds (measured: [4096, 2] x [2, 256] 4.2 ms
 * against 0.4 on XNNPACK).
 */
const MIN_REDUCTION = 16;

/**
 * x [N, H, W, C] zero-padded in H and W, and optionally at the end of C (by the wasm `PadV2`
 * kernel; x itself when there is no padding).
 */
function padSpatial(
  backend: unknown,
  x: TensorInfo,
  padH: [number, number],
  padW: [number, number],
  keep: (t: TensorInfo) => TensorInfo,
  padC: [number, number] = [0, 0],
): TensorInfo {
  if (padH[0] + padH[1] + padW[0] + padW[1] + padC[0] + padC[1] === 0) return x;
  const paddings = [[0, 0], padH, padW, padC];
  return keep(run('PadV2', backend as KernelBackend, { x }, { paddings, constantValue: 0 }));
}

/**
 * The filter gradient of a stride-1 conv2d (fix 10) on our SIMD module (`simd/kernels.wat`), one
 * register-blocked pass per filter tap over the padded input and dy, written straight into
 * dW [KH, KW, Ci, Co]:
 *
 *     dW[kh, kw] = sum_(n, oh, ow) xpad[n, oh + kh, ow + kw, :]^T dy[n, oh, ow, :]    ([Ci, Co])
 *
 * No transposes, and the reduction runs over n, oh, ow in long contiguous rows. (Conv2D of the
 * transposed tensors, the general path, reduces over chunks of only N values, the batch: 5.5-7.5
 * GFLOP/s.) Needs float32 and the SIMD module; null otherwise.
 */
function simdFilterGrad(
  backend: unknown,
  x: TensorInfo,
  dy: TensorInfo,
  info: backend_util.Conv2DInfo,
  keep: (t: TensorInfo) => TensorInfo,
): TensorInfo | null {
  const k = simdKernels(backend);
  const [n, h, w, ci] = x.shape as [number, number, number, number];
  const co = dy.shape[3]!;
  if (
    k === null ||
    info.strideHeight !== 1 ||
    info.strideWidth !== 1 ||
    info.dilationHeight !== 1 ||
    info.dilationWidth !== 1 ||
    x.dtype !== 'float32' ||
    dy.dtype !== 'float32'
  ) {
    return null;
  }
  const { top, bottom, left, right } = info.padInfo;
  const { filterHeight: kh, filterWidth: kw, outHeight: oh, outWidth: ow } = info;
  const hp = h + top + bottom;
  const wp = w + left + right;
  if (hp - kh + 1 !== oh || wp - kw + 1 !== ow || Math.min(top, bottom, left, right) < 0)
    return null;
  // Channel counts the kernel's 4 x 8 blocks do not divide (an image's 1 or 3 channels) are padded
  // with zero channels, and the gradient of the real ones sliced out afterwards.
  const ci4 = 4 * Math.ceil(ci / 4);
  const co8 = 8 * Math.ceil(co / 8);
  const none: [number, number] = [0, 0];
  const xp = padSpatial(backend, x, [top, bottom], [left, right], keep, [0, ci4 - ci]);
  const dyp = padSpatial(backend, dy, none, none, keep, [0, co8 - co]);
  const heap = new Heap(backend as WasmHeapBackend);
  const full = heap.output([kh, kw, ci4, co8]);
  const xs = heap.ptr(xp);
  const ys = heap.ptr(dyp);
  const ws = heap.ptr(full);
  const pixel = 4 * ci4;
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      k.conv2d_filter_grad_tap(
        xs + (i * wp + j) * pixel,
        ys,
        ws + (i * kw + j) * pixel * co8,
        n,
        oh,
        ow,
        ci4,
        co8,
        hp * wp * pixel,
        wp * pixel,
        0,
      );
    }
  }
  if (ci4 === ci && co8 === co) return full;
  keep(full);
  return run(
    'Slice',
    backend as KernelBackend,
    { x: full },
    { begin: [0, 0, 0, 0], size: [kh, kw, ci, co] },
  );
}

/**
 * A stride-1, dilation-1 conv2d (NHWC) on our SIMD module (fix 10): x padded once, then blocks of
 * 4 output pixels x 8 output channels accumulate in registers over every filter tap and input
 * channel, reading the filter in place. tfjs-wasm's XNNPACK convolution repacks the filter on every
 * call when it is new, as in every training step. Needs Co >= 8, kh kw Ci >= 16, at least 4 output pixels,
 * float32 and the SIMD module; null otherwise.
 */
function simdConv2D(
  backend: unknown,
  x: TensorInfo,
  filter: TensorInfo,
  padH: [number, number],
  padW: [number, number],
  keep: (t: TensorInfo) => TensorInfo,
): TensorInfo | null {
  const k = simdKernels(backend);
  const [n, h, w, ci] = x.shape as [number, number, number, number];
  const [kh, kw, fci, co] = filter.shape as [number, number, number, number];
  const hp = h + padH[0] + padH[1];
  const wp = w + padW[0] + padW[1];
  const oh = hp - kh + 1;
  const ow = wp - kw + 1;
  if (
    k === null ||
    fci !== ci ||
    co < 8 ||
    kh * kw * ci < MIN_REDUCTION ||
    oh < 1 ||
    ow < 1 ||
    n * oh * ow < 4 ||
    Math.min(...padH, ...padW) < 0 ||
    x.dtype !== 'float32' ||
    filter.dtype !== 'float32'
  ) {
    return null;
  }
  const xp = padSpatial(backend, x, padH, padW, keep);
  const heap = new Heap(backend as WasmHeapBackend);
  const out = heap.output([n, oh, ow, co]);
  try {
    const packed = heap.f32(kh * kw * ci * 8 * Math.ceil(co / 8));
    k.pack8(heap.ptr(filter), packed, kh * kw * ci, co);
    k.conv2d(
      heap.ptr(xp),
      packed,
      heap.ptr(out),
      n,
      oh,
      ow,
      ci,
      co,
      kh,
      kw,
      hp * wp * 4 * ci,
      wp * 4 * ci,
    );
  } finally {
    heap.free();
  }
  return out;
}

/** `Conv2D` on the SIMD module for stride 1, dilation 1, NHWC (fix 10); the original otherwise. */
function withSimdConv2D(original: KernelConfig): KernelConfig {
  const kernelFunc: KernelFunc = (args) => {
    const { inputs, backend, attrs } = args;
    const { x, filter } = inputs as { x: TensorInfo; filter: TensorInfo };
    const { strides, pad, dataFormat, dilations, dimRoundingMode } = attrs as unknown as {
      strides: [number, number] | number;
      pad: 'valid' | 'same' | number | backend_util.ExplicitPadding;
      dataFormat: 'NHWC' | 'NCHW';
      dilations: [number, number] | number;
      dimRoundingMode?: 'floor' | 'round' | 'ceil';
    };
    if (dataFormat === 'NCHW' || x.shape.length !== 4) return original.kernelFunc(args);
    const info = backend_util.computeConv2DInfo(
      x.shape as [number, number, number, number],
      filter.shape as [number, number, number, number],
      strides,
      dilations,
      pad,
      dimRoundingMode,
      false,
      'channelsLast',
    );
    if (
      info.strideHeight !== 1 ||
      info.strideWidth !== 1 ||
      info.dilationHeight !== 1 ||
      info.dilationWidth !== 1
    ) {
      return original.kernelFunc(args);
    }
    const temps: TensorInfo[] = [];
    try {
      const { top, bottom, left, right } = info.padInfo;
      const out = simdConv2D(backend, x, filter, [top, bottom], [left, right], (t) => {
        temps.push(t);
        return t;
      });
      // the padded size must give tfjs's output size (it does for every stride-1 padding mode)
      if (out !== null && (out.shape[1] !== info.outHeight || out.shape[2] !== info.outWidth)) {
        (backend as unknown as KernelBackend).disposeData(out.dataId);
        return original.kernelFunc(args);
      }
      return out ?? original.kernelFunc(args);
    } finally {
      for (const t of temps) (backend as unknown as KernelBackend).disposeData(t.dataId);
    }
  };
  return { ...original, kernelFunc };
}

/** The activation kernel of a fused op, applied to `x`. */
function activate(
  be: KernelBackend,
  x: TensorInfo,
  activation: string | undefined,
  preluWeights: TensorInfo | undefined,
  leakyreluAlpha: number | undefined,
): TensorInfo {
  switch (activation ?? 'linear') {
    case 'linear':
      return x;
    case 'relu':
      return run('Relu', be, { x });
    case 'relu6':
      return run('Relu6', be, { x });
    case 'elu':
      return run('Elu', be, { x });
    case 'sigmoid':
      return run('Sigmoid', be, { x });
    case 'leakyrelu':
      return run('LeakyRelu', be, { x }, { alpha: leakyreluAlpha ?? 0.2 });
    case 'prelu':
      return run('Prelu', be, { x, alpha: preluWeights! });
    default:
      throw new Error(`unsupported fused activation '${activation}'`);
  }
}

/** `_FusedMatMul` for batched operands, composed of correct kernels (see fix 3 above). */
const batchedFusedMatMul: KernelFunc = ({ inputs, backend, attrs }) => {
  const be = backend as unknown as KernelBackend;
  const { a, b, bias, preluActivationWeights } = inputs as Record<string, TensorInfo | undefined>;
  const { activation, leakyreluAlpha } = attrs as { activation?: string; leakyreluAlpha?: number };
  const temps: TensorInfo[] = [];
  try {
    let y = run('BatchMatMul', be, { a: a!, b: b! }, { transposeA: false, transposeB: false });
    if (bias !== undefined) {
      temps.push(y);
      y = run('Add', be, { a: y, b: bias });
    }
    const out = activate(be, y, activation, preluActivationWeights, leakyreluAlpha);
    if (out !== y) temps.push(y);
    return out;
  } finally {
    for (const t of temps) be.disposeData(t.dataId);
  }
};

function batchSize(x: TensorInfo): number {
  return x.shape.slice(0, -2).reduce((p, d) => p * d, 1);
}

/** The wasm backend's memory, as the heap-level kernels below use it. */
interface WasmMemory extends KernelBackend {
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array;
}

/**
 * Below this many multiply-adds per batch entry the per-entry loop's fixed costs (an XNNPACK
 * operator per entry, two copies) outweigh the scalar kernel's slowness (fix 7).
 */
const PER_ENTRY_MIN_MACS = 8192;
/** Above this many batch entries the loop is left to the batched kernel. */
const PER_ENTRY_MAX_BATCH = 1024;

/**
 * An untransposed float32 batched product C[i] = A[i] B[i] (batch dims broadcast as tfjs's
 * `matMul` does) as one fast 2-D product per entry (fix 7). Falls back to `original` for the
 * shapes it does not cover: broadcasting other than "one side has no batch", too little work per
 * entry, or too many entries.
 */
function perEntryMatMul(
  args: Parameters<KernelFunc>[0],
  original: KernelFunc,
): ReturnType<KernelFunc> {
  const { inputs, backend } = args;
  const { a, b } = inputs as { a: TensorInfo; b: TensorInfo };
  const be = backend as unknown as WasmMemory;
  const ab = batchSize(a);
  const bb = batchSize(b);
  const [m, k] = a.shape.slice(-2) as [number, number];
  const n = b.shape[b.shape.length - 1]!;
  const outBatch = backend_util.assertAndGetBroadcastShape(
    a.shape.slice(0, -2),
    b.shape.slice(0, -2),
  );
  const entries = outBatch.reduce((p, d) => p * d, 1);
  const simple = (ab === entries || ab === 1) && (bb === entries || bb === 1);
  if (
    !simple ||
    a.dtype !== 'float32' ||
    b.dtype !== 'float32' ||
    m * k * n < PER_ENTRY_MIN_MACS ||
    entries > PER_ENTRY_MAX_BATCH
  ) {
    return original(args);
  }
  const outShape = [...outBatch, m, n];
  const temps: TensorInfo[] = [];
  try {
    if (bb === 1) {
      // Only a has batch entries: all of its rows times the one b, a single [ab*m, k] x [k, n].
      const a2 = run('Reshape', be, { x: a }, { shape: [1, ab * m, k] });
      temps.push(a2);
      const b2 = run('Reshape', be, { x: b }, { shape: [1, k, n] });
      temps.push(b2);
      const y = original({ ...args, inputs: { a: a2, b: b2 } }) as TensorInfo;
      temps.push(y);
      return run('Reshape', be, { x: y }, { shape: outShape });
    }
    const out = be.makeOutput(outShape, 'float32');
    let aShared: TensorInfo | undefined;
    if (ab === 1) {
      aShared = run('Reshape', be, { x: a }, { shape: [1, m, k] });
      temps.push(aShared);
    }
    for (let i = 0; i < entries; i++) {
      // Each allocation may grow the heap and detach earlier views: views are taken after it.
      let ai = aShared;
      if (ai === undefined) {
        ai = be.makeOutput([1, m, k], 'float32');
        be.typedArrayFromHeap(ai).set(
          be.typedArrayFromHeap(a).subarray(i * m * k, (i + 1) * m * k),
        );
      }
      const bi = be.makeOutput([1, k, n], 'float32');
      be.typedArrayFromHeap(bi).set(be.typedArrayFromHeap(b).subarray(i * k * n, (i + 1) * k * n));
      const yi = original({ ...args, inputs: { a: ai, b: bi } }) as TensorInfo;
      be.typedArrayFromHeap(out).set(be.typedArrayFromHeap(yi), i * m * n);
      if (ai !== aShared) be.disposeData(ai.dataId);
      be.disposeData(bi.dataId);
      be.disposeData(yi.dataId);
    }
    return out;
  } finally {
    for (const t of temps) be.disposeData(t.dataId);
  }
}

/** Rows of A and B per segment of the SIMD A^T B product (see `simdMatMul`). */
const MATMUL_ROWS = 64;

/**
 * `BatchMatMul` on the SIMD module (fix 10), every batch entry in place (no copies), transposes
 * folded into the loops:
 *
 *     A B      = 1x1 conv2d of A's rows by B (B packed by pack8)
 *     A B^T    = the same with B^T packed by pack8t
 *     A^T B    = conv2d_filter_grad_tap: sum over the rows r of A[r]^T B[r]
 *
 * Needs float32, N >= 8, M >= 4, K >= 16 (for A^T B: M a multiple of 4, N of 8), batch dims where
 * each side has either every entry or one; null otherwise (and for A^T B^T).
 */
function simdMatMul(
  backend: unknown,
  a: TensorInfo,
  b: TensorInfo,
  transposeA: boolean,
  transposeB: boolean,
): TensorInfo | null {
  const k = simdKernels(backend);
  if (k === null || (transposeA && transposeB) || a.dtype !== 'float32' || b.dtype !== 'float32') {
    return null;
  }
  const ra = a.shape.length;
  const rb = b.shape.length;
  const [m, kd] = transposeA
    ? [a.shape[ra - 1]!, a.shape[ra - 2]!]
    : [a.shape[ra - 2]!, a.shape[ra - 1]!];
  const n = transposeB ? b.shape[rb - 2]! : b.shape[rb - 1]!;
  if (kd < MIN_REDUCTION || m < 4 || n < 8 || (transposeA && (m % 4 !== 0 || n % 8 !== 0))) {
    return null;
  }
  const outBatch = backend_util.assertAndGetBroadcastShape(
    a.shape.slice(0, -2),
    b.shape.slice(0, -2),
  );
  const entries = outBatch.reduce((p, d) => p * d, 1);
  const ab = batchSize(a);
  const bb = batchSize(b);
  if (!((ab === entries || ab === 1) && (bb === entries || bb === 1))) return null;
  const heap = new Heap(backend as WasmHeapBackend);
  const out = heap.output([...outBatch, m, n]);
  const pa = heap.ptr(a);
  const pb = heap.ptr(b);
  const po = heap.ptr(out);
  const aStride = ab === 1 ? 0 : 4 * m * kd;
  const bStride = bb === 1 ? 0 : 4 * kd * n;
  try {
    if (transposeA) {
      // The K rows in chunks of MATMUL_ROWS (the kernel's segments), so that every 4 x 8 block of
      // the output re-reads a chunk of A and B from L1 instead of streaming all of them: one call
      // over the whole chunks, one more that adds the remaining rows.
      const whole = Math.floor(kd / MATMUL_ROWS);
      const rest = kd - whole * MATMUL_ROWS;
      for (let i = 0; i < entries; i++) {
        const ai = pa + i * aStride;
        const bi = pb + i * bStride;
        const oi = po + i * 4 * m * n;
        if (whole > 0) {
          k.conv2d_filter_grad_tap(
            ai,
            bi,
            oi,
            1,
            whole,
            MATMUL_ROWS,
            m,
            n,
            0,
            4 * MATMUL_ROWS * m,
            0,
          );
        }
        if (rest > 0) {
          const skip = whole * MATMUL_ROWS;
          k.conv2d_filter_grad_tap(
            ai + 4 * skip * m,
            bi + 4 * skip * n,
            oi,
            1,
            1,
            rest,
            m,
            n,
            0,
            0,
            whole > 0 ? 1 : 0,
          );
        }
      }
      return out;
    }
    const packed = heap.f32(kd * 8 * Math.ceil(n / 8));
    for (let i = 0; i < entries; i++) {
      if (i === 0 || bStride !== 0) {
        if (transposeB) k.pack8t(pb + i * bStride, packed, kd, n);
        else k.pack8(pb + i * bStride, packed, kd, n);
      }
      k.conv2d(
        pa + i * aStride,
        packed,
        po + i * 4 * m * n,
        1,
        1,
        m,
        kd,
        n,
        1,
        1,
        4 * m * kd,
        4 * m * kd,
      );
    }
    return out;
  } finally {
    heap.free();
  }
}

/** x zero-padded by `extra` at the end of axis `axis` (the wasm `PadV2` kernel). */
function padAxis(be: KernelBackend, x: TensorInfo, axis: number, extra: number): TensorInfo {
  const paddings = x.shape.map((_, i) => [0, i === axis ? extra : 0]);
  return run('PadV2', be, { x }, { paddings, constantValue: 0 });
}

/**
 * `simdMatMul`, and where its shape rules refuse an A^T B product with M not a multiple of 4 or N
 * not of 8 (a weight gradient with 2 outputs or 2 inputs, e.g. [4096, 256]^T [4096, 2]), the same
 * product on operands zero-padded to those multiples, its result sliced (fix 11). The padding adds
 * exact zeros to no sum of the kept outputs, so the values are those of the unpadded product. Null
 * where neither applies.
 */
function simdMatMulPadded(
  backend: unknown,
  a: TensorInfo,
  b: TensorInfo,
  transposeA: boolean,
  transposeB: boolean,
): TensorInfo | null {
  const direct = simdMatMul(backend, a, b, transposeA, transposeB);
  if (direct !== null || !transposeA || transposeB || simdKernels(backend) === null) return direct;
  if (a.dtype !== 'float32' || b.dtype !== 'float32') return null;
  const be = backend as KernelBackend;
  const ra = a.shape.length;
  const rb = b.shape.length;
  const [kd, m] = a.shape.slice(-2) as [number, number];
  const n = b.shape[rb - 1]!;
  if (kd < MIN_REDUCTION || m === 0 || n === 0) return null;
  const m4 = 4 * Math.ceil(m / 4);
  const n8 = 8 * Math.ceil(n / 8);
  const temps: TensorInfo[] = [];
  try {
    const a2 = m4 === m ? a : padAxis(be, a, ra - 1, m4 - m);
    if (a2 !== a) temps.push(a2);
    const b2 = n8 === n ? b : padAxis(be, b, rb - 1, n8 - n);
    if (b2 !== b) temps.push(b2);
    const y = simdMatMul(backend, a2, b2, true, false);
    if (y === null) return null;
    temps.push(y);
    const size = [...y.shape.slice(0, -2), m, n];
    return run('Slice', be, { x: y }, { begin: size.map(() => 0), size });
  } finally {
    for (const t of temps) be.disposeData(t.dataId);
  }
}

/**
 * Wraps a matMul kernel (`BatchMatMul` or `_FusedMatMul`) so that transposed operands are
 * transposed explicitly before the untransposed fast path runs.
 */
function withExplicitTranspose(original: KernelConfig): KernelConfig {
  const fused = original.kernelName === '_FusedMatMul';
  const kernelFunc: KernelFunc = ({ inputs, backend, attrs }) => {
    const be = backend as unknown as KernelBackend;
    const { transposeA, transposeB } = attrs as { transposeA: boolean; transposeB: boolean };
    const { a, b } = inputs as { a: TensorInfo; b: TensorInfo };
    if (!fused) {
      const fast = simdMatMulPadded(backend, a, b, transposeA, transposeB);
      if (fast !== null) return fast;
    }
    const batched = Math.max(batchSize(a), batchSize(b)) > 1;
    const inner: KernelFunc = !batched
      ? original.kernelFunc
      : fused
        ? batchedFusedMatMul
        : (args) => perEntryMatMul(args, original.kernelFunc);
    if (!transposeA && !transposeB) {
      return inner({ inputs, backend, attrs });
    }
    const temps: TensorInfo[] = [];
    try {
      const a2 = transposeA ? transposeLast2(be, a) : a;
      if (transposeA) temps.push(a2);
      const b2 = transposeB ? transposeLast2(be, b) : b;
      if (transposeB) temps.push(b2);
      return inner({
        inputs: { ...inputs, a: a2, b: b2 },
        backend,
        attrs: { ...attrs, transposeA: false, transposeB: false },
      });
    } finally {
      for (const t of temps) be.disposeData(t.dataId);
    }
  };
  return { ...original, kernelFunc };
}

/**
 * `OneHot` that honours its dtype and non-integer on/off values (fix 4): the wasm kernel builds an
 * int32 0/1 mask, which is cast and mapped to off + (on - off) * mask.
 */
function withOneHotDtype(original: KernelConfig): KernelConfig {
  const kernelFunc: KernelFunc = ({ inputs, backend, attrs }) => {
    const { dtype, onValue, offValue } = attrs as {
      dtype: string;
      onValue: number;
      offValue: number;
    };
    const integral = Number.isInteger(onValue) && Number.isInteger(offValue);
    if (dtype === 'int32' && integral) return original.kernelFunc({ inputs, backend, attrs });
    const be = backend as unknown as KernelBackend;
    const temps: TensorInfo[] = [];
    const keep = (t: TensorInfo) => {
      temps.push(t);
      return t;
    };
    try {
      const mask = keep(
        original.kernelFunc({
          inputs,
          backend,
          attrs: { ...attrs, dtype: 'int32', onValue: 1, offValue: 0 },
        }) as TensorInfo,
      );
      let y = keep(run('Cast', be, { x: mask }, { dtype: 'float32' }));
      if (onValue !== 1 || offValue !== 0) {
        const scale = keep(
          run('Fill', be, {}, { shape: [], value: onValue - offValue, dtype: 'float32' }),
        );
        const shift = keep(run('Fill', be, {}, { shape: [], value: offValue, dtype: 'float32' }));
        y = keep(run('Add', be, { a: keep(run('Multiply', be, { a: y, b: scale })), b: shift }));
      }
      return run('Cast', be, { x: y }, { dtype });
    } finally {
      for (const t of temps) be.disposeData(t.dataId);
    }
  };
  return { ...original, kernelFunc };
}

/** `UnsortedSegmentSum` for wasm (fix 5): onehot(ids)^T x, in float32. */
const unsortedSegmentSum: KernelFunc = ({ inputs, backend, attrs }) => {
  const be = backend as unknown as KernelBackend;
  const { x, segmentIds } = inputs as { x: TensorInfo; segmentIds: TensorInfo };
  const { numSegments } = attrs as { numSegments: number };
  const n = segmentIds.shape.reduce((a, b) => a * b, 1);
  const rest = x.shape.slice(segmentIds.shape.length);
  const r = rest.reduce((a, b) => a * b, 1);
  const temps: TensorInfo[] = [];
  const keep = (t: TensorInfo) => {
    temps.push(t);
    return t;
  };
  try {
    const ids = keep(run('Reshape', be, { x: segmentIds }, { shape: [n] }));
    const mask = keep(
      run(
        'OneHot',
        be,
        { indices: ids },
        { depth: numSegments, onValue: 1, offValue: 0, dtype: 'float32' },
      ),
    ); // [n, S]
    const maskT = keep(transpose(be, mask, [1, 0])); // [S, n]
    const xf = x.dtype === 'float32' ? x : keep(run('Cast', be, { x }, { dtype: 'float32' }));
    const x2 = keep(run('Reshape', be, { x: xf }, { shape: [n, r] }));
    const y = keep(
      run('BatchMatMul', be, { a: maskT, b: x2 }, { transposeA: false, transposeB: false }),
    );
    const yShaped = run('Reshape', be, { x: y }, { shape: [numSegments, ...rest] });
    if (x.dtype === 'float32') return yShaped;
    temps.push(yShaped);
    return run('Cast', be, { x: yShaped }, { dtype: x.dtype });
  } finally {
    for (const t of temps) be.disposeData(t.dataId);
  }
};

/**
 * w'[i, j, o, c] = w[kh - 1 - i, kw - 1 - j, c, o]: the filter flipped in both spatial axes with its
 * channel axes swapped (fix 6), in one pass over the heap.
 */
function flipSwapFilter(be: WasmMemory, filter: TensorInfo): TensorInfo {
  const [kh, kw, ci, co] = filter.shape as [number, number, number, number];
  const out = be.makeOutput([kh, kw, co, ci], 'float32');
  const src = be.typedArrayFromHeap(filter);
  const dst = be.typedArrayFromHeap(out);
  const tap = ci * co;
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      const from = ((kh - 1 - i) * kw + (kw - 1 - j)) * tap;
      const to = (i * kw + j) * tap;
      for (let c = 0; c < ci; c++) {
        const row = from + c * co;
        for (let o = 0; o < co; o++) dst[to + o * ci + c] = src[row + o]!;
      }
    }
  }
  return out;
}

/**
 * dy [N, OH, OW, C] spread over [N, (OH - 1) sh + 1, (OW - 1) sw + 1, C] with zeros between (the
 * input of a strided conv's transpose as a stride-1 one), in one pass over the heap.
 */
function dilate(be: WasmMemory, dy: TensorInfo, sh: number, sw: number): TensorInfo {
  const [n, oh, ow, c] = dy.shape as [number, number, number, number];
  const hd = (oh - 1) * sh + 1;
  const wd = (ow - 1) * sw + 1;
  const out = be.makeOutput([n, hd, wd, c], 'float32');
  const src = be.typedArrayFromHeap(dy);
  const dst = be.typedArrayFromHeap(out);
  dst.fill(0);
  for (let b = 0; b < n; b++) {
    for (let i = 0; i < oh; i++) {
      for (let j = 0; j < ow; j++) {
        const from = ((b * oh + i) * ow + j) * c;
        dst.set(src.subarray(from, from + c), ((b * hd + i * sh) * wd + j * sw) * c);
      }
    }
  }
  return out;
}

/**
 * `Conv2DBackpropInput` through a forward Conv2D (fix 6): of dy for stride 1, of dy dilated by the
 * strides otherwise; the original kernel for NCHW and other dtypes.
 */
function withFastBackpropInput(original: KernelConfig): KernelConfig {
  const kernelFunc: KernelFunc = ({ inputs, backend, attrs }) => {
    const { dy, filter } = inputs as { dy: TensorInfo; filter: TensorInfo };
    const { strides, pad, dataFormat, dimRoundingMode, inputShape } = attrs as unknown as {
      strides: [number, number] | number;
      pad: 'valid' | 'same' | number | backend_util.ExplicitPadding;
      dataFormat: 'NHWC' | 'NCHW';
      dimRoundingMode?: 'floor' | 'round' | 'ceil';
      inputShape: [number, number, number, number];
    };
    if (dataFormat === 'NCHW') return original.kernelFunc({ inputs, backend, attrs });
    const info = backend_util.computeConv2DInfo(
      inputShape,
      filter.shape as [number, number, number, number],
      strides,
      1,
      pad,
      dimRoundingMode,
      false,
      'channelsLast',
    );
    const { strideHeight: sh, strideWidth: sw, filterHeight: kh, filterWidth: kw } = info;
    const { inHeight, inWidth, outHeight, outWidth } = info;
    // A strided conv's input gradient is the stride-1 one of dy dilated by the strides.
    const dilatedH = (outHeight - 1) * sh + 1;
    const dilatedW = (outWidth - 1) * sw + 1;
    const beginH = kh - 1 - info.padInfo.top;
    const beginW = kw - 1 - info.padInfo.left;
    const endH = inHeight + kh - 1 - beginH - dilatedH;
    const endW = inWidth + kw - 1 - beginW - dilatedW;
    if (
      Math.min(beginH, beginW, endH, endW) < 0 ||
      filter.dtype !== 'float32' ||
      dy.dtype !== 'float32'
    ) {
      return original.kernelFunc({ inputs, backend, attrs });
    }
    const be = backend as unknown as WasmMemory;
    const temps: TensorInfo[] = [];
    try {
      const w = flipSwapFilter(be, filter);
      temps.push(w);
      const dyd = sh === 1 && sw === 1 ? dy : dilate(be, dy, sh, sw);
      if (dyd !== dy) temps.push(dyd);
      const fast = simdConv2D(be, dyd, w, [beginH, endH], [beginW, endW], (t) => {
        temps.push(t);
        return t;
      });
      if (fast !== null) return fast;
      return run(
        'Conv2D',
        be,
        { x: dyd, filter: w },
        {
          strides: [1, 1],
          pad: [
            [0, 0],
            [beginH, endH],
            [beginW, endW],
            [0, 0],
          ],
          dataFormat: 'NHWC',
          dilations: [1, 1],
          dimRoundingMode: 'floor',
        },
      );
    } finally {
      for (const t of temps) be.disposeData(t.dataId);
    }
  };
  return { ...original, kernelFunc };
}

/** Rows per block of `columnSums`: a block's columns stay in cache while their sums run down it. */
const SUM_BLOCK_ROWS = 64;

/**
 * Column sums of x viewed as [outer, inner]: out[j] = sum_i x[i inner + j], accumulated in float64,
 * four columns at a time in local variables down blocks of rows (4x faster than accumulating
 * through an array: no store-to-load chain per element).
 */
function columnSums(x: Float32Array, outer: number, inner: number): Float64Array {
  const acc = new Float64Array(inner);
  const wide = inner - (inner % 4);
  for (let i0 = 0; i0 < outer; i0 += SUM_BLOCK_ROWS) {
    const i1 = Math.min(outer, i0 + SUM_BLOCK_ROWS);
    for (let j = 0; j < wide; j += 4) {
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      for (let p = i0 * inner + j, end = i1 * inner; p < end; p += inner) {
        s0 += x[p]!;
        s1 += x[p + 1]!;
        s2 += x[p + 2]!;
        s3 += x[p + 3]!;
      }
      acc[j]! += s0;
      acc[j + 1]! += s1;
      acc[j + 2]! += s2;
      acc[j + 3]! += s3;
    }
    for (let j = wide; j < inner; j++) {
      let s0 = 0;
      for (let p = i0 * inner + j, end = i1 * inner; p < end; p += inner) s0 += x[p]!;
      acc[j]! += s0;
    }
  }
  return acc;
}

/**
 * `Sum` over a leading run of axes (fix 8): out[j] = sum_i x[i, j] with x viewed as
 * [outer, inner], in one pass with float64 accumulators (`col_sums` of the SIMD module, or
 * `columnSums` without it: the same sums in the same order); the original kernel otherwise.
 */
function withLeadingAxesSum(original: KernelConfig): KernelConfig {
  const kernelFunc: KernelFunc = (args) => {
    const { inputs, backend, attrs } = args;
    const { x } = inputs as { x: TensorInfo };
    const { axis, keepDims } = attrs as { axis: number | number[]; keepDims: boolean };
    const rank = x.shape.length;
    const axes = [...new Set(util.parseAxisParam(axis, x.shape))].sort((p, q) => p - q);
    const leading = axes.length > 0 && axes.length < rank && axes.every((a, i) => a === i);
    if (x.dtype !== 'float32' || !leading) return original.kernelFunc(args);
    const be = backend as unknown as WasmMemory;
    const outer = x.shape.slice(0, axes.length).reduce((p, d) => p * d, 1);
    const rest = x.shape.slice(axes.length);
    const inner = rest.reduce((p, d) => p * d, 1);
    const out = be.makeOutput(keepDims ? [...axes.map(() => 1), ...rest] : rest, 'float32');
    const k = simdKernels(backend);
    if (k === null) {
      be.typedArrayFromHeap(out).set(columnSums(be.typedArrayFromHeap(x), outer, inner));
      return out;
    }
    // the same sums on the SIMD module (col_sums: the blocks, order and float64 sums above)
    const heap = new Heap(backend as unknown as WasmHeapBackend);
    try {
      const acc = heap.f64(inner);
      heap.view64(acc, inner).fill(0);
      k.col_sums(heap.ptr(x), acc, outer, inner);
      be.typedArrayFromHeap(out).set(heap.view64(acc, inner));
    } finally {
      heap.free();
    }
    return out;
  };
  return { ...original, kernelFunc };
}

/**
 * `Concat` of float32 or int32 tensors with each input's rows copied by the SIMD module's
 * `copy_rows` (one `memory.copy` per row; fix 12); the original kernel otherwise (other dtypes, a
 * single non-empty input, no SIMD module).
 */
function withRowCopyConcat(original: KernelConfig): KernelConfig {
  const kernelFunc: KernelFunc = (args) => {
    const { backend, attrs } = args;
    const inputs = args.inputs as unknown as TensorInfo[];
    const k = simdKernels(backend);
    const dtype = inputs[0]?.dtype;
    const nonEmpty = inputs.filter((t) => util.sizeFromShape(t.shape) > 0);
    if (
      k === null ||
      (dtype !== 'float32' && dtype !== 'int32') ||
      inputs.some((t) => t.dtype !== dtype) ||
      nonEmpty.length < 2
    ) {
      return original.kernelFunc(args);
    }
    const axis = util.parseAxisParam(
      (attrs as { axis: number | number[] }).axis,
      inputs[0]!.shape,
    )[0]!;
    const shapes = inputs.map((t) => t.shape);
    backend_util.assertParamsConsistent(shapes, axis);
    const be = backend as unknown as WasmMemory;
    const out = (be as unknown as { makeOutput(s: number[], d: string): TensorInfo }).makeOutput(
      backend_util.computeOutShape(shapes, axis),
      dtype,
    );
    const heap = new Heap(backend as unknown as WasmHeapBackend);
    const rows = util.sizeFromShape(nonEmpty[0]!.shape.slice(0, axis));
    const inner = nonEmpty.map((t) => util.sizeFromShape(t.shape.slice(axis)));
    const stride = 4 * inner.reduce((p, d) => p + d, 0);
    let offset = heap.ptr(out);
    nonEmpty.forEach((t, i) => {
      k.copy_rows(heap.ptr(t), offset, rows, 4 * inner[i]!, stride);
      offset += 4 * inner[i]!;
    });
    return out;
  };
  return { ...original, kernelFunc };
}

/** The wasm backend's reference count on a buffer (`Reshape` shares buffers the same way). */
interface RefCounted {
  incRef(dataId: object): void;
}

/** A view of x's buffer (fix 9): no copy; the backend frees the buffer when both are disposed. */
function shareBuffer(backend: unknown, x: TensorInfo): TensorInfo {
  (backend as RefCounted).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

/** `Identity` without the copy (fix 9); strings keep the original kernel. */
function withSharedIdentity(original: KernelConfig): KernelConfig {
  const kernelFunc: KernelFunc = (args) => {
    const { x } = args.inputs as { x: TensorInfo };
    return x.dtype === 'string' ? original.kernelFunc(args) : shareBuffer(args.backend, x);
  };
  return { ...original, kernelFunc };
}

/** `Cast` to the input's own dtype without the copy (fix 9); real conversions keep the original. */
function withSharedSameDtypeCast(original: KernelConfig): KernelConfig {
  const kernelFunc: KernelFunc = (args) => {
    const { x } = args.inputs as { x: TensorInfo };
    const { dtype } = args.attrs as { dtype: string };
    return dtype === x.dtype && dtype !== 'string'
      ? shareBuffer(args.backend, x)
      : original.kernelFunc(args);
  };
  return { ...original, kernelFunc };
}

const PATCHED = Symbol.for('diffuse.wasmKernelsPatched');

/**
 * Installs the wasm kernel fixes. Idempotent; call after `@tensorflow/tfjs-backend-wasm` has
 * registered its kernels (initBackend does this for you).
 */
export function installWasmKernelFixes(): void {
  const g = globalThis as Record<symbol, unknown>;
  if (g[PATCHED]) return;
  for (const name of ['BatchMatMul', '_FusedMatMul']) {
    const original = getKernel(name, WASM);
    if (original === undefined) continue;
    unregisterKernel(name, WASM);
    registerKernel(withExplicitTranspose(original));
  }
  const backpropInput = getKernel('Conv2DBackpropInput', WASM);
  if (backpropInput !== undefined) {
    unregisterKernel('Conv2DBackpropInput', WASM);
    registerKernel(withFastBackpropInput(backpropInput));
  }
  const conv2D = getKernel('Conv2D', WASM);
  if (conv2D !== undefined) {
    unregisterKernel('Conv2D', WASM);
    registerKernel(withSimdConv2D(conv2D));
  }
  const identity = getKernel('Identity', WASM);
  if (identity !== undefined) {
    unregisterKernel('Identity', WASM);
    registerKernel(withSharedIdentity(identity));
  }
  const cast = getKernel('Cast', WASM);
  if (cast !== undefined) {
    unregisterKernel('Cast', WASM);
    registerKernel(withSharedSameDtypeCast(cast));
  }
  const sum = getKernel('Sum', WASM);
  if (sum !== undefined) {
    unregisterKernel('Sum', WASM);
    registerKernel(withLeadingAxesSum(sum));
  }
  const concat = getKernel('Concat', WASM);
  if (concat !== undefined) {
    unregisterKernel('Concat', WASM);
    registerKernel(withRowCopyConcat(concat));
  }
  const oneHot = getKernel('OneHot', WASM);
  if (oneHot !== undefined) {
    unregisterKernel('OneHot', WASM);
    registerKernel(withOneHotDtype(oneHot));
  }
  if (getKernel('UnsortedSegmentSum', WASM) === undefined) {
    registerKernel({
      kernelName: 'UnsortedSegmentSum',
      backendName: WASM,
      kernelFunc: unsortedSegmentSum,
    });
  }
  if (getKernel('Conv2DBackpropFilter', WASM) === undefined) {
    registerKernel({
      kernelName: 'Conv2DBackpropFilter',
      backendName: WASM,
      kernelFunc: conv2DBackpropFilter,
    });
  }
  g[PATCHED] = true;
}
