/**
 * Turns a traced tfjs kernel graph into an ONNX model (opset 13), one converter per tfjs kernel.
 *
 * Layout: tfjs convolutions are NHWC with HWIO filters; ONNX `Conv` is NCHW with OIHW weights, so
 * each Conv2D becomes Transpose -> Conv -> Transpose (ONNX Runtime's transpose optimizer cancels the
 * pairs between consecutive convolutions) and constant filters are re-laid out at export time.
 *
 * Batch: given traces of the same function at other batch sizes (`batchTwins`), axis 0 of every
 * input and output becomes the symbolic dimension `batch`, and every shape a kernel holds (Reshape
 * target, Tile reps, Slice bounds, Resize sizes, constants made per example) is compared between
 * the traces: an entry that differs is an affine function k * batch + c of the batch (fitted to two
 * traces, checked against the rest),
 * written in a Reshape target as 0 when it copies the input's dimension at the same index or as -1
 * when it is the only other one, and otherwise computed from `Shape(x)[0]` in the graph. One file
 * then serves every batch size.
 */
import { GROUP_NORM, SILU } from '@diffuse/backend';
import type * as tf from '@tensorflow/tfjs-core';
import { backend_util } from '@tensorflow/tfjs-core';
import type { onnx as P } from 'onnx-proto';
import onnxProto from 'onnx-proto';
import { OnnxError } from './errors.js';
import type { TracedConstant, TracedGraph, TracedNode, TracedValue } from './trace.js';

// onnx-proto is CommonJS: take the namespace from its default export (works from ESM and CJS).
const { onnx } = onnxProto;

const OPSET = 13;
const { DataType } = onnx.TensorProto;

function onnxType(dtype: tf.DataType): number {
  switch (dtype) {
    case 'float32':
      return DataType.FLOAT;
    case 'int32':
      return DataType.INT32;
    case 'bool':
      return DataType.BOOL;
    default:
      throw new OnnxError(`tensors of dtype '${dtype}' cannot be exported`);
  }
}

function rawBytes(values: tf.TypedArray | BigInt64Array, dtype: tf.DataType | 'int64'): Uint8Array {
  if (dtype === 'bool') return Uint8Array.from(values as Uint8Array, (v) => (v ? 1 : 0));
  const typed =
    dtype === 'float32'
      ? Float32Array.from(values as Float32Array)
      : dtype === 'int32'
        ? Int32Array.from(values as Int32Array)
        : (values as BigInt64Array);
  return new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
}

/** The batch sizes of the traces of one function, and the graph input holding the batch axis. */
interface BatchInfo {
  /** Batch size of each trace: the exported one first, then its twins. */
  sizes: number[];
  /** Name of a graph input whose axis 0 is the batch. */
  input: string;
}

/** Builds the node list of an ONNX graph; names values, adds constants on demand. */
class GraphBuilder {
  readonly nodes: P.INodeProto[] = [];
  readonly initializers: P.ITensorProto[] = [];
  private counter = 0;
  private batchName: string | undefined;

  constructor(
    /** The same node in the traces at the other batch sizes (absent: static shapes). */
    private readonly twins: Map<TracedNode, TracedNode[]> = new Map(),
    private readonly batch?: BatchInfo,
  ) {}

  /** The batch size as an int64 [1] tensor, `Shape(input)[0:1]`, computed once. */
  batchSize(): string {
    if (this.batch === undefined) throw new OnnxError('internal: no symbolic batch in this graph');
    this.batchName ??= this.op(
      'Gather',
      [this.op('Shape', [this.batch.input]), this.int64([0])],
      [attrInt('axis', 0)],
    );
    return this.batchName;
  }

  /**
   * An int64 shape-like vector: `select(n)` in a static graph; with a symbolic batch, each entry
   * that differs between the traces is written as k * batch + c (integers k, c fitted to the first
   * two traces and checked against the others). `reshaped`: the vector is a Reshape target and
   * this is the shape of the tensor reshaped; an entry equal to the input's dimension at the same
   * index in every trace becomes 0 (copy it: shape inference then keeps the symbol), and a single
   * remaining one becomes -1.
   */
  shape(
    n: TracedNode,
    select: (m: TracedNode) => number[],
    reshaped?: (m: TracedNode) => readonly number[],
  ): string {
    const twins = this.twins.get(n);
    if (twins === undefined) return this.int64(select(n));
    const traces = [n, ...twins];
    return this.shapeOf(traces.map(select), `${n.kernel}`, reshaped && traces.map(reshaped));
  }

