import { describe, expect, it } from 'vitest';
import { PlanError, resolvePlan, sizesFor } from './plan.js';

describe('resolvePlan', () => {
  it('runs every suite on wasm and cpu by default, with small cpu sizes', () => {
    const p = resolvePlan();
    expect(p.preset).toBe('default');
    expect(p.suites).toEqual(['accuracy', 'throughput', 'training', 'peers']);
    expect(p.backends).toEqual(['wasm', 'cpu', 'onnx', 'onnx-async', 'wasm-workers-2']);
    expect(p.browserBackends).toEqual([]);
    expect(sizesFor(p, 'wasm').mlpBatch).toBe(4096);
    expect(sizesFor(p, 'cpu').mlpBatch).toBeLessThan(4096);
    expect(p.accuracy.nfe[0]).toBe(5);
    expect(p.accuracy.nfe.at(-1)).toBe(100);
  });

  it('applies quick and full presets and explicit sizes', () => {
    expect(resolvePlan({ quick: true }).repeats).toBeLessThan(resolvePlan().repeats);
    const full = resolvePlan({ full: true });
    expect(full.sizes.unetBatch).toBe(64);
    expect(full.cpuSizes.unetBatch).toBe(64);
    const p = resolvePlan({
      unetBatch: 16,
      repeats: 9,
      nfe: [20, 5, 20],
      suites: ['training'],
      backends: ['wasm'],
    });
    expect(p.sizes.unetBatch).toBe(16);
    expect(p.sizes.unetTrainBatch).toBe(16);
    expect(p.repeats).toBe(9);
    expect(p.accuracy.nfe).toEqual([5, 20]);
    expect(p.suites).toEqual(['training']);
    expect(p.backends).toEqual(['wasm']);
  });

  it('puts webgl, webgpu, tfjs-wasm (1 thread, threaded) and ORT-web in the browser only with --browser', () => {
    expect(resolvePlan({ browser: true }).browserBackends).toEqual([
      'webgl',
      'webgpu',
      'wasm-1t',
      'wasm-threads',
      'onnx-web',
    ]);
    expect(resolvePlan({ browser: true, backends: ['wasm-threads', 'onnx-web'] })).toMatchObject({
      backends: [],
      browserBackends: ['wasm-threads', 'onnx-web'],
    });
    expect(resolvePlan({ browser: true, backends: ['wasm', 'webgl'] })).toMatchObject({
      backends: ['wasm'],
      browserBackends: ['webgl'],
    });
    expect(() => resolvePlan({ backends: ['webgl'] })).toThrow(/--browser/);
    expect(() => resolvePlan({ backends: ['onnx-web'] })).toThrow(/--browser/);
  });

  it('names the bad value in its errors', () => {
    expect(() => resolvePlan({ suites: ['speed'] })).toThrow(PlanError);
    expect(() => resolvePlan({ suites: ['speed'] })).toThrow(/unknown suite 'speed'.*accuracy/);
    expect(() => resolvePlan({ backends: ['tpu'] })).toThrow(/unknown backend 'tpu'/);
    expect(() => resolvePlan({ repeats: 0 })).toThrow(/--repeats must be an integer >= 1, got 0/);
    expect(() => resolvePlan({ quick: true, full: true })).toThrow(/exclude/);
  });
});
