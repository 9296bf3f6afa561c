#!/usr/bin/env node
/**
 * `diffuse-train`: trains the models the demo ships.
 *
 *   diffuse-train mnist   --out weights/mnist-unet --checkpoints runs/mnist --minutes 45
 *   diffuse-train mixture --out weights/mixture-mlp --checkpoints runs/mixture
 *   diffuse-train flow-mixture --out weights/flow-mixture-mlp --checkpoints runs/flow-mixture
 *   diffuse-train mnist-judge --out weights/mnist-judge --steps 3000
 *   diffuse-train mnist-classifier --out weights/mnist-classifier
 *   diffuse-train mnist-noisy-classifier --out weights/mnist-noisy-classifier --minutes 20
 *   diffuse-train eval-mnist --model weights/mnist-unet --classifier weights/mnist-classifier
 *
 * Runs resume from their checkpoint directory; `--minutes` bounds the wall-clock time (the run saves
 * a checkpoint and its weights when the budget runs out).
 */
import { parseArgs } from 'node:util';
import type { BackendName } from '@diffuse/backend';
import type { CommonOptions } from './common.js';

const USAGE = `usage: diffuse-train <mnist|mixture|flow-mixture|mnist-judge|mnist-classifier|mnist-noisy-classifier|eval-mnist|probe-mnist> [options]
  --out PATH           output base (default weights/<command>)
  --checkpoints DIR    checkpoint directory, resumed if present (default runs/<command>)
  --steps N            training steps
  --minutes M          wall-clock budget (default: none)
  --seed N             seed (default 0)
  --backend NAME       wasm | cpu (default wasm)
  --batch-size N       batch size
  --lr X               peak learning rate
  --channels N         base channels of the U-Net (mnist) or conv classifier (mnist-noisy-classifier)
  --trunk mlp|conv     mnist-noisy-classifier's trunk (default mlp)
  --weighting W        loss weighting of mnist: epsilon (default), min-snr (Min-SNR-5) or edm
  mnist: --prediction epsilon|v|edm (EDM preconditioning, x0)  --noise cosine|edm (log-normal)
         --res-blocks N  --attention 14,7  --cond-dropout P  --ema-decay D  --data generator|all
  --workers N          gradient worker threads, one batch shard each (mnist, mixture; default 0: main thread)
  eval-mnist: --model BASE --classifier BASE (the judge, default weights/mnist-judge) --per-class N
              --sample-steps N --guidance S [--guide BASE: also classifier guidance with this
              noise-conditional classifier, of the null-class model and of the class-conditional one]
              [--guide-scale S: classifier guidance's scale (default: --guidance)]
              [--out FILE: metrics file to update] [--modes unconditional,guidance1,guidance3,
              classifierGuidance3,conditionalClassifierGuidance3: only these]
  probe-mnist: --model BASE: held-out x0 error at logSNR -4..4, right and null label (trials)`;

