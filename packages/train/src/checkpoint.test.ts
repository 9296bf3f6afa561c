import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '@diffuse/backend';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  CheckpointError,
  FileCheckpointStore,
  type FileSystem,
  loadCheckpoint,
  MANIFEST,
  MemoryCheckpointStore,
  saveCheckpoint,
} from './index.js';

beforeAll(async () => {
  await initBackend('wasm');
});

class SimulatedCrash extends Error {}

/**
 * node:fs/promises, except that operation number `crashAt` (counting every call, including writes,
 * fsyncs and closes on file handles) fails as if the process died there. A crashing write first
 * writes half of its bytes, like a write cut off by a kill.
 */
function crashingFs(crashAt: number): FileSystem & { ops: number } {
  const state = { ops: 0 };
  const tick = () => {
    state.ops++;
    if (state.ops === crashAt) throw new SimulatedCrash(`crash at operation ${crashAt}`);
  };
  const fs: FileSystem & { ops: number } = {
    get ops() {
      return state.ops;
    },
    async open(path, flags) {
      tick();
      const h = await fsp.open(path, flags);
      return {
        async write(b: Uint8Array) {
          state.ops++;
          if (state.ops === crashAt) {
            await h.write(b.subarray(0, b.byteLength >> 1));
            throw new SimulatedCrash(`crash in a write at operation ${crashAt}`);
          }
          return h.write(b);
        },
        async sync() {
          tick();
          return h.sync();
        },
        async close() {
          // a dead process's handles are closed by the OS; never leak them here
          await h.close();
          tick();
        },
      };
    },
    async rename(a, b) {
      tick();
      return fsp.rename(a, b);
    },
    async readFile(p) {
      tick();
      return fsp.readFile(p);
    },
    async unlink(p) {
      tick();
      return fsp.unlink(p);
    },
    async readdir(p) {
      tick();
      return fsp.readdir(p);
    },
    async mkdir(p, o) {
      tick();
      return fsp.mkdir(p, o);
    },
  };
  return fs;
}

function tensorsFor(step: number): Record<string, tf.Tensor> {
  return {
    'param/0': tf.fill([64, 32], step * 0.5),
    'param/1': tf.range(0, 100 + step, 1, 'float32'),
    'adam/m/0': tf.fill([64, 32], -step),
  };
}

async function expectCheckpoint(dir: string, step: number): Promise<void> {
  const loaded = await loadCheckpoint(await FileCheckpointStore.open(dir));
  expect(loaded).not.toBeNull();
  expect(loaded!.manifest.step).toBe(step);
  expect(loaded!.manifest.state).toEqual({ rng: [step, 1, 2, 3, null] });
  const want = tensorsFor(step);
  for (const [k, t] of Object.entries(want)) {
    expect(Array.from(await loaded!.tensors.get(k)!.data())).toEqual(Array.from(await t.data()));
  }
  tf.dispose(Object.values(want));
  for (const t of loaded!.tensors.values()) t.dispose();
}

async function save(
  store: FileCheckpointStore | MemoryCheckpointStore,
  step: number,
): Promise<void> {
  const t = tensorsFor(step);
  try {
    await saveCheckpoint(store, step, t, { rng: [step, 1, 2, 3, null] });
  } finally {
    tf.dispose(Object.values(t));
  }
}

describe('checkpoints on disk', () => {
  it('round-trip exactly, keep only the committed weights file, and find nothing in an empty directory', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'diffuse-ckpt-'));
    const store = await FileCheckpointStore.open(dir);
    expect(await loadCheckpoint(store)).toBeNull();
    await save(store, 10);
    await save(store, 20);
    await expectCheckpoint(dir, 20);
    expect(readdirSync(dir).sort()).toEqual([MANIFEST, 'weights-000000020.safetensors']);
  });

  it('a crash at any point of a save leaves a loadable checkpoint: the previous one, or the new one once committed', async () => {
    // count the operations of one complete save
    const probeDir = mkdtempSync(join(tmpdir(), 'diffuse-ckpt-'));
    await save(await FileCheckpointStore.open(probeDir), 1);
    const counting = crashingFs(Number.POSITIVE_INFINITY);
    await save(await FileCheckpointStore.open(probeDir, counting), 2);
    const total = counting.ops;
    expect(total).toBeGreaterThan(10);

    const outcomes: number[] = [];
    let crashed = 0;
    for (let k = 2; k <= total; k++) {
      const dir = mkdtempSync(join(tmpdir(), 'diffuse-ckpt-'));
      await save(await FileCheckpointStore.open(dir), 1);
      const store = await FileCheckpointStore.open(dir, crashingFs(k)); // open (mkdir) is operation 1
      // (a crash in a best-effort step, the directory fsync or the clean-up, is swallowed by design)
      const died = await save(store, 2).then(
        () => false,
        (e) => {
          if (!(e instanceof SimulatedCrash)) throw e;
          return true;
        },
      );
      // "restart": a fresh store on the real file system
      const manifest = JSON.parse(readFileSync(join(dir, MANIFEST), 'utf8'));
      if (died) {
        crashed++;
        outcomes.push(manifest.step);
      } else {
        expect(manifest.step).toBe(2);
      }
      await expectCheckpoint(dir, manifest.step);
      // and the next save after the crash works and cleans up
      await save(await FileCheckpointStore.open(dir), 3);
      await expectCheckpoint(dir, 3);
      expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    }
    // crashes before the manifest rename keep step 1, after it step 2: both were exercised
    expect(outcomes).toContain(1);
    expect(outcomes).toContain(2);
    expect(outcomes.indexOf(2)).toBeGreaterThan(outcomes.lastIndexOf(1));
    // every write, fsync and rename of both files was a crash that propagated
    expect(crashed).toBeGreaterThanOrEqual(5);
  });

  it('rejects a corrupted or missing weights file and a broken manifest with CheckpointError', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'diffuse-ckpt-'));
    const store = await FileCheckpointStore.open(dir);
    await save(store, 5);
    const wpath = join(dir, 'weights-000000005.safetensors');
    const bytes = readFileSync(wpath);
    bytes[bytes.length - 3]! ^= 0xff;
    writeFileSync(wpath, bytes);
    await expect(loadCheckpoint(store)).rejects.toThrow(/SHA-256/);
    writeFileSync(wpath, bytes.subarray(0, 100));
    await expect(loadCheckpoint(store)).rejects.toThrow(/100 bytes but the manifest says/);
    await fsp.unlink(wpath);
    await expect(loadCheckpoint(store)).rejects.toThrow(/missing/);
    writeFileSync(join(dir, MANIFEST), '{"format": "something-else"}');
    await expect(loadCheckpoint(store)).rejects.toThrow(CheckpointError);
    writeFileSync(join(dir, MANIFEST), '{not json');
    await expect(loadCheckpoint(store)).rejects.toThrow(/not valid JSON/);
  });

  it('memory store: same protocol, bytes copied in and out', async () => {
    const store = new MemoryCheckpointStore();
    await save(store, 7);
    const loaded = await loadCheckpoint(store);
    expect(loaded!.manifest.step).toBe(7);
    for (const t of loaded!.tensors.values()) t.dispose();
    await expect(store.write('../evil', new Uint8Array(1))).rejects.toThrow(CheckpointError);
  });
});
