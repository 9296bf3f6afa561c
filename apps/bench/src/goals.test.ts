import { describe, expect, it } from 'vitest';
import { computeGoals } from './goals.js';
import { ONNX_MISSING, onnxAvailability } from './onnx.js';
import type { PeersSuite, Results, ThroughputRow, TrainingRow } from './results.js';
import { summarize } from './stats.js';

const model = { modelLabel: 'm', modelSource: 'package' as const, params: 10 };
const st = (ms: number) => summarize([ms], 0);

function fwd(
  m: 'mlp' | 'unet',
  backend: string,
  batch: number,
  ms: number,
  sampling?: { model: number; overhead: number },
): ThroughputRow {
  return {
    ...model,
    model: m,
    backend,
    environment: 'node',
    batch,
    msPerCall: st(ms),
    samplesPerSecond: 1,
    leakedTensors: 0,
    modelBytes: 0,
    ...(backend === 'onnx'
      ? {
          runtime: {
            name: 'onnxruntime-node',
            version: '1.30.0',
            threads: 2,
            host: 'wasm',
            call: 'synchronous Denoiser',
            setupMs: 5,
          },
        }
      : {}),
    ...(sampling
      ? {
          sampling: {
            sampler: 'dpmpp_2m (Karras)',
            steps: 10,
            nfe: 10,
            msPerRun: st(10 * (sampling.model + sampling.overhead)),
            samplesPerSecond: 1,
            modelMsPerStep: sampling.model,
            overheadMsPerStep: sampling.overhead,
            overheadFraction: sampling.overhead / (sampling.model + sampling.overhead),
            liveTensorsPerCall: [1],
            bytesPerCall: [1],
            leakedTensors: 0,
          },
        }
      : {}),
  };
}

function trn(m: 'mlp' | 'unet', batch: number, ms: number, variant = 'default'): TrainingRow {
  return {
    ...model,
    model: m,
    backend: 'wasm',
    environment: 'node',
    batch,
    variant,
    ablation: variant === 'no-wasm-transpose-fix',
    msPerStep: st(ms),
    leakedTensors: 0,
  };
}

function peers(rows: [string, string, number, number][]): PeersSuite {
  return {
    status: 'ok',
    notes: [],
    durationMs: 1,
    torch: { available: true, version: '2.6', threads: 2 },
    rows: rows.map(([m, task, batch, ms]) => ({
      model: m as 'mlp',
      task: task as 'forward',
      batch,
      paramsTorch: 10,
      paramsOurs: 10,
      torch: st(ms),
      setting: 'torch 1 thread, OPENBLAS_NUM_THREADS=2',
      settings: [
        {
          torchThreads: 1,
          openblasThreads: 2,
          label: 'torch 1 thread, OPENBLAS_NUM_THREADS=2',
          stat: st(ms),
        },
        {
          torchThreads: 2,
          openblasThreads: 2,
          label: 'torch 2 threads, OPENBLAS_NUM_THREADS=2',
          stat: st(2 * ms),
        },
      ],
      oursBackend: null,
      oursMs: null,
      ratio: null,
    })),
  };
}

const suites = (): Results['suites'] => ({
  throughput: {
    status: 'ok',
    notes: [],
    durationMs: 1,
    rows: [
      fwd('mlp', 'wasm', 4096, 130, { model: 130, overhead: 1 }),
      fwd('mlp', 'onnx', 4096, 20),
      fwd('mlp', 'cpu', 256, 1), // another batch: never compared with the peer's 4096
      fwd('unet', 'wasm', 8, 700, { model: 700, overhead: 1 }),
      fwd('unet', 'onnx', 8, 300, { model: 290, overhead: 20 }),
    ],
  },
  training: {
    status: 'ok',
    notes: [],
    durationMs: 1,
    rows: [
      trn('mlp', 4096, 500),
      trn('mlp', 4096, 10, 'no-wasm-transpose-fix'), // an ablation is never Diffuse's time
      trn('unet', 8, 5000),
      trn('unet', 8, 900, 'workers-2'),
    ],
  },
  peers: peers([
    ['mlp', 'forward', 4096, 40],
    ['unet', 'forward', 8, 250],
    ['mlp', 'train', 4096, 200],
    ['unet', 'train', 8, 600],
  ]),
});

