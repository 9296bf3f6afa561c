/**
 * Seeded fuzzing of checkpoint loading and resume (issue 17): 1,200 mutated weights files (with the
 * manifest's size and SHA-256 recomputed, so they reach the parser and the trainer) and 600 mutated
 * manifests per run, through `loadCheckpoint` and `Trainer.restore`. Every call must succeed (a
 * mutation can leave a checkpoint valid) or throw a typed `DiffuseError`, within a second of CPU (the shared `Fuzzer`), without
 * leaving a tensor alive; a rejected restore must leave the trainer exactly as it was (parameters,
 * moments, step, losses); the wasm heap and RSS stay bounded over the run.
 */
import { Fuzzer, initBackend } from '@diffuse/backend';
import { type ArrayDataset, ShuffledBatches } from '@diffuse/data';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type CheckpointStore,
  loadCheckpoint,
  MANIFEST,
  MemoryCheckpointStore,
  Trainer,
} from './index.js';

const SEED = 20261208;
const WEIGHT_FILES = 1200;
const MANIFESTS = 600;

/** The project's seeded harness: every random choice below comes from `Random.seed(SEED)`. */
const fuzz = new Fuzzer(SEED);
const int = (n: number) => fuzz.int(n);
const pick = <T>(a: readonly T[]): T => a[int(a.length)]!;

function wasmHeapBytes(): number {
  return (tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.buffer
    .byteLength;
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes as unknown as ArrayBuffer));
  return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** A store whose files the test swaps between calls (the trainer keeps one store). */
class SwapStore implements CheckpointStore {
  inner = new MemoryCheckpointStore();
  write(name: string, bytes: Uint8Array) {
    return this.inner.write(name, bytes);
  }
  read(name: string) {
    return this.inner.read(name);
  }
  remove(name: string) {
    return this.inner.remove(name);
  }
  list() {
    return this.inner.list();
  }
}

const HOSTILE: readonly unknown[] = [
  -1,
  0,
  1.5,
  1e9,
  2 ** 53,
  Number.NaN,
  '8',
  '',
  true,
  null,
  [],
  [1, 2, 3, 4, 5],
  [1, 2, 3, 4, null],
  [0.5, 2, 3, 4, 5],
  {},
  { step: 1 },
  [{ step: 'x', metrics: {} }],
  [{ name: 'w', shape: [3, 16] }],
  '../../etc/passwd',
  'weights-000000003.safetensors',
  'checkpoint.json',
  'diffuse-train-checkpoint',
  'a'.repeat(64),
];

function header(bytes: Uint8Array) {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return {
    json: JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<string, unknown>,
    data: bytes.subarray(8 + n),
    n,
  };
}

