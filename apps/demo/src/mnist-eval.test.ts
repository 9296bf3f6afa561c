/**
 * The MNIST section's numbers in Node: the metrics file read as the page reads it (every field
 * optional), and the page's judge reading real held-out digits exactly as `diffuse-train
 * mnist-judge` measured it (the same accuracy, to the digit).
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend } from '@diffuse/backend';
import { ImageClassifier, loadModel } from '@diffuse/models';
import { describe, expect, it } from 'vitest';
import { evalSummary, modeOf, readDigits } from './mnist-eval.js';

const weights = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  '..',
  'packages',
  'train',
  'weights',
);

describe('modeOf', () => {
  it('names the modes of eval-mnist, and leaves other keys as they are', () => {
    expect(modeOf('guidance3')).toEqual({
      label: 'classifier-free, s = 3',
      method: 'cfg',
      scale: 3,
    });
    expect(modeOf('guidance1.5')).toMatchObject({ method: 'cfg', scale: 1.5 });
    expect(modeOf('classifierGuidance4')).toEqual({
      label: 'classifier guidance, s = 4',
      method: 'classifier',
      scale: 4,
    });
    expect(modeOf('conditionalClassifierGuidance3')).toEqual({
      label: 'conditional + classifier guidance, s = 3',
      method: 'classifier',
      scale: 3,
    });
    expect(modeOf('unconditional').method).toBe('unconditional');
    expect(modeOf('guidanceX')).toEqual({ label: 'guidanceX', method: 'other' });
  });
});

describe('evalSummary', () => {
  it('is undefined without a sampleEvaluation', () => {
    expect(evalSummary(undefined)).toBeUndefined();
    expect(evalSummary({ steps: 3 })).toBeUndefined();
    expect(evalSummary({ sampleEvaluation: [1, 2] })).toBeUndefined();
  });

  it('keeps what is there, drops what is malformed, orders cfg > classifier > unconditional', () => {
    const e = evalSummary({
      sampleEvaluation: {
        command: 'diffuse-train eval-mnist ...',
        judge: 'weights/mnist-judge',
        perClass: 50,
        frechet: { floor: 259.3 },
        unconditional: { readAs: [0.1, 0.1], frechet: 'no' },
        classifierGuidance3: { accuracy: 0.4 },
        guidance1: { accuracy: 0.7, perClass: [0.5, Number.NaN] },
        guidance3: { accuracy: 0.97, frechet: 800, frechetOverFloor: 3.1 },
        notAMode: { note: 'text only' },
        seconds: 4,
      },
    })!;
    expect(e.judge).toBe('mnist-judge');
    expect(e.perClass).toBe(50);
    expect(e.floor).toBe(259.3);
    expect(e.steps).toBeUndefined();
    expect(e.judgeHeldOutAccuracy).toBeUndefined();
    expect(e.commands).toEqual(['diffuse-train eval-mnist ...']);
    expect(e.modes.map((m) => m.key)).toEqual([
      'guidance3',
      'guidance1',
      'classifierGuidance3',
      'unconditional',
    ]);
    expect(e.modes[0]).toMatchObject({ accuracy: 0.97, frechet: 800, frechetOverFloor: 3.1 });
    expect(e.modes[1]!.perClass).toBeUndefined(); // a NaN in it: not shown
    expect(e.modes[3]).toMatchObject({ readAs: [0.1, 0.1] });
    expect(e.modes[3]!.frechet).toBeUndefined();
  });

  it.skipIf(!existsSync(join(weights, 'mnist-unet.metrics.json')))(
    'reads the shipped U-Net metrics file',
    () => {
      const metrics = JSON.parse(readFileSync(join(weights, 'mnist-unet.metrics.json'), 'utf8'));
      const e = evalSummary(metrics);
      if (!metrics.sampleEvaluation) {
        expect(e).toBeUndefined();
        return;
      }
      const ev = metrics.sampleEvaluation;
      expect(e!.modes.find((m) => m.key === 'guidance3')?.accuracy).toBe(ev.guidance3?.accuracy);
      expect(e!.floor).toBe(ev.frechet?.floor);
    },
  );
});

describe.skipIf(!existsSync(join(weights, 'mnist-judge.safetensors')))(
  'readDigits with the shipped judge',
  () => {
    it('reads the 1,000 held-out digits as the judge metrics file says it does', async () => {
      await initBackend('wasm');
      const judge = loadModel({
        config: JSON.parse(readFileSync(join(weights, 'mnist-judge.json'), 'utf8')),
        weights: new Uint8Array(readFileSync(join(weights, 'mnist-judge.safetensors'))),
      });
      expect(judge).toBeInstanceOf(ImageClassifier);
      // All 10,000 digits through Node's own loader (see packages/train/src/judge.test.ts).
      const data = createRequire(import.meta.url)(
        '@diffuse/data',
      ) as typeof import('@diffuse/data');
      const { heldOut } = data.splitMnist(await data.loadMnist());
      const classes = await readDigits(judge, heldOut.x, heldOut.count);
      const right = classes.filter((c, i) => c === heldOut.labels[i]).length;
      const metrics = JSON.parse(readFileSync(join(weights, 'mnist-judge.metrics.json'), 'utf8'));
      expect(right / heldOut.count).toBe(metrics.heldOutAccuracy);
      judge.dispose();
    }, 120_000);
  },
);