  /** `shape` from the vector of each trace (see there). */
  shapeOf(values: number[][], what: string, reshaped?: (readonly number[])[]): string {
    const sizes = this.batch!.sizes;
    const a = values[0]!;
    const b = values[1]!;
    if (values.some((v) => v.length !== a.length)) {
      throw new OnnxError(`${what}: the rank of a shape changes with the batch size`);
    }
    const symbolic = a.flatMap((v, i) => (values.every((w) => w[i] === v) ? [] : [i]));
    if (symbolic.length === 0) return this.int64(a);
    if (reshaped !== undefined && !a.includes(0)) {
      // 0: copied from the input (the same in every trace); -1: the one entry left, inferred.
      const copied = symbolic.filter((i) => values.every((w, j) => reshaped[j]![i] === w[i]));
      const rest = symbolic.filter((i) => !copied.includes(i));
      if (rest.length === 0 || (rest.length === 1 && !a.includes(-1))) {
        const target = a.map((v, i) => (copied.includes(i) ? 0 : v));
        if (rest.length === 1) target[rest[0]!] = -1;
        return this.int64(target);
      }
    }
    const affine = symbolic.map((i) => {
      const k = (b[i]! - a[i]!) / (sizes[1]! - sizes[0]!);
      const c = a[i]! - k * sizes[0]!;
      if (
        !Number.isInteger(k) ||
        !Number.isInteger(c) ||
        values.some((w, j) => w[i] !== k * sizes[j]! + c)
      ) {
        const seen = values.map((w, j) => `${w[i]} at batch ${sizes[j]}`).join(', ');
        throw new OnnxError(
          `${what}: a shape entry (${seen}) is not k * batch + c with integers k, c: export with a fixed batchSize`,
        );
      }
      return { i, k, c };
    });
    // Runs of constant entries, and one computed entry per batch-dependent position.
    const parts: string[] = [];
    let run: number[] = [];
    for (let i = 0; i < a.length; i++) {
      const f = affine.find((e) => e.i === i);
      if (f === undefined) {
        run.push(a[i]!);
        continue;
      }
      if (run.length) parts.push(this.int64(run));
      run = [];
      let v = this.batchSize();
      if (f.k !== 1) v = this.op('Mul', [v, this.int64Scalar(f.k)]);
      if (f.c !== 0) v = this.op('Add', [v, this.int64Scalar(f.c)]);
      parts.push(v);
    }
    if (run.length) parts.push(this.int64(run));
    return parts.length === 1 ? parts[0]! : this.op('Concat', parts, [attrInt('axis', 0)]);
  }

  name(v: TracedValue): string {
    return `t${v.id}`;
  }

  fresh(hint: string): string {
    return `${hint}_${this.counter++}`;
  }

  node(op: string, inputs: string[], outputs: string[], attrs: P.IAttributeProto[] = []): void {
    this.nodes.push({
      opType: op,
      input: inputs,
      output: outputs,
      attribute: attrs,
      name: this.fresh(op),
    });
  }

  /** Adds a single-output node and returns its output name. */
  op(op: string, inputs: string[], attrs: P.IAttributeProto[] = []): string {
    const out = this.fresh(op.toLowerCase());
    this.node(op, inputs, [out], attrs);
    return out;
  }

  tensor(
    name: string,
    dims: number[],
    dtype: tf.DataType | 'int64',
    values: tf.TypedArray | BigInt64Array,
  ) {
    this.initializers.push({
      name,
      dims,
      dataType: dtype === 'int64' ? DataType.INT64 : onnxType(dtype),
      rawData: rawBytes(values, dtype),
    });
    return name;
  }

  int64(values: number[]): string {
    return this.tensor(
      this.fresh('i64'),
      [values.length],
      'int64',
      BigInt64Array.from(values.map(BigInt)),
    );
  }

  int64Scalar(v: number): string {
    return this.tensor(this.fresh('i64'), [], 'int64', BigInt64Array.from([BigInt(v)]));
  }

  float(values: number[], dims: number[] = [values.length]): string {
    return this.tensor(this.fresh('f32'), dims, 'float32', Float32Array.from(values));
  }
}

const attrInt = (name: string, i: number): P.IAttributeProto => ({
  name,
  i,
  type: onnx.AttributeProto.AttributeType.INT,
});
const attrInts = (name: string, ints: number[]): P.IAttributeProto => ({
  name,
  ints,
  type: onnx.AttributeProto.AttributeType.INTS,
});
const attrFloat = (name: string, f: number): P.IAttributeProto => ({
  name,
  f,
  type: onnx.AttributeProto.AttributeType.FLOAT,
});
const attrString = (name: string, s: string): P.IAttributeProto => ({
  name,
  s: new TextEncoder().encode(s),
  type: onnx.AttributeProto.AttributeType.STRING,
});

