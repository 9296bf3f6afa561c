/**
 * Export of Diffuse networks to ONNX: the network's own tfjs forward pass is traced (see `trace.ts`)
 * and translated kernel by kernel (see `onnx-graph.ts`), so there is no second copy of any
 * architecture. The batch axis is symbolic: the forward pass is traced at three batch sizes and
 * every shape that differs between them is computed from the batch in the graph.
 */

import type { Mlp, NoiseConditionalClassifier, UNet } from '@diffuse/models';
import * as tf from '@tensorflow/tfjs-core';
import { OnnxError } from './errors.js';
import { toOnnx } from './onnx-graph.js';
import { type TracedGraph, traceKernels } from './trace.js';

/** A network that can be exported: an MLP or U-Net denoiser, or a noise-conditional classifier. */
export type ExportableNetwork = Mlp | UNet | NoiseConditionalClassifier;

/** The graph's input names and what they hold. */
export const DENOISER_INPUTS = ['x', 'noise', 'labels'] as const;
export const CLASSIFIER_INPUTS = ['x', 'alpha', 'sigma'] as const;

/**
 * The batch sizes a symbolic-batch export traces at: distinct, above 1 (a batch of 1 can take
 * other paths, e.g. a shared noise level), and small so tracing is cheap. Batch-dependent shapes
 * are fitted to the first two and checked against the third.
 */
const TRACE_BATCHES = [3, 5, 4] as const;

/** Options of `exportOnnx`. */
export interface ExportOptions {
  /**
   * Fix the batch dimension to this size. Default: symbolic (`dim_param: 'batch'` on axis 0 of every
   * input and output), so one file and one ONNX Runtime session serve every batch size.
   */
  batchSize?: number;
}

/** The traced forward pass of `net` at batch `b`: the graph, its input names and output name. */
function traceAt(
  net: ExportableNetwork,
  b: number,
): { graph: TracedGraph; names: string[]; output: string } {
  const config = net.config;
  if (config.kind === 'classifier') {
    const clf = net as NoiseConditionalClassifier;
    const inputs = [tf.zeros([b, ...config.inputShape]), tf.fill([b], 0.8), tf.fill([b], 0.6)];
    try {
      const graph = traceKernels(
        (x, alpha, sigma) =>
          clf.logits(x!, { alpha: tf.reshape(alpha!, [b, 1]), sigma: tf.reshape(sigma!, [b, 1]) }),
        inputs,
      );
      return { graph, names: [...CLASSIFIER_INPUTS], output: 'logits' };
    } finally {
      tf.dispose(inputs);
    }
  }
  const den = net as Mlp | UNet;
  const inputs = [tf.zeros([b, ...den.shape]), tf.zeros([b])];
  if (config.numClasses > 0) inputs.push(tf.zeros([b], 'int32'));
  try {
    const graph = traceKernels(
      (x, noise, labels) => den.apply(x!, noise!, labels ? { labels } : undefined),
      inputs,
    );
    return { graph, names: DENOISER_INPUTS.slice(0, inputs.length), output: 'y' };
  } finally {
    tf.dispose(inputs);
  }
}

/**
 * The ONNX bytes of `net`, for any batch size (or for `options.batchSize` only).
 *
 * Denoisers (MLP, U-Net) export their raw network F(x; noise, labels) (`apply`): inputs
 * `x` float32 [batch, ...shape], `noise` float32 [batch] (logSNR), and `labels` int32 [batch] when
 * class-conditional (the null class is `numClasses`); output `y`, shaped like x. Classifiers export
 * `logits(x, {alpha, sigma})`: inputs `x`, `alpha` and `sigma` float32 [batch]; output `logits`
 * [batch, numClasses]. Axis 0 of each is the symbolic dimension `batch`. The model config is stored
 * as JSON in the doc string. The file opens in any ONNX tool (ONNX Runtime, Netron, onnx.checker).
 *
 * @example
 * import { writeFileSync } from 'node:fs';
 * const net = createModel(mlpConfig({ dim: 2 }));
 * writeFileSync('mlp.onnx', exportOnnx(net)); // batches of any size
 */
export function exportOnnx(net: ExportableNetwork, options: ExportOptions = {}): Uint8Array {
  const fixed = options.batchSize;
  if (fixed !== undefined && !(Number.isInteger(fixed) && fixed > 0)) {
    throw new OnnxError(`batchSize must be a positive integer, got ${fixed}`);
  }
  const a = traceAt(net, fixed ?? TRACE_BATCHES[0]);
  const twins = fixed === undefined ? TRACE_BATCHES.slice(1).map((b) => traceAt(net, b).graph) : [];
  return toOnnx(a.graph, {
    inputNames: a.names,
    outputName: a.output,
    docString: JSON.stringify(net.config),
    batchTwins: twins,
  });
}