describe('computeGoals', () => {
  it('divides the best Diffuse runtime at the peer batch by PyTorch, and judges each target', () => {
    const g = computeGoals(suites());
    const by = Object.fromEntries(g.rows.map((r) => [r.id, r]));
    expect(by['sampling-mlp']).toMatchObject({ batch: 4096, value: 0.5, status: 'pass' });
    expect(by['sampling-mlp']!.ours!.what).toMatch(/^onnx/);
    expect(by['sampling-mlp']!.note).toMatch(/tfjs-wasm 130 ms/);
    expect(by['sampling-unet']).toMatchObject({ value: 1.2, status: 'fail' });
    // MLP training: 500 / 200 (the 10 ms ablation is ignored).
    expect(by['training-mlp']).toMatchObject({ value: 2.5, status: 'fail' });
    // The reference is PyTorch's best setting, named.
    expect(by['training-mlp']!.reference!.what).toBe(
      'PyTorch 2.6 CPU, torch 1 thread, OPENBLAS_NUM_THREADS=2 (best of 2 thread settings)',
    );
    // U-Net training: any non-ablation variant counts (900 / 600 = 1.5).
    expect(by['training-unet']).toMatchObject({ value: 1.5, status: 'pass' });
    expect(by['training-unet']!.ours!.what).toBe('tfjs-wasm workers-2');
    // Overhead: the fastest U-Net run (onnx, 290 ms per step), 20 / 290 = 6.9% > 5%.
    const o = by['sampler-overhead-unet']!;
    expect(o.value).toBeCloseTo(20 / 290, 12);
    expect(o.status).toBe('fail');
    expect(o.note).toMatch(/tfjs-wasm 0\.1%/);
  });

  it('says n/a with the reason when PyTorch or a Diffuse row is missing, and never fails', () => {
    const noTorch = suites();
    noTorch.peers = {
      status: 'skipped',
      notes: [],
      durationMs: 1,
      torch: { available: false, install: 'apt-get install python3-torch' },
      rows: [],
    };
    const g = computeGoals(noTorch);
    for (const r of g.rows.filter((x) => x.id !== 'sampler-overhead-unet')) {
      expect(r.status).toBe('n/a');
      expect(r.value).toBeNull();
      expect(r.note).toMatch(/PyTorch peer unavailable.*apt-get install python3-torch/);
    }
    expect(g.rows.find((x) => x.id === 'sampler-overhead-unet')!.status).toBe('fail');

    const none = computeGoals({});
    expect(none.rows.every((r) => r.status === 'n/a' && r.note)).toBe(true);
    expect(none.rows[0]!.note).toMatch(/peers suite did not run/);

    const otherBatch = suites();
    otherBatch.peers = peers([['mlp', 'forward', 512, 40]]);
    const ob = computeGoals(otherBatch).rows[0]!;
    expect(ob).toMatchObject({ status: 'n/a', batch: 512 });
    expect(ob.note).toMatch(/no Diffuse forward row at batch 512/);
  });
});

describe('onnxAvailability', () => {
  it('finds the installed onnxruntime-node and its version', () => {
    const a = onnxAvailability();
    expect(a).toMatchObject({ ok: true, version: '1.30.0' });
  });

  it('degrades to n/a when onnxruntime-node is not installed', () => {
    const a = onnxAvailability(() => {
      throw new Error("Cannot find module 'onnxruntime-node/package.json'");
    });
    expect(a).toEqual({ ok: false, reason: ONNX_MISSING });
    expect(ONNX_MISSING).toBe('n/a (onnxruntime-node not installed)');
  });
});