type Converter = (
  g: GraphBuilder,
  n: TracedNode,
  inp: (name: string) => string,
  out: string,
) => void;

const unary =
  (op: string): Converter =>
  (g, n, inp, out) =>
    g.node(op, [inp(n.inputs[0]![0])], [out]);
const binary =
  (op: string): Converter =>
  (g, _n, inp, out) =>
    g.node(op, [inp('a'), inp('b')], [out]);

function axesOf(axis: unknown, rank: number): number[] {
  const list = Array.isArray(axis) ? (axis as number[]) : [axis as number];
  return list.map((a) => (a < 0 ? a + rank : a));
}

function inputValue(n: TracedNode, name: string): TracedValue {
  const v = n.inputs.find(([k]) => k === name)?.[1];
  if (v === undefined) throw new OnnxError(`${n.kernel}: missing input '${name}'`);
  return v;
}

function swapLast2(g: GraphBuilder, x: string, rank: number): string {
  const perm = [...Array(rank).keys()];
  perm[rank - 2] = rank - 1;
  perm[rank - 1] = rank - 2;
  return g.op('Transpose', [x], [attrInts('perm', perm)]);
}

function activation(
  g: GraphBuilder,
  x: string,
  act: unknown,
  n: TracedNode,
  inp: (k: string) => string,
  out: string,
) {
  switch ((act as string | undefined) ?? 'linear') {
    case 'linear':
      g.node('Identity', [x], [out]);
      return;
    case 'relu':
      g.node('Relu', [x], [out]);
      return;
    case 'relu6':
      g.node('Clip', [x, g.float([0], []), g.float([6], [])], [out]);
      return;
    case 'elu':
      g.node('Elu', [x], [out]);
      return;
    case 'sigmoid':
      g.node('Sigmoid', [x], [out]);
      return;
    case 'leakyrelu':
      g.node(
        'LeakyRelu',
        [x],
        [out],
        [attrFloat('alpha', (n.attrs.leakyreluAlpha as number) ?? 0.2)],
      );
      return;
    case 'prelu':
      g.node('PRelu', [x, inp('preluActivationWeights')], [out]);
      return;
    default:
      throw new OnnxError(`${n.kernel}: unsupported activation '${String(act)}'`);
  }
}

function conv2d(
  g: GraphBuilder,
  n: TracedNode,
  inp: (k: string) => string,
  out: string,
  fused: boolean,
) {
  const x = inputValue(n, 'x');
  const filter = inputValue(n, 'filter');
  const { strides, pad, dilations, dataFormat, dimRoundingMode } = n.attrs as {
    strides: number | [number, number];
    pad: 'valid' | 'same' | number | backend_util.ExplicitPadding;
    dilations?: number | [number, number];
    dataFormat?: string;
    dimRoundingMode?: 'floor' | 'round' | 'ceil';
  };
  if (dataFormat === 'NCHW')
    throw new OnnxError('Conv2D: NCHW tfjs convolutions are not supported');
  const info = backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filter.shape as [number, number, number, number],
    strides,
    dilations ?? 1,
    pad,
    dimRoundingMode,
  );
  const xNchw = g.op('Transpose', [inp('x')], [attrInts('perm', [0, 3, 1, 2])]);
  // HWIO -> OIHW: constant filters are re-laid out here, computed ones get a Transpose node.
  let w: string;
  if ('values' in filter) {
    const [kh, kw, ci, co] = filter.shape as [number, number, number, number];
    const src = (filter as TracedConstant).values as Float32Array;
    const dst = new Float32Array(src.length);
    for (let h = 0; h < kh; h++)
      for (let k = 0; k < kw; k++)
        for (let i = 0; i < ci; i++)
          for (let o = 0; o < co; o++)
            dst[((o * ci + i) * kh + h) * kw + k] = src[((h * kw + k) * ci + i) * co + o]!;
    w = g.tensor(g.fresh('w'), [co, ci, kh, kw], 'float32', dst);
  } else {
    w = g.op('Transpose', [inp('filter')], [attrInts('perm', [3, 2, 0, 1])]);
  }
  const p = info.padInfo;
  const y = g.op(
    'Conv',
    [xNchw, w],
    [
      attrInts('strides', [info.strideHeight, info.strideWidth]),
      attrInts('dilations', [info.dilationHeight, info.dilationWidth]),
      attrInts('pads', [p.top, p.left, p.bottom, p.right]),
      attrInts('kernel_shape', [info.filterHeight, info.filterWidth]),
    ],
  );
  const yNhwc = g.op('Transpose', [y], [attrInts('perm', [0, 2, 3, 1])]);
  if (!fused) {
    g.node('Identity', [yNhwc], [out]);
    return;
  }
  const biased = n.inputs.some(([k]) => k === 'bias') ? g.op('Add', [yNhwc, inp('bias')]) : yNhwc;
  activation(g, biased, n.attrs.activation, n, inp, out);
}