function withHeader(json: unknown, data: Uint8Array): Uint8Array {
  const text = new TextEncoder().encode(JSON.stringify(json));
  const padded = text.length + ((8 - (text.length % 8)) % 8);
  const out = new Uint8Array(8 + padded + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(text, 8);
  out.fill(0x20, 8 + text.length, 8 + padded);
  out.set(data, 8 + padded);
  return out;
}

/** A malformed (or occasionally still valid) variant of the checkpoint's weights file. */
function mutateWeights(bytes: Uint8Array): Uint8Array {
  const { json, data, n } = header(bytes);
  const names = Object.keys(json).filter((k) => k !== '__metadata__');
  const name = pick(names);
  const entry = json[name] as { dtype: string; shape: unknown; data_offsets: unknown };
  switch (int(11)) {
    case 0:
      return bytes.slice(0, int(bytes.length));
    case 1: {
      const out = bytes.slice();
      for (let k = 1 + int(4); k > 0; k--) {
        const at = int(8 + n);
        out[at] = out[at]! ^ (1 << int(8));
      }
      return out;
    }
    case 2: {
      const out = bytes.slice();
      new DataView(out.buffer).setBigUint64(0, pick([0n, 3n, BigInt(n + 8), 2n ** 62n]), true);
      return out;
    }
    case 3:
      entry.dtype = pick(['F16', 'F64', 'I32', 'U8', 'BOOL', 'I64', 'x', null] as never);
      return withHeader(json, data);
    case 4: {
      const shape = entry.shape as number[];
      entry.shape = pick([[...shape].reverse(), [...shape, 1], [], [-1], ['3'], [2 ** 53], null]);
      return withHeader(json, data);
    }
    case 5: {
      const [b, e] = entry.data_offsets as number[];
      entry.data_offsets = pick([[b, e! + 4], [e, b], [-4, e], [b], 'x']);
      return withHeader(json, data);
    }
    case 6:
      delete json[name];
      return withHeader(json, data);
    case 7:
      json[pick(['param/99', 'adam/m/9', 'ema/7', `${name}x`])] = json[name];
      delete json[name];
      return withHeader(json, data);
    case 8:
      json[pick(['param/0', 'losses', 'extra'])] = {
        dtype: pick(['F32', 'I32']),
        shape: [0],
        data_offsets: [0, 0],
      };
      return withHeader(json, data);
    case 9: {
      const out = new Uint8Array(bytes.length + pick([-8, -4, 4, 8]));
      out.set(bytes.subarray(0, Math.min(bytes.length, out.length)));
      return out;
    }
    default:
      return Uint8Array.from({ length: int(64) }, () => int(256));
  }
}

/** A malformed (or occasionally still valid) variant of the manifest. */
function mutateManifest(text: string): string {
  if (int(8) === 0) return text.slice(0, int(text.length));
  const m = JSON.parse(text) as Record<string, unknown>;
  const state = m.state as Record<string, unknown>;
  for (let k = 1 + int(2); k > 0; k--) {
    const target = int(2) === 0 ? m : state;
    const key = pick(Object.keys(target));
    switch (int(4)) {
      case 0:
        delete target[key];
        break;
      case 1:
        if (int(4) === 0) {
          m.state = pick(HOSTILE);
          break;
        }
        target[key] = pick(HOSTILE);
        break;
      case 2: {
        const data = state.data as Record<string, unknown> | null;
        if (data && typeof data === 'object') data[pick(Object.keys(data))] = pick(HOSTILE);
        else target[key] = pick(HOSTILE);
        break;
      }
      default:
        target[key] = pick(HOSTILE);
    }
  }
  return int(30) === 0 ? JSON.stringify(pick(HOSTILE)) : JSON.stringify(m);
}

const ds: ArrayDataset = (() => {
  const n = 40;
  const x = new Float32Array(n * 4);
  for (let i = 0; i < n; i++) x.set([Math.sin(i), Math.cos(i), Math.sin(2 * i), i / n], i * 4);
  return { x, labels: new Int32Array(n), count: n, shape: [4], numClasses: 1 };
})();

beforeAll(async () => {
  await initBackend('wasm');
});

describe(`checkpoint fuzz (seed ${SEED})`, () => {
  it(`${WEIGHT_FILES} mutated weights files and ${MANIFESTS} mutated manifests through loadCheckpoint and Trainer.restore`, async () => {
    const params = [
      tf.variable(tf.randomNormal([3, 8], 0, 0.5, 'float32', 1)),
      tf.variable(tf.zeros([8])),
      tf.variable(tf.randomNormal([8, 1], 0, 0.5, 'float32', 2)),
    ];
    const shadow = params.map((p) => tf.variable(tf.clone(p), false));
    let it = new ShuffledBatches(ds, { batchSize: 8, seed: 3 });
    const store = new SwapStore();
    const trainer = new Trainer<{ x: tf.Tensor }>({
      params,
      data: {
        next: () => it.next(),
        state: () => it.state(),
        restore: (s) => {
          it = ShuffledBatches.restore(ds, s as ReturnType<ShuffledBatches['state']>);
        },
      },
      loss: (b) =>
        tf.tidy(() => {
          const [x, y] = tf.split(b.x, [3, 1], 1);
          const h = tf.tanh(tf.add(tf.matMul(x!, params[0]!), params[1]!));
          return tf.mean(tf.square(tf.sub(tf.matMul(h, params[2]!), y!))) as tf.Scalar;
        }),
      seed: 5,
      ema: {
        shadow,
        update: () =>
          tf.tidy(() =>
            shadow.forEach((s, i) => {
              s.assign(tf.add(tf.mul(s, 0.9), tf.mul(params[i]!, 0.1)));
            }),
          ),
      },
      evaluate: { every: 2, fn: () => ({ loss: 1 }) },
      checkpoint: { store, every: 1000 },
    });
    await trainer.run(3);
    await trainer.save();
    const files = new Map<string, Uint8Array>();
    for (const f of await store.list()) files.set(f, (await store.read(f))!);
    const manifestText = new TextDecoder().decode(files.get(MANIFEST)!);
    const weightsName = JSON.parse(manifestText).weights as string;
    const weights = files.get(weightsName)!;

    const snapshot = () =>
      JSON.stringify([
        params.map((p) => Array.from(p.dataSync())),
        Object.values(trainer.optimizer.stateTensors()).map((t) => Array.from(t.dataSync())),
        shadow.map((s) => Array.from(s.dataSync())),
        trainer.step,
        trainer.losses,
        trainer.evaluations,
      ]);
    const rss0 = process.memoryUsage().rss;
    const heap0 = wasmHeapBytes();

    /** One call through the shared harness; a rejected restore must leave the trainer as it was. */
    const probe = (what: string, input: string, fn: () => Promise<unknown>) => {
      const before = what === 'restore' ? snapshot() : '';
      return fuzz.probe(what, () => input, fn, {
        dispose: (r) => {
          const loaded = r as { tensors?: Map<string, tf.Tensor> } | null | undefined;
          if (loaded?.tensors) for (const t of loaded.tensors.values()) t.dispose();
        },
        check: (outcome) =>
          what === 'restore' && outcome === 'rejected' && snapshot() !== before
            ? 'a rejected restore changed the trainer'
            : undefined,
      });
    };

    const install = async (manifest: string | Uint8Array, w: Uint8Array) => {
      store.inner = new MemoryCheckpointStore();
      await store.write(
        MANIFEST,
        typeof manifest === 'string' ? new TextEncoder().encode(manifest) : manifest,
      );
      await store.write(weightsName, w);
    };

    let badWeights = 0;
    for (let i = 0; i < WEIGHT_FILES; i++) {
      const w = mutateWeights(weights);
      const m = JSON.parse(manifestText);
      m.bytes = w.byteLength;
      m.sha256 = await sha256Hex(w);
      await install(JSON.stringify(m), w);
      const input = new TextDecoder().decode(w.subarray(0, 300));
      await probe('loadCheckpoint', input, () => loadCheckpoint(store));
      if ((await probe('restore', input, () => trainer.restore())) === 'rejected') badWeights++;
    }
    let badManifests = 0;
    for (let i = 0; i < MANIFESTS; i++) {
      const text = mutateManifest(manifestText);
      await install(text, weights);
      await probe('loadCheckpoint', text, () => loadCheckpoint(store));
      if ((await probe('restore', text, () => trainer.restore())) === 'rejected') badManifests++;
    }
    // the unmutated checkpoint still restores
    await install(manifestText, weights);
    expect(await trainer.restore()).toBe(3);

    const heapGrowth = wasmHeapBytes() - heap0;
    const rssGrowth = process.memoryUsage().rss - rss0;
    console.log(
      `checkpoints: ${badWeights}/${WEIGHT_FILES} weights files and ${badManifests}/${MANIFESTS} manifests rejected; ${fuzz.summary()}; wasm heap +${(heapGrowth / 1e6).toFixed(1)} MB, RSS +${(rssGrowth / 1e6).toFixed(1)} MB`,
    );
    expect(fuzz.failures, fuzz.report()).toEqual([]);
    expect(badWeights).toBeGreaterThanOrEqual(1000);
    expect(badManifests).toBeGreaterThanOrEqual(500);
    expect(heapGrowth).toBeLessThan(16e6);
    expect(rssGrowth).toBeLessThan(400e6);
    trainer.dispose();
    tf.dispose([...params, ...shadow]);
  });
});

describe('resume of a long run', () => {
  it('restores a loss history of 1,000,000 steps (no argument spread)', async () => {
    const p = tf.variable(tf.ones([2]));
    const store = new MemoryCheckpointStore();
    const make = () =>
      new Trainer({
        params: [p],
        data: () => ({}),
        loss: () => tf.sum(tf.square(p)) as tf.Scalar,
        seed: 0,
        checkpoint: { store, every: 1000 },
      });
    const a = make();
    for (let i = 0; i < 1_000_000; i++) a.losses.push(i % 7);
    await a.save();
    const b = make();
    expect(await b.restore()).toBe(0);
    expect(b.losses.length).toBe(1_000_000);
    expect(b.losses[999_999]).toBe(999_999 % 7);
    a.dispose();
    b.dispose();
    p.dispose();
  });
});
