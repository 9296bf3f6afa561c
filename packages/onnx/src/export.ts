/**
 * Export of Diffuse networks to ONNX: the network's own tfjs forward pass is traced (see `trace.ts`)
 * and translated kernel by kernel (see `onnx-graph.ts`), so there is no second copy of any
 * architecture. Shapes are static; export once per batch size.
 */

import type { Mlp, NoiseConditionalClassifier, UNet } from '@diffuse/models';
import * as tf from '@tensorflow/tfjs-core';
import { toOnnx } from './onnx-graph.js';
import { traceKernels } from './trace.js';

/** A network that can be exported: an MLP or U-Net denoiser, or a noise-conditional classifier. */
export type ExportableNetwork = Mlp | UNet | NoiseConditionalClassifier;

/** The graph's input names and what they hold. */
export const DENOISER_INPUTS = ['x', 'noise', 'labels'] as const;
export const CLASSIFIER_INPUTS = ['x', 'alpha', 'sigma'] as const;

/**
 * The ONNX bytes of `net` for batches of `batchSize`.
 *
 * Denoisers (MLP, U-Net) export their raw network F(x; noise, labels) (`apply`): inputs
 * `x` float32 [batch, ...shape], `noise` float32 [batch] (logSNR), and `labels` int32 [batch] when
 * class-conditional (the null class is `numClasses`); output `y`, shaped like x. Classifiers export
 * `logits(x, {alpha, sigma})`: inputs `x`, `alpha` and `sigma` float32 [batch]; output `logits`.
 * The file opens in any ONNX tool (ONNX Runtime, Netron, onnx.checker).
 *
 * @example
 * import { writeFileSync } from 'node:fs';
 * const net = createModel(mlpConfig({ dim: 2 }));
 * writeFileSync('mlp.onnx', exportOnnx(net, { batchSize: 4096 }));
 */
export function exportOnnx(net: ExportableNetwork, options: { batchSize: number }): Uint8Array {
  const b = options.batchSize;
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
      return toOnnx(graph, {
        inputNames: [...CLASSIFIER_INPUTS],
        outputName: 'logits',
        docString: JSON.stringify(config),
      });
    } finally {
      tf.dispose(inputs);
    }
  }
  const den = net as Mlp | UNet;
  const conditional = config.numClasses > 0;
  const inputs = [tf.zeros([b, ...den.shape]), tf.zeros([b])];
  if (conditional) inputs.push(tf.zeros([b], 'int32'));
  try {
    const graph = traceKernels(
      (x, noise, labels) => den.apply(x!, noise!, labels ? { labels } : undefined),
      inputs,
    );
    return toOnnx(graph, {
      inputNames: DENOISER_INPUTS.slice(0, inputs.length),
      outputName: 'y',
      docString: JSON.stringify(config),
    });
  } finally {
    tf.dispose(inputs);
  }
}
