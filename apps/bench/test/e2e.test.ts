/**
 * End to end: the built command line (what `pnpm bench` runs) with `--quick` writes a run folder whose
 * results.json matches the schema, with REPORT.md and the SVG plots; a missing PyTorch is reported,
 * never fatal. Needs `dist/` (turbo builds before testing).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { listSamplers } from '@diffuse/samplers';
import { describe, expect, it } from 'vitest';
import { formatSchemaErrors, type Results, validateResults } from '../src/results.js';

const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

function bench(args: string[]) {
  const out = mkdtempSync(join(tmpdir(), 'diffuse-bench-'));
  const r = spawnSync(process.execPath, [cli, ...args, '--out', out, '--no-progress'], {
    encoding: 'utf8',
    timeout: 540_000,
  });
  const runs = existsSync(out) ? readdirSync(out) : [];
  return { ...r, out, dir: runs.length === 1 ? join(out, runs[0]!) : undefined };
}

function load(dir: string): Results {
  const doc = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as unknown;
  const errors = validateResults(doc);
  expect(errors, formatSchemaErrors(errors)).toEqual([]);
  return doc as Results;
}

describe('bench command line', () => {
  it('--help lists suites, backends and sizes', () => {
    const r = spawnSync(process.execPath, [cli, '--help'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    for (const word of [
      '--suites',
      '--backends',
      '--browser',
      '--quick',
      '--full',
      '--mlp-batch',
      '--unet-batch',
      '--nfe',
      'accuracy',
      'peers',
    ]) {
      expect(r.stdout).toContain(word);
    }
  });

  it('rejects a bad option with a message that names it', () => {
    const r = spawnSync(process.execPath, [cli, '--suites', 'speed'], { encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/unknown suite 'speed'/);
  });

  it('--quick runs every suite end to end and writes a valid run folder', () => {
    const r = bench(['--quick']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.dir).toBeDefined();
    const files = readdirSync(r.dir!);
    expect(files).toContain('results.json');
    expect(files).toContain('REPORT.md');
    expect(files.some((f) => f.endsWith('.svg'))).toBe(true);
    const res = load(r.dir!);
    expect(res.plan.preset).toBe('quick');
    expect(Object.keys(res.suites).sort()).toEqual(['accuracy', 'peers', 'throughput', 'training']);
    expect(res.machine.cores).toBeGreaterThan(0);
    const wasm = res.backends.find((b) => b.name === 'wasm');
    expect(wasm?.available).toBe(true);
    // Measurements are real: positive medians of the planned number of repeats, no leaked tensors.
    const rows = res.suites.throughput!.rows;
    expect(rows.some((x) => x.model === 'mlp' && x.backend === 'wasm')).toBe(true);
    for (const x of rows) {
      expect(x.msPerCall.median).toBeGreaterThan(0);
      expect(x.msPerCall.samples).toHaveLength(res.plan.repeats);
      expect(x.leakedTensors).toBe(0);
    }
    for (const x of res.suites.training!.rows) expect(x.msPerStep.median).toBeGreaterThan(0);
    // PyTorch (when installed) ran at every thread setting of the plan, and each row's reference is
    // the setting with the lowest median, named.
    const peers = res.suites.peers!;
    if (peers.torch.available && peers.rows.length > 0) {
      expect(peers.torch.settings).toHaveLength(res.plan.peer.settings.length);
      for (const x of peers.rows) {
        expect(x.settings).toHaveLength(res.plan.peer.settings.length);
        const best = Math.min(...x.settings.map((y) => y.stat.median));
        expect(x.torch.median).toBe(best);
        expect(x.settings.find((y) => y.stat.median === best)!.label).toBe(x.setting);
        for (const y of x.settings) expect(y.stat.samples).toHaveLength(res.plan.peer.repeats);
      }
    }
    // Data-parallel training on 2 worker threads (ParallelGradients of @diffuse/train), both networks.
    const parallel = res.suites.training!.rows.filter((x) => x.variant === 'workers-2');
    expect(parallel.map((x) => `${x.backend} ${x.model} ${x.workers}`).sort()).toEqual([
      'wasm mlp 2',
      'wasm unet 2',
    ]);
    for (const x of parallel) expect(x.leakedTensors).toBe(0);
    // ONNX Runtime rows (onnxruntime-node is a dependency of this app): forward and sampling runs
    // through the Denoiser interface, for both networks, nothing leaked.
    const onnx = rows.filter((x) => x.backend.startsWith('onnx'));
    expect(onnx.map((x) => `${x.backend} ${x.model}`).sort()).toEqual([
      'onnx mlp',
      'onnx unet',
      'onnx-async mlp',
      'onnx-async unet',
    ]);
    for (const x of onnx) {
      expect(x.runtime).toMatchObject({ name: 'onnxruntime-node', version: '1.30.0' });
      expect(x.sampling?.nfe).toBe(res.plan.samplingSteps);
      expect(x.sampling?.leakedTensors).toBe(0);
    }
    // tfjs-wasm on 2 worker threads (ParallelDenoiser of @diffuse/train) as an AsyncDenoiser: forward
    // and sampling rows for both networks, nothing leaked.
    const workers = rows.filter((x) => x.backend === 'wasm-workers-2');
    expect(workers.map((x) => x.model).sort()).toEqual(['mlp', 'unet']);
    for (const x of workers) {
      expect(x.sampling?.nfe).toBe(res.plan.samplingSteps);
      expect(x.sampling?.leakedTensors).toBe(0);
    }
    // Goals: every goal of issue 9, computed from this run's numbers.
    expect(res.goals.rows.map((g) => g.id)).toEqual([
      'sampling-mlp',
      'sampling-unet',
      'training-mlp',
      'training-unet',
      'sampler-overhead-unet',
    ]);
    for (const g of res.goals.rows) {
      if (g.status === 'n/a') expect(g.note).toMatch(/^n\/a: /);
      else expect(g.value).toBeCloseTo(g.ours!.ms / g.reference!.ms, 10);
    }
    // Accuracy: every registered sampler on both mixtures; the reference runs re-done here land on the
    // references' own errors (same sigmas, same noise; float32 against float64: 2e-3 is generous).
    const acc = res.suites.accuracy!;
    expect(acc.mixtures.map((m) => m.dim)).toEqual([2, res.plan.accuracy.highDim]);
    const names = listSamplers().map((s) => s.name);
    for (const m of acc.mixtures) {
      expect(acc.curves.filter((c) => c.mixture === m.id).map((c) => c.sampler)).toEqual(names);
    }
    // Samplers that cannot hit an NFE by construction are n/a with a reason, not failures.
    const unreachable = (name: string) =>
      acc.curves.filter((c) => c.sampler === name).flatMap((c) => c.unreachable ?? []);
    for (const name of ['annealed_langevin', 'ode_dopri5', 'dpm_adaptive']) {
      expect(unreachable(name).length, name).toBe(
        acc.mixtures.length * res.plan.accuracy.nfe.length,
      );
    }
    expect(unreachable('ode_dopri5')[0]!.reason).toMatch(/adaptive/);
    expect(acc.curves.filter((c) => c.error).map((c) => `${c.sampler}: ${c.error}`)).toEqual([]);
    const measured = acc.curves.filter((c) => c.points.length > 0);
    expect(measured.length).toBeGreaterThan(names.length);
    for (const c of measured)
      for (const p of c.points) expect(p.nfe).toBeLessThanOrEqual(p.nfeRequested);
    for (const source of ['k-diffusion', 'diffusers'] as const) {
      const refs = acc.references.filter((x) => x.source === source);
      expect(refs.length).toBeGreaterThan(20);
      for (const x of refs) {
        expect(x.mine, `${x.id}: ${x.note}`).not.toBeNull();
        expect(Math.abs(x.mine!.meanL2 - x.theirs.meanL2), x.id).toBeLessThan(2e-3);
      }
    }
    const report = readFileSync(join(r.dir!, 'REPORT.md'), 'utf8');
    expect(report).toContain('# Diffuse benchmark report');
    expect(report).toContain('## Goals (issue 9: fast paths)');
    expect(report).toContain(res.machine.cpuModel);
    for (const svg of files.filter((f) => f.endsWith('.svg'))) {
      expect(readFileSync(join(r.dir!, svg), 'utf8')).toMatch(/^<svg [\s\S]*<\/svg>$/);
    }
  });

  it('reports a missing PyTorch with how to install it, and still succeeds', () => {
    const r = bench(['--quick', '--suites', 'peers', '--python', '/nonexistent/python3']);
    expect(r.status, r.stderr).toBe(0);
    const res = load(r.dir!);
    const peers = res.suites.peers!;
    expect(peers.status).toBe('skipped');
    expect(peers.torch.available).toBe(false);
    expect(peers.torch.install).toMatch(/apt-get install python3-torch/);
    expect(readFileSync(join(r.dir!, 'REPORT.md'), 'utf8')).toMatch(
      /PyTorch is not installed here/,
    );
  });
});