/**
 * tfjs DepthwiseConv2dNative (NHWC, filter [kh, kw, C, multiplier]) as an ONNX grouped Conv
 * (group = C, weight [C * multiplier, 1, kh, kw]) between NHWC <-> NCHW transposes. Constant filters
 * only (a computed depthwise filter is an `OnnxError`).
 */
function depthwiseConv2d(g: GraphBuilder, n: TracedNode, inp: (k: string) => string, out: string) {
  const x = inputValue(n, 'x');
  const filter = inputValue(n, 'filter');
  const { strides, pad, dilations, dataFormat, dimRoundingMode } = n.attrs as {
    strides: number | [number, number];
    pad: 'valid' | 'same' | number | backend_util.ExplicitPadding;
    dilations?: number | [number, number];
    dataFormat?: string;
    dimRoundingMode?: 'floor' | 'round' | 'ceil';
  };
  if (dataFormat === 'NCHW')
    throw new OnnxError('DepthwiseConv2dNative: NCHW tfjs convolutions are not supported');
  if (!('values' in filter))
    throw new OnnxError('DepthwiseConv2dNative: only constant filters are exported');
  const info = backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filter.shape as [number, number, number, number],
    strides,
    dilations ?? 1,
    pad,
    dimRoundingMode,
    true,
  );
  const [kh, kw, c, mult] = filter.shape as [number, number, number, number];
  const src = (filter as TracedConstant).values as Float32Array;
  const dst = new Float32Array(src.length);
  for (let h = 0; h < kh; h++)
    for (let k = 0; k < kw; k++)
      for (let i = 0; i < c; i++)
        for (let m = 0; m < mult; m++)
          dst[((i * mult + m) * kh + h) * kw + k] = src[((h * kw + k) * c + i) * mult + m]!;
  const w = g.tensor(g.fresh('w'), [c * mult, 1, kh, kw], 'float32', dst);
  const xNchw = g.op('Transpose', [inp('x')], [attrInts('perm', [0, 3, 1, 2])]);
  const p = info.padInfo;
  const y = g.op(
    'Conv',
    [xNchw, w],
    [
      attrInts('strides', [info.strideHeight, info.strideWidth]),
      attrInts('dilations', [info.dilationHeight, info.dilationWidth]),
      attrInts('pads', [p.top, p.left, p.bottom, p.right]),
      attrInts('kernel_shape', [info.filterHeight, info.filterWidth]),
      attrInt('group', c),
    ],
  );
  g.node('Transpose', [y], [out], [attrInts('perm', [0, 2, 3, 1])]);
}

function matMul(
  g: GraphBuilder,
  n: TracedNode,
  inp: (k: string) => string,
  out: string,
  fused: boolean,
) {
  const { transposeA, transposeB } = n.attrs as { transposeA?: boolean; transposeB?: boolean };
  const a = transposeA ? swapLast2(g, inp('a'), inputValue(n, 'a').shape.length) : inp('a');
  const b = transposeB ? swapLast2(g, inp('b'), inputValue(n, 'b').shape.length) : inp('b');
  if (!fused) {
    g.node('MatMul', [a, b], [out]);
    return;
  }
  const y = g.op('MatMul', [a, b]);
  const biased = n.inputs.some(([k]) => k === 'bias') ? g.op('Add', [y, inp('bias')]) : y;
  activation(g, biased, n.attrs.activation, n, inp, out);
}

/**
 * Reshape, ExpandDims and Squeeze: an ONNX Reshape to the traced output shape (tfjs's own -1
 * resolved, so a batch axis copied from the input stays visible to shape inference).
 */
const reshapeToOutput =
  (input: string): Converter =>
  (g, n, inp, out) =>
    g.node(
      'Reshape',
      [
        inp(input),
        g.shape(
          n,
          (m) => m.outputs[0]!.shape,
          (m) => inputValue(m, input).shape,
        ),
      ],
      [out],
    );

