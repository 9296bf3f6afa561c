/**
 * Records the tfjs kernels a function runs, so a network written once in tfjs can be exported as a
 * graph (here: ONNX) without writing its architecture a second time.
 *
 * Every tfjs op reaches its backend through `engine.runKernel(kernelName, inputs, attrs)`; while
 * tracing, that method is wrapped (on the engine instance, restored afterwards) to record each
 * top-level call: the kernel name, its named input tensors, its attributes and its outputs.
 * Tensors that no recorded kernel produced and that are not declared inputs (weights, scalars created
 * inside ops) become constants, read once at trace time. A kernel whose inputs are all constants is
 * folded into a constant too (e.g. the frequency table of sinusoidal features), so the graph keeps
 * only the computation that depends on the inputs.
 */
import * as tf from '@tensorflow/tfjs-core';
import { OnnxError } from './errors.js';

/** A value in the traced graph: an input, a constant, or a kernel output. */
export interface TracedValue {
  id: number;
  shape: number[];
  dtype: tf.DataType;
}

/** A constant with its values, read at trace time. */
export interface TracedConstant extends TracedValue {
  values: tf.TypedArray;
}

/** One recorded kernel call. Input names are the kernel's own (`a`, `b`, `x`, `filter`, `0`, `1`...). */
export interface TracedNode {
  kernel: string;
  inputs: [string, TracedValue][];
  attrs: Record<string, unknown>;
  outputs: TracedValue[];
}

/** The recorded graph of one call. */
export interface TracedGraph {
  inputs: TracedValue[];
  constants: TracedConstant[];
  nodes: TracedNode[];
  output: TracedValue;
}

interface EngineLike {
  runKernel(
    kernelName: string,
    inputs: Record<string, tf.Tensor>,
    attrs?: object,
  ): tf.Tensor | tf.Tensor[];
}

const value = (t: tf.Tensor): TracedValue => ({ id: t.id, shape: [...t.shape], dtype: t.dtype });

/**
 * Runs `fn(...inputs)` once and returns the kernels it executed as a graph from `inputs` to its
 * result. The result tensor is disposed.
 *
 * @example
 * const x = tf.zeros([4, 2]);
 * const g = traceKernels((x) => tf.tanh(tf.matMul(x, w)), [x]);
 * g.nodes.map((n) => n.kernel); // ['BatchMatMul', 'Tanh']
 */
export function traceKernels(
  fn: (...inputs: tf.Tensor[]) => tf.Tensor,
  inputs: tf.Tensor[],
): TracedGraph {
  const engine = tf.engine() as unknown as EngineLike;
  const original = engine.runKernel;
  const produced = new Set<number>(inputs.map((t) => t.id));
  const constants = new Map<number, TracedConstant>();
  const nodes: TracedNode[] = [];
  let depth = 0;

  const constant = (t: tf.Tensor): TracedConstant => {
    let c = constants.get(t.id);
    if (c === undefined) {
      c = { ...value(t), values: t.dataSync() as tf.TypedArray };
      constants.set(t.id, c);
    }
    return c;
  };

  engine.runKernel = function (this: unknown, kernelName, kernelInputs, attrs) {
    if (depth > 0) return original.call(this, kernelName, kernelInputs, attrs);
    depth++;
    let out: tf.Tensor | tf.Tensor[];
    try {
      out = original.call(this, kernelName, kernelInputs, attrs);
    } finally {
      depth--;
    }
    const outs = Array.isArray(out) ? out : [out];
    const named = Object.entries(kernelInputs).filter(([, t]) => t != null) as [
      string,
      tf.Tensor,
    ][];
    const dynamic = named.some(([, t]) => produced.has(t.id));
    if (!dynamic) {
      // Depends on constants only: fold it.
      for (const o of outs) constant(o);
      return out;
    }
    nodes.push({
      kernel: kernelName,
      inputs: named.map(([name, t]) => [name, produced.has(t.id) ? value(t) : constant(t)]),
      attrs: { ...(attrs as Record<string, unknown>) },
      outputs: outs.map(value),
    });
    for (const o of outs) produced.add(o.id);
    return out;
  };

  let result: tf.Tensor;
  try {
    result = tf.tidy(() => fn(...inputs));
  } finally {
    engine.runKernel = original;
  }
  const output = value(result);
  result.dispose();
  if (!produced.has(output.id) || inputs.some((t) => t.id === output.id)) {
    throw new OnnxError('the traced function returned a tensor that does not depend on its inputs');
  }
  // Keep only the constants some node reads.
  const used = new Set(nodes.flatMap((n) => n.inputs.map(([, v]) => v.id)));
  return {
    inputs: inputs.map(value),
    constants: [...constants.values()].filter((c) => used.has(c.id)),
    nodes,
    output,
  };
}
