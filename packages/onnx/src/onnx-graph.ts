/**
 * Turns a traced tfjs kernel graph into an ONNX model (opset 13), one converter per tfjs kernel.
 *
 * Layout: tfjs convolutions are NHWC with HWIO filters; ONNX `Conv` is NCHW with OIHW weights, so
 * each Conv2D becomes Transpose -> Conv -> Transpose (ONNX Runtime's transpose optimizer cancels the
 * pairs between consecutive convolutions) and constant filters are re-laid out at export time.
 * Shapes are static: a graph is exported for one batch size.
 */
import { GROUP_NORM } from '@diffuse/backend';
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

/** Builds the node list of an ONNX graph; names values, adds constants on demand. */
class GraphBuilder {
  readonly nodes: P.INodeProto[] = [];
  readonly initializers: P.ITensorProto[] = [];
  private counter = 0;

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
  Reshape: (g, n, inp, out) =>
    g.node('Reshape', [inp('x'), g.int64(n.attrs.shape as number[])], [out]),
  ExpandDims: (g, n, inp, out) =>
    g.node('Reshape', [inp('input'), g.int64(n.outputs[0]!.shape)], [out]),
  Squeeze: (g, n, inp, out) => g.node('Reshape', [inp('x'), g.int64(n.outputs[0]!.shape)], [out]),
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
  Slice: (g, n, inp, out) => {
    const x = inputValue(n, 'x');
    const begin = n.attrs.begin as number[];
    const size = n.attrs.size as number[];
    const end = begin.map((b, i) => (size[i] === -1 ? x.shape[i]! : b + size[i]!));
    g.node(
      'Slice',
      [inp('x'), g.int64(begin), g.int64(end), g.int64(begin.map((_, i) => i))],
      [out],
    );
  },
  Tile: (g, n, inp, out) => g.node('Tile', [inp('x'), g.int64(n.attrs.reps as number[])], [out]),
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
    const groups = n.attrs.groups as number;
    const eps = (n.attrs.epsilon as number | undefined) ?? 1e-5;
    const activation = (n.attrs.activation as string | undefined) ?? 'none';
    if (activation !== 'none' && activation !== 'silu') {
      throw new OnnxError(`${GROUP_NORM} with activation '${activation}' is not supported`);
    }
    const c = shape[shape.length - 1]!;
    const s = shape.slice(1, -1).reduce((a, b) => a * b, 1);
    const grouped = g.op('Reshape', [inp('x'), g.int64([shape[0]!, s, groups, c / groups])]);
    const stat = [attrInts('axes', [1, 3]), attrInt('keepdims', 1)];
    const dev = g.op('Sub', [grouped, g.op('ReduceMean', [grouped], stat)]);
    const variance = g.op('ReduceMean', [g.op('Mul', [dev, dev])], stat);
    const xhat = g.op('Div', [dev, g.op('Sqrt', [g.op('Add', [variance, g.float([eps], [])])])]);
    const z = g.op('Add', [
      g.op('Mul', [g.op('Reshape', [xhat, g.int64(shape)]), inp('gamma')]),
      inp('beta'),
    ]);
    if (activation === 'silu') g.node('Mul', [z, g.op('Sigmoid', [z])], [out]);
    else g.node('Identity', [z], [out]);
  },
  ResizeNearestNeighbor: (g, n, inp, out) => {
    if (n.attrs.alignCorners)
      throw new OnnxError('ResizeNearestNeighbor with alignCorners is not supported');
    const mode = n.attrs.halfPixelCenters ? 'tf_half_pixel_for_nn' : 'asymmetric';
    g.node(
      'Resize',
      [inp('images'), '', '', g.int64(n.outputs[0]!.shape)],
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

function valueInfo(name: string, v: TracedValue): P.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: onnxType(v.dtype),
        shape: { dim: v.shape.map((d) => ({ dimValue: d })) },
      },
    },
  };
}

/**
 * Serialises a traced graph as an ONNX ModelProto (IR 7, opset 13).
 *
 * @example
 * const bytes = toOnnx(traceKernels(fn, [x]), { inputNames: ['x'], outputName: 'y' });
 */
export function toOnnx(
  graph: TracedGraph,
  options: { inputNames: string[]; outputName: string; graphName?: string; docString?: string },
): Uint8Array {
  const g = new GraphBuilder();
  const names = new Map<number, string>();
  for (const [i, v] of graph.inputs.entries()) names.set(v.id, options.inputNames[i]!);
  // Constants become initializers when a converter first reads them (a re-laid-out conv filter is
  // never read in its tfjs layout, so it is stored once).
  const constants = new Map(graph.constants.map((c) => [c.id, c]));
  const nameOf = (v: TracedValue): string | undefined => {
    let name = names.get(v.id);
    const c = constants.get(v.id);
    if (name === undefined && c !== undefined) {
      name = g.tensor(`c${c.id}`, c.shape, c.dtype, c.values);
      names.set(v.id, name);
    }
    return name;
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
      const name = nameOf(v);
      if (name === undefined) throw new OnnxError(`${n.kernel}: input '${key}' was never produced`);
      return name;
    };
    const out = n.outputs[0]!.id === graph.output.id ? options.outputName : g.name(n.outputs[0]!);
    convert(g, n, inp, out);
    names.set(n.outputs[0]!.id, out);
  }
  const model: P.IModelProto = {
    irVersion: 7,
    opsetImport: [{ domain: '', version: OPSET }],
    producerName: '@diffuse/onnx',
    docString: options.docString ?? '',
    graph: {
      name: options.graphName ?? 'diffuse',
      node: g.nodes,
      initializer: g.initializers,
      input: graph.inputs.map((v, i) => valueInfo(options.inputNames[i]!, v)),
      output: [valueInfo(options.outputName, graph.output)],
    },
  };
  return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
}
