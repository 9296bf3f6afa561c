import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  assertNoLeaks,
  assertNoLeaksSync,
  Fuzzer,
  InvalidArgumentError,
  initBackend,
  maxAbsDiff,
  Random,
  readFloat32,
  TensorLeakError,
} from './index.js';

describe.each(['wasm', 'cpu'] as const)('test helpers on %s', (backend) => {
  beforeAll(async () => {
    await initBackend(backend);
  });

  it('assertNoLeaks passes clean code and allows returned tensors', async () => {
    const x = tf.tensor1d([1, 2]);
    const y = await assertNoLeaks(() => tf.tidy(() => tf.add(x, 1)));
    expect(Array.from(await readFloat32(y, true))).toEqual([2, 3]);
    const pair = assertNoLeaksSync(() => ({ a: tf.neg(x), b: [tf.abs(x)] }));
    tf.dispose([pair.a, ...pair.b, x]);
  });

  it('assertNoLeaks catches a leak and counts it', async () => {
    const x = tf.tensor1d([1, 2]);
    let leaked: tf.Tensor[] = [];
    const err = await assertNoLeaks(() => {
      leaked = [tf.add(x, 1), tf.mul(x, 2)];
    }, 'leaky').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TensorLeakError);
    expect((err as TensorLeakError).leaked).toBe(2);
    expect((err as Error).message).toBe('leaky leaked 2 tensor(s)');
    tf.dispose([...leaked, x]);
  });

  it('readFloat32 disposes on request; maxAbsDiff measures', async () => {
    const t = tf.tensor1d([1, 2, 3]);
    const before = tf.memory().numTensors;
    await readFloat32(t, true);
    expect(tf.memory().numTensors).toBe(before - 1);
    expect(maxAbsDiff([1, 2, 3], [1, 2.5, 2])).toBe(1);
    expect(() => maxAbsDiff([1], [1, 2])).toThrow(RangeError);
  });
});

describe('Fuzzer', () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });

  it('draws from Random.seed(seed): the same cases on every run and platform', () => {
    const a = new Fuzzer(7);
    const r = Random.seed(7);
    const items = ['a', 'b', 'c', 'd', 'e'];
    for (let i = 0; i < 50; i++) {
      expect(a.uniform()).toBe(r.uniform01());
      expect(a.int(10)).toBe(r.int(10));
      expect(a.pick(items)).toBe(items[r.int(items.length)]);
    }
  });

  it('passes ok and typed calls; records untyped errors, leaks, CPU overruns and hangs with the input', async () => {
    const f = new Fuzzer(1, { cpuLimitMs: 100, hangMs: 200 });
    const x = tf.tensor1d([1, 2]);
    // ok, with the returned tensors (in a Map and an object) freed by the harness
    expect(
      await f.probe(
        'ok',
        () => 'clean',
        () => ({ m: new Map([['t', tf.add(x, 1)]]) }),
      ),
    ).toBe('ok');
    expect(
      await f.probe(
        'typed',
        () => 'bad',
        () => {
          throw new InvalidArgumentError('no');
        },
      ),
    ).toBe('rejected');
    // waiting is not CPU time: a 150 ms sleep passes a 100 ms CPU limit (nor do other processes count)
    expect(
      await f.probe(
        'sleep',
        () => 'sleep',
        () => new Promise((r) => setTimeout(r, 150)),
      ),
    ).toBe('ok');
    expect(f.failures).toEqual([]);
    await f.probe(
      'untyped',
      () => 'input U',
      () => {
        throw new TypeError('x is undefined');
      },
    );
    await f.probe(
      'leak',
      () => 'input L',
      () => {
        tf.add(x, 1); // kept by nobody
        throw new InvalidArgumentError('after allocating');
      },
    );
    await f.probe(
      'busy',
      () => 'input B',
      () => {
        // 250 ms of this process's CPU time, however long that takes on a loaded machine
        const cpu = () => {
          const u = process.cpuUsage();
          return (u.user + u.system) / 1000;
        };
        const t0 = cpu();
        while (cpu() - t0 < 250) {
          /* spin */
        }
      },
    );
    await f.probe(
      'hang',
      () => 'input H',
      () => new Promise(() => {}),
    );
    await f.probe(
      'check',
      () => 'input C',
      () => 1,
      {
        check: (outcome, result) =>
          outcome === 'ok' && result === 1 ? 'custom problem' : undefined,
      },
    );
    expect(f.failures.map((l) => l.split(':')[0])).toEqual([
      'untyped',
      'leak',
      'busy',
      'hang',
      'check',
    ]);
    expect(f.failures[0]).toMatch(/untyped TypeError: x is undefined\n {4}input: input U/);
    expect(f.failures[1]).toMatch(/rejected but left 1 tensors alive/);
    expect(f.failures[2]).toMatch(/used \d+ ms of CPU \(limit 100 ms\)/);
    expect(f.failures[3]).toMatch(/no answer after 200 ms/);
    expect(f.errorKinds.get('TypeError')).toBe(1);
    expect(f.summary()).toMatch(/rejected; errors/);
    x.dispose();
  });
});