/** The tfjs kernels this exporter understands, each with its ONNX translation. */
const CONVERTERS: Record<string, Converter> = {
  Add: binary('Add'),
  Sub: binary('Sub'),
  Multiply: binary('Mul'),
  RealDiv: binary('Div'),
  Maximum: binary('Max'),
  Minimum: binary('Min'),
  Pow: binary('Pow'),
  SquaredDifference: (g, _n, inp, out) => {
    const d = g.op('Sub', [inp('a'), inp('b')]);
    g.node('Mul', [d, d], [out]);
  },
  Sin: unary('Sin'),
  Cos: unary('Cos'),
  Exp: unary('Exp'),
  Log: unary('Log'),
  Sqrt: unary('Sqrt'),
  Neg: unary('Neg'),
  Abs: unary('Abs'),
  Sigmoid: unary('Sigmoid'),
  Tanh: unary('Tanh'),
  Relu: unary('Relu'),
  Erf: unary('Erf'),
  Reciprocal: unary('Reciprocal'),
  Softplus: unary('Softplus'),
  Floor: unary('Floor'),
  Identity: unary('Identity'),
  Rsqrt: (g, _n, inp, out) => g.node('Reciprocal', [g.op('Sqrt', [inp('x')])], [out]),
  Square: (g, _n, inp, out) => g.node('Mul', [inp('x'), inp('x')], [out]),
  Relu6: (g, _n, inp, out) => g.node('Clip', [inp('x'), g.float([0], []), g.float([6], [])], [out]),
  LeakyRelu: (g, n, inp, out) =>
    g.node('LeakyRelu', [inp('x')], [out], [attrFloat('alpha', n.attrs.alpha as number)]),
  Elu: unary('Elu'),
  Prelu: (g, _n, inp, out) => g.node('PRelu', [inp('x'), inp('alpha')], [out]),
  ClipByValue: (g, n, inp, out) =>
    g.node(
      'Clip',
      [
        inp('x'),
        g.float([n.attrs.clipValueMin as number], []),
        g.float([n.attrs.clipValueMax as number], []),
      ],
      [out],
    ),
  Cast: (g, n, inp, out) =>
    g.node('Cast', [inp('x')], [out], [attrInt('to', onnxType(n.attrs.dtype as tf.DataType))]),
  Reshape: reshapeToOutput('x'),
  ExpandDims: reshapeToOutput('input'),
  Squeeze: reshapeToOutput('x'),
  Transpose: (g, n, inp, out) =>
    g.node('Transpose', [inp('x')], [out], [attrInts('perm', n.attrs.perm as number[])]),
  Concat: (g, n, inp, out) => {
    const rank = n.outputs[0]!.shape.length;
    const axis = axesOf(n.attrs.axis, rank)[0]!;
    g.node(
      'Concat',
      n.inputs.map(([k]) => inp(k)),
      [out],
      [attrInt('axis', axis)],
    );
  },
  BatchMatMul: (g, n, inp, out) => matMul(g, n, inp, out, false),
  _FusedMatMul: (g, n, inp, out) => matMul(g, n, inp, out, true),
  Conv2D: (g, n, inp, out) => conv2d(g, n, inp, out, false),
  FusedConv2D: (g, n, inp, out) => conv2d(g, n, inp, out, true),
  DepthwiseConv2dNative: (g, n, inp, out) => depthwiseConv2d(g, n, inp, out),
  Mean: (g, n, inp, out) => {
    const axes = axesOf(n.attrs.axis, inputValue(n, 'x').shape.length);
    g.node(
      'ReduceMean',
      [inp('x')],
      [out],
      [attrInts('axes', axes), attrInt('keepdims', n.attrs.keepDims ? 1 : 0)],
    );
  },
  Max: (g, n, inp, out) => {
    const axes = axesOf(n.attrs.reductionIndices, inputValue(n, 'x').shape.length);
    g.node(
      'ReduceMax',
      [inp('x')],
      [out],
      [attrInts('axes', axes), attrInt('keepdims', n.attrs.keepDims ? 1 : 0)],
    );
  },
  Sum: (g, n, inp, out) => {
    const axes = axesOf(n.attrs.axis, inputValue(n, 'x').shape.length);
    g.node(
      'ReduceSum',
      [inp('x'), g.int64(axes)],
      [out],
      [attrInt('keepdims', n.attrs.keepDims ? 1 : 0)],
    );
  },
  Softmax: (g, n, inp, out) => {
    const axis = axesOf(n.attrs.dim, inputValue(n, 'logits').shape.length)[0]!;
    g.node('Softmax', [inp('logits')], [out], [attrInt('axis', axis)]);
  },
  // one_hot(i)[k] = (i == k) ? on : off, as Equal against the constant row 0..depth-1 (ONNX
  // Runtime implements OneHot for only a few index/value type pairs; Equal and Cast cover all).
  OneHot: (g, n, inp, out) => {
    const depth = n.attrs.depth as number;
    const dtype = (n.attrs.dtype as tf.DataType | undefined) ?? 'int32';
    const on = n.attrs.onValue as number;
    const off = n.attrs.offValue as number;
    const indices = inputValue(n, 'indices');
    const rank = indices.shape.length;
    const idx = g.op('Unsqueeze', [inp('indices'), g.int64([rank])]);
    const idxInt =
      indices.dtype === 'int32' ? idx : g.op('Cast', [idx], [attrInt('to', onnxType('int32'))]);
    const row = g.tensor(
      g.fresh('range'),
      [depth],
      'int32',
      Int32Array.from({ length: depth }, (_, k) => k),
    );
    const mask = g.op('Equal', [idxInt, row]);
    const scaled =
      on === 1 && off === 0
        ? g.op('Cast', [mask], [attrInt('to', onnxType('float32'))])
        : g.op('Add', [
            g.op('Mul', [
              g.op('Cast', [mask], [attrInt('to', onnxType('float32'))]),
              g.float([on - off], []),
            ]),
            g.float([off], []),
          ]);
    g.node('Cast', [scaled], [out], [attrInt('to', onnxType(dtype))]);
  },
  GatherV2: (g, n, inp, out) => {
    if ((n.attrs.batchDims as number | undefined) ?? 0)
      throw new OnnxError('GatherV2 with batchDims is not supported');
    const axis = axesOf(n.attrs.axis, inputValue(n, 'x').shape.length)[0]!;
    g.node('Gather', [inp('x'), inp('indices')], [out], [attrInt('axis', axis)]);
  },
  // size -1: to the end of the axis, whatever its length (ONNX clamps `ends` to the dimension).
  Slice: (g, n, inp, out) => {
    const begin = (m: TracedNode) => m.attrs.begin as number[];
    const end = (m: TracedNode) =>
      begin(m).map((b, i) => {
        const size = (m.attrs.size as number[])[i]!;
        return size === -1 ? Number.MAX_SAFE_INTEGER : b + size;
      });
    g.node(
      'Slice',
      [inp('x'), g.shape(n, begin), g.shape(n, end), g.int64(begin(n).map((_, i) => i))],
      [out],
    );
  },
  Tile: (g, n, inp, out) =>
    g.node('Tile', [inp('x'), g.shape(n, (m) => m.attrs.reps as number[])], [out]),
  PadV2: (g, n, inp, out) => {
    const pads = n.attrs.paddings as [number, number][];
    g.node(
      'Pad',
      [
        inp('x'),
        g.int64([...pads.map((p) => p[0]), ...pads.map((p) => p[1])]),
        g.float([(n.attrs.constantValue as number) ?? 0], []),
      ],
      [out],
      [attrString('mode', 'constant')],
    );
  },
  // @diffuse/backend's fused GroupNorm (+ SiLU), channels last (Wu & He 2018, eq. 1-2): x viewed as
  // [N, S, G, C/G], statistics over (S, C/G), then the per-channel affine map and the activation.
  // Opset 13 has no GroupNormalization, so it is written out in standard ops.
  [GROUP_NORM]: (g, n, inp, out) => {
    const shape = inputValue(n, 'x').shape;
    const xShape = (m: TracedNode) => inputValue(m, 'x').shape;
    const groups = n.attrs.groups as number;
    const eps = (n.attrs.epsilon as number | undefined) ?? 1e-5;
    const activation = (n.attrs.activation as string | undefined) ?? 'none';
    if (activation !== 'none' && activation !== 'silu') {
      throw new OnnxError(`${GROUP_NORM} with activation '${activation}' is not supported`);
    }
    const c = shape[shape.length - 1]!;
    const s = shape.slice(1, -1).reduce((a, b) => a * b, 1);
    const groupedShape = (m: TracedNode) => [xShape(m)[0]!, s, groups, c / groups];
    const grouped = g.op('Reshape', [inp('x'), g.shape(n, groupedShape, xShape)]);
    const stat = [attrInts('axes', [1, 3]), attrInt('keepdims', 1)];
    const dev = g.op('Sub', [grouped, g.op('ReduceMean', [grouped], stat)]);
    const variance = g.op('ReduceMean', [g.op('Mul', [dev, dev])], stat);
    const xhat = g.op('Div', [dev, g.op('Sqrt', [g.op('Add', [variance, g.float([eps], [])])])]);
    const z = g.op('Add', [
      g.op('Mul', [g.op('Reshape', [xhat, g.shape(n, xShape, groupedShape)]), inp('gamma')]),
      inp('beta'),
    ]);
    if (activation === 'silu') g.node('Mul', [z, g.op('Sigmoid', [z])], [out]);
    else g.node('Identity', [z], [out]);
  },
  // @diffuse/backend's fused SiLU: x sigmoid(x).
  [SILU]: (g, _n, inp, out) => {
    g.node('Mul', [inp('x'), g.op('Sigmoid', [inp('x')])], [out]);
  },
  ResizeNearestNeighbor: (g, n, inp, out) => {
    if (n.attrs.alignCorners)
      throw new OnnxError('ResizeNearestNeighbor with alignCorners is not supported');
    const mode = n.attrs.halfPixelCenters ? 'tf_half_pixel_for_nn' : 'asymmetric';
    g.node(
      'Resize',
      [inp('images'), '', '', g.shape(n, (m) => m.outputs[0]!.shape)],
      [out],
      [
        attrString('mode', 'nearest'),
        attrString('coordinate_transformation_mode', mode),
        attrString('nearest_mode', 'floor'),
      ],
    );
  },
};