async function main(): Promise<void> {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: {
      out: { type: 'string' },
      checkpoints: { type: 'string' },
      steps: { type: 'string' },
      minutes: { type: 'string' },
      seed: { type: 'string', default: '0' },
      backend: { type: 'string', default: 'wasm' },
      'batch-size': { type: 'string' },
      lr: { type: 'string' },
      channels: { type: 'string' },
      workers: { type: 'string', default: '0' },
      weighting: { type: 'string', default: 'epsilon' },
      prediction: { type: 'string', default: 'epsilon' },
      noise: { type: 'string', default: 'cosine' },
      'res-blocks': { type: 'string' },
      attention: { type: 'string' },
      'cond-dropout': { type: 'string' },
      'ema-decay': { type: 'string' },
      data: { type: 'string', default: 'generator' },
      trunk: { type: 'string', default: 'mlp' },
      model: { type: 'string' },
      classifier: { type: 'string' },
      guide: { type: 'string' },
      'per-class': { type: 'string' },
      'sample-steps': { type: 'string' },
      guidance: { type: 'string' },
      'guide-scale': { type: 'string' },
      modes: { type: 'string' },
      help: { type: 'boolean' },
    },
  });
  const command = positionals[0];
  if (values.help || command === undefined) {
    console.log(USAGE);
    process.exit(values.help ? 0 : 1);
  }
  const num = (name: string, v: string | undefined, fallback: number): number => {
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isFinite(n)) {
      console.error(`--${name} must be a number, got '${v}'`);
      process.exit(1);
    }
    return n;
  };
  const defaults: Record<string, { steps: number; batchSize: number; lr: number }> = {
    mnist: { steps: 2000, batchSize: 32, lr: 2e-3 },
    mixture: { steps: 4000, batchSize: 512, lr: 2e-3 },
    'flow-mixture': { steps: 4000, batchSize: 256, lr: 2e-3 },
    'mnist-classifier': { steps: 600, batchSize: 64, lr: 2e-3 },
    'mnist-judge': { steps: 3000, batchSize: 64, lr: 2e-3 },
    'mnist-noisy-classifier': { steps: 3000, batchSize: 64, lr: 2e-3 },
    'eval-mnist': { steps: 0, batchSize: 0, lr: 0 },
    'probe-mnist': { steps: 0, batchSize: 0, lr: 0 },
  };
  const d = defaults[command];
  if (d === undefined) {
    console.error(`unknown command '${command}'\n${USAGE}`);
    process.exit(1);
  }
  const common: CommonOptions = {
    out: values.out ?? `weights/${command}`,
    checkpoints: values.checkpoints ?? `runs/${command}`,
    steps: num('steps', values.steps, d.steps),
    minutes: num('minutes', values.minutes, Number.POSITIVE_INFINITY),
    seed: num('seed', values.seed, 0),
    backend: values.backend as BackendName,
    batchSize: num('batch-size', values['batch-size'], d.batchSize),
    learningRate: num('lr', values.lr, d.lr),
    workers: num('workers', values.workers, 0),
  };
  if (!Number.isInteger(common.workers) || common.workers < 0) {
    console.error(`--workers must be a non-negative integer, got '${values.workers}'`);
    process.exit(1);
  }
  switch (command) {
    case 'mnist': {
      const { trainMnist } = await import('./mnist.js');
      const oneOf = <const T extends string>(
        name: string,
        v: string | undefined,
        allowed: readonly T[],
      ): T => {
        if (!allowed.includes(v as T)) {
          console.error(`--${name} must be ${allowed.join(' or ')}, got '${v}'`);
          process.exit(1);
        }
        return v as T;
      };
      const attention =
        values.attention === undefined || values.attention === ''
          ? []
          : values.attention.split(',').map((r) => num('attention', r, 0));
      await trainMnist({
        ...common,
        channels: num('channels', values.channels, 16),
        numResBlocks: num('res-blocks', values['res-blocks'], 1),
        attention,
        prediction: oneOf('prediction', values.prediction, ['epsilon', 'v', 'edm']),
        weighting: oneOf('weighting', values.weighting, ['epsilon', 'min-snr', 'edm']),
        noise: oneOf('noise', values.noise, ['cosine', 'edm']),
        condDropout: num('cond-dropout', values['cond-dropout'], 0.1),
        emaDecay: num('ema-decay', values['ema-decay'], 0.999),
        data: oneOf('data', values.data, ['generator', 'all']),
      });
      break;
    }
    case 'mixture': {
      const { trainMixture } = await import('./mixture.js');
      await trainMixture(common);
      break;
    }
    case 'flow-mixture': {
      const { trainFlowMixture } = await import('./flow-mixture.js');
      await trainFlowMixture(common);
      break;
    }
    case 'eval-mnist': {
      const { evalMnist } = await import('./classifier.js');
      await evalMnist({
        model: values.model ?? 'weights/mnist-unet',
        classifier: values.classifier ?? 'weights/mnist-judge',
        ...(values.guide !== undefined ? { guide: values.guide } : {}),
        perClass: num('per-class', values['per-class'], 10),
        steps: num('sample-steps', values['sample-steps'], 20),
        guidance: num('guidance', values.guidance, 3),
        ...(values['guide-scale'] !== undefined
          ? { guideScale: num('guide-scale', values['guide-scale'], 3) }
          : {}),
        backend: common.backend,
        seed: common.seed,
        ...(values.out !== undefined ? { out: values.out } : {}),
        ...(values.modes !== undefined ? { modes: values.modes.split(',') } : {}),
      });
      break;
    }
    case 'probe-mnist': {
      const { probeMnist } = await import('./mnist.js');
      await probeMnist(values.model ?? 'weights/mnist-unet', common.backend);
      break;
    }
    case 'mnist-judge': {
      const { trainMnistJudge } = await import('./judge.js');
      await trainMnistJudge(common);
      break;
    }
    case 'mnist-classifier': {
      const { trainMnistClassifier } = await import('./classifier.js');
      await trainMnistClassifier(common);
      break;
    }
    case 'mnist-noisy-classifier': {
      const { trainNoisyMnistClassifier } = await import('./classifier.js');
      if (values.trunk !== 'mlp' && values.trunk !== 'conv') {
        console.error(`--trunk must be mlp or conv, got '${values.trunk}'`);
        process.exit(1);
      }
      await trainNoisyMnistClassifier({
        ...common,
        channels: num('channels', values.channels, 16),
        trunk: values.trunk,
      });
      break;
    }
  }
}

main().catch((e) => {
  console.error(e instanceof Error ? `${e.name}: ${e.message}` : e);
  process.exit(1);
});