/** Kernel names the exporter can translate. */
export const SUPPORTED_KERNELS: readonly string[] = Object.keys(CONVERTERS);

/** The symbolic name of the batch axis in exported graphs. */
export const BATCH_DIM = 'batch';

function valueInfo(name: string, v: TracedValue, symbolicBatch: boolean): P.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: onnxType(v.dtype),
        shape: {
          dim: v.shape.map((d, i) =>
            i === 0 && symbolicBatch ? { dimParam: BATCH_DIM } : { dimValue: d },
          ),
        },
      },
    },
  };
}

/** Options of `toOnnx`. */
export interface ToOnnxOptions {
  /** Names of the graph inputs, in the order of the traced inputs. */
  inputNames: string[];
  outputName: string;
  graphName?: string;
  docString?: string;
  /**
   * The same function traced at other batch sizes (at least one; each further one checks the
   * first). Then axis 0 of every input and of the output is the symbolic dimension `batch`
   * (`dim_param`), and every shape held by a kernel that differs between the traces is computed
   * from the batch at run time: one graph for every batch size.
   */
  batchTwins?: readonly TracedGraph[];
}

const sameShape = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((d, i) => d === b[i]);

/** Pairs the nodes of traces of one function, checking that they have the same structure. */
function pairNodes(a: TracedGraph, twins: readonly TracedGraph[]): Map<TracedNode, TracedNode[]> {
  const changes = () =>
    new OnnxError(
      'the traced graph changes with the batch size (different kernels at two batch sizes): export with a fixed batchSize',
    );
  const keys = (x: TracedNode) => x.inputs.map(([k]) => k).join(',');
  for (const t of twins) {
    if (t.nodes.length !== a.nodes.length || t.inputs.length !== a.inputs.length) throw changes();
  }
  const pairs = new Map<TracedNode, TracedNode[]>();
  for (const [i, n] of a.nodes.entries()) {
    const same = twins.map((t) => t.nodes[i]!);
    if (same.some((m) => m.kernel !== n.kernel || keys(m) !== keys(n))) throw changes();
    pairs.set(n, same);
  }
  return pairs;
}

/** Whether every slice along axis 0 of a constant equals the first. */
function rowsEqual(c: TracedConstant): boolean {
  const row = c.shape.slice(1).reduce((p, d) => p * d, 1);
  for (let i = row; i < c.values.length; i++) if (c.values[i] !== c.values[i % row]) return false;
  return true;
}

/**
 * Serialises a traced graph as an ONNX ModelProto (IR 7, opset 13); with `batchTwins`, one graph
 * for every batch size (axis 0 symbolic).
 *
 * @example
 * const trace = (b: number) => traceKernels(fn, [tf.zeros([b, 2])]);
 * const bytes = toOnnx(trace(3), { inputNames: ['x'], outputName: 'y', batchTwins: [trace(5), trace(4)] });
 */
export function toOnnx(graph: TracedGraph, options: ToOnnxOptions): Uint8Array {
  const twinGraphs = options.batchTwins ?? [];
  let batch: BatchInfo | undefined;
  let twins = new Map<TracedNode, TracedNode[]>();
  if (twinGraphs.length > 0) {
    twins = pairNodes(graph, twinGraphs);
    const traces = [graph, ...twinGraphs];
    batch = { sizes: traces.map((t) => t.inputs[0]!.shape[0]!), input: options.inputNames[0]! };
    if (new Set(batch.sizes).size !== batch.sizes.length) {
      throw new OnnxError(`batchTwins must be traced at other batch sizes (got ${batch.sizes})`);
    }
    const ends = [
      ...graph.inputs.map(
        (_, i) => [options.inputNames[i]!, traces.map((t) => t.inputs[i]!)] as const,
      ),
      [options.outputName, traces.map((t) => t.output)] as const,
    ];
    for (const [name, values] of ends) {
      const ok = values.every(
        (v, j) =>
          v.shape[0] === batch!.sizes[j] && sameShape(v.shape.slice(1), values[0]!.shape.slice(1)),
      );
      if (!ok) {
        throw new OnnxError(
          `'${name}' must have the batch on axis 0 and a fixed shape after it (got ${values.map((v, j) => `[${v.shape}] at batch ${batch!.sizes[j]}`).join(', ')})`,
        );
      }
    }
  }
  const g = new GraphBuilder(twins, batch);
  const names = new Map<number, string>();
  for (const [i, v] of graph.inputs.entries()) names.set(v.id, options.inputNames[i]!);
  // Constants become initializers when a converter first reads them (a re-laid-out conv filter is
  // never read in its tfjs layout, so it is stored once).
  const constants = new Map(graph.constants.map((c) => [c.id, c]));
  const twinConstants = twinGraphs.map((t) => new Map(t.constants.map((c) => [c.id, c])));
  /** A constant: the same in every trace (weights), or made per example (expanded to the batch). */
  const constantName = (n: TracedNode, key: string, c: TracedConstant): string => {
    const same = twins.get(n);
    if (same === undefined) return g.tensor(`c${c.id}`, c.shape, c.dtype, c.values);
    const others = same.map((m, j) =>
      twinConstants[j]!.get(m.inputs.find(([k]) => k === key)![1].id),
    );
    if (others.some((o) => o === undefined)) {
      throw new OnnxError(`${n.kernel}: input '${key}' is constant at some batch sizes only`);
    }
    const all = [c, ...(others as TracedConstant[])];
    if (all.every((o) => sameShape(o.shape, c.shape))) {
      if (all.some((o) => o.values.some((v, i) => v !== c.values[i]))) {
        throw new OnnxError(
          `${n.kernel}: a constant input '${key}' has other values at another batch size: export with a fixed batchSize`,
        );
      }
      return g.tensor(`c${c.id}`, c.shape, c.dtype, c.values);
    }
    // Made per example (e.g. tf.ones([batch])): one row, expanded to the batch at run time.
    if (!all.every((o) => sameShape(o.shape.slice(1), c.shape.slice(1)) && rowsEqual(o))) {
      throw new OnnxError(
        `${n.kernel}: constant input '${key}' is ${all.map((o, j) => `[${o.shape}] at batch ${batch!.sizes[j]}`).join(', ')}, not one row repeated per example`,
      );
    }
    const rowLength = c.shape.slice(1).reduce((p, d) => p * d, 1);
    const row = g.tensor(
      `c${c.id}_row`,
      [1, ...c.shape.slice(1)],
      c.dtype,
      c.values.slice(0, rowLength) as tf.TypedArray,
    );
    return g.op('Expand', [
      row,
      g.shapeOf(
        all.map((o) => o.shape),
        `${n.kernel} '${key}'`,
      ),
    ]);
  };
  for (const n of graph.nodes) {
    const convert = CONVERTERS[n.kernel];
    if (convert === undefined) {
      throw new OnnxError(
        `tfjs kernel '${n.kernel}' has no ONNX translation (supported: ${SUPPORTED_KERNELS.join(', ')})`,
      );
    }
    if (n.outputs.length !== 1)
      throw new OnnxError(`${n.kernel}: multi-output kernels are not supported`);
    const inp = (key: string) => {
      const v = n.inputs.find(([k]) => k === key)?.[1];
      if (v === undefined) throw new OnnxError(`${n.kernel}: missing input '${key}'`);
      let name = names.get(v.id);
      const c = constants.get(v.id);
      if (name === undefined && c !== undefined) {
        name = constantName(n, key, c);
        names.set(v.id, name);
      }
      if (name === undefined) throw new OnnxError(`${n.kernel}: input '${key}' was never produced`);
      return name;
    };
    const out = n.outputs[0]!.id === graph.output.id ? options.outputName : g.name(n.outputs[0]!);
    convert(g, n, inp, out);
    names.set(n.outputs[0]!.id, out);
  }
  const symbolic = twinGraphs.length > 0;
  const model: P.IModelProto = {
    irVersion: 7,
    opsetImport: [{ domain: '', version: OPSET }],
    producerName: '@diffuse/onnx',
    docString: options.docString ?? '',
    graph: {
      name: options.graphName ?? 'diffuse',
      node: g.nodes,
      initializer: g.initializers,
      input: graph.inputs.map((v, i) => valueInfo(options.inputNames[i]!, v, symbolic)),
      output: [valueInfo(options.outputName, graph.output, symbolic)],
    },
  };
  return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
}
