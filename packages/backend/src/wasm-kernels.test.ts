/**
 * The wasm kernel fixes against the cpu backend, which tfjs implements independently.
 * Tolerance: 1e-4 relative to the largest gradient entry (float32 sums over up to ~10^4 terms,
 * accumulated in different orders by XNNPACK and by the cpu backend).
 */
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { initBackend, Random, useSimdKernels } from './index.js';

type Run = (backend: 'wasm' | 'cpu') => Promise<Float32Array[]>;

async function onBoth(run: Run): Promise<{ wasm: Float32Array[]; cpu: Float32Array[] }> {
  await initBackend('cpu');
  const cpu = await run('cpu');
  await initBackend('wasm');
  const wasm = await run('wasm');
  return { wasm, cpu };
}

function expectClose(a: Float32Array[], b: Float32Array[], rtol = 1e-4): void {
  expect(a.length).toBe(b.length);
  for (let k = 0; k < a.length; k++) {
    const x = a[k]!;
    const y = b[k]!;
    expect(x.length).toBe(y.length);
    let scale = 0;
    let err = 0;
    for (let i = 0; i < x.length; i++) {
      scale = Math.max(scale, Math.abs(y[i]!));
      err = Math.max(err, Math.abs(x[i]! - y[i]!));
    }
    expect(err).toBeLessThanOrEqual(rtol * Math.max(scale, 1e-6));
  }
}

const convCases = [
  { name: '3x3 same stride 1', x: [2, 8, 8, 3], f: [3, 3, 3, 5], s: 1, pad: 'same' },
  { name: '3x3 valid stride 1', x: [2, 9, 7, 4], f: [3, 3, 4, 6], s: 1, pad: 'valid' },
  { name: '3x3 same stride 2 (odd size)', x: [3, 9, 9, 2], f: [3, 3, 2, 4], s: 2, pad: 'same' },
  { name: '4x4 valid stride 2', x: [2, 10, 10, 3], f: [4, 4, 3, 2], s: 2, pad: 'valid' },
  { name: '1x1', x: [2, 5, 5, 8], f: [1, 1, 8, 4], s: 1, pad: 'valid' },
  { name: '5x3 same stride 1 (even width)', x: [2, 7, 6, 3], f: [5, 3, 3, 4], s: 1, pad: 'same' },
  { name: '2x2 same stride 1 (even kernel)', x: [1, 6, 6, 2], f: [2, 2, 2, 3], s: 1, pad: 'same' },
  {
    name: 'asymmetric explicit pad, stride 1',
    x: [2, 6, 5, 2],
    f: [3, 3, 2, 3],
    s: 1,
    pad: [
      [0, 0],
      [2, 0],
      [1, 2],
      [0, 0],
    ],
  },
  // Channels in multiples of 4 (in) and 8 (out): the SIMD module's conv2d and filter gradient.
  { name: 'SIMD 3x3 same', x: [2, 7, 5, 4], f: [3, 3, 4, 8], s: 1, pad: 'same' },
  { name: 'SIMD 5x5 valid', x: [3, 9, 8, 8], f: [5, 5, 8, 16], s: 1, pad: 'valid' },
  { name: 'SIMD 1x1', x: [2, 5, 5, 16], f: [1, 1, 16, 16], s: 1, pad: 'valid' },
  {
    name: 'SIMD 12 -> 12 channels (channel blocks overlap)',
    x: [2, 5, 5, 12],
    f: [3, 3, 12, 12],
    s: 1,
    pad: 'same',
  },
  { name: 'SIMD 2x2 same (even kernel)', x: [1, 6, 6, 4], f: [2, 2, 4, 8], s: 1, pad: 'same' },
  {
    name: '1 -> 16 channels (forward on XNNPACK: 9 terms per output; filter gradient padded)',
    x: [1, 6, 6, 1],
    f: [3, 3, 1, 16],
    s: 1,
    pad: 'same',
  },
  {
    name: 'SIMD 5 output pixels (last block overlaps)',
    x: [1, 1, 5, 16],
    f: [1, 1, 16, 8],
    s: 1,
    pad: 'valid',
  },
  {
    name: '3 output pixels (too few: falls back)',
    x: [1, 1, 3, 4],
    f: [1, 1, 4, 8],
    s: 1,
    pad: 'valid',
  },
  {
    name: 'stride 2, SIMD channels (falls back)',
    x: [2, 9, 9, 4],
    f: [3, 3, 4, 8],
    s: 2,
    pad: 'same',
  },
  {
    name: 'SIMD asymmetric explicit pad',
    x: [2, 6, 5, 4],
    f: [3, 3, 4, 8],
    s: 1,
    pad: [
      [0, 0],
      [2, 0],
      [1, 2],
      [0, 0],
    ],
  },
  {
    name: 'explicit pad, stride (2,1)',
    x: [1, 7, 6, 2],
    f: [3, 2, 2, 3],
    s: [2, 1],
    pad: [
      [0, 0],
      [1, 2],
      [0, 1],
      [0, 0],
    ],
  },
] as const;

/** The kernel itself, as tfjs's conv2d gradient calls it (3x3 filter, 3 -> 4 channels, 'same'). */
function backpropFilter(x: tf.Tensor, dy: tf.Tensor, dataFormat: 'NHWC' | 'NCHW'): tf.Tensor {
  const attrs = { strides: [1, 1], pad: 'same', dataFormat, filterShape: [3, 3, 3, 4] };
  return tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, attrs as never) as tf.Tensor;
}

describe('wasm Conv2DBackpropFilter', () => {
  it.each(convCases)('conv2d gradients agree with cpu: $name', async (c) => {
    const rng = Random.seed(7);
    const xv = rng.normalArray((c.x as readonly number[]).reduce((a, b) => a * b, 1));
    const fv = rng.normalArray((c.f as readonly number[]).reduce((a, b) => a * b, 1));
    const { wasm, cpu } = await onBoth(async () => {
      const x = tf.tensor4d(xv, c.x as unknown as [number, number, number, number]);
      const f = tf.tensor4d(fv, c.f as unknown as [number, number, number, number]);
      const loss = (a: tf.Tensor4D, b: tf.Tensor4D) =>
        // biome-ignore lint/suspicious/noExplicitAny: pad takes a union
        tf.sum(tf.square(tf.conv2d(a, b, c.s as any, c.pad as any)));
      const [dx, df] = tf.grads(loss as (...t: tf.Tensor[]) => tf.Tensor)([x, f]);
      const out = [await dx!.data(), await df!.data()] as Float32Array[];
      tf.dispose([x, f, dx!, df!]);
      return out;
    });
    expectClose(wasm, cpu);
  });

  it('the kernel is reachable directly, and NCHW is handled', async () => {
    const rng = Random.seed(3);
    const xv = rng.normalArray(2 * 3 * 6 * 6);
    const dyv = rng.normalArray(2 * 4 * 6 * 6);
    const { wasm, cpu } = await onBoth(async () => {
      const x = tf.tensor4d(xv, [2, 6, 6, 3]);
      const dy = tf.tensor4d(dyv, [2, 6, 6, 4]);
      const dw = backpropFilter(x, dy, 'NHWC');
      const out = [await dw.data()] as Float32Array[];
      tf.dispose([x, dy, dw]);
      return out;
    });
    expectClose(wasm, cpu);
    // NCHW: the cpu backend lacks NCHW conv, so check against the NHWC result on wasm itself.
    await initBackend('wasm');
    const xN = tf.transpose(tf.tensor4d(xv, [2, 6, 6, 3]), [0, 3, 1, 2]);
    const dyN = tf.transpose(tf.tensor4d(dyv, [2, 6, 6, 4]), [0, 3, 1, 2]);
    const dwN = backpropFilter(xN, dyN, 'NCHW');
    expectClose([(await dwN.data()) as Float32Array], wasm);
    tf.dispose([xN, dyN, dwN]);
  });

  it.each([
    { name: 'XNNPACK paths', x: [2, 8, 8, 3], f: [3, 3, 3, 4], s: 2 },
    { name: 'SIMD paths', x: [2, 8, 8, 4], f: [3, 3, 4, 8], s: 1 },
  ])('does not leak tensors or heap memory: $name', async (c) => {
    await initBackend('wasm');
    const x = tf.randomNormal(c.x);
    const f = tf.randomNormal(c.f);
    const grads = () =>
      tf.grads((a: tf.Tensor, b: tf.Tensor) =>
        tf.sum(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.s as 1 | 2, 'same')),
      )([x, f]);
    tf.dispose(grads());
    const before = tf.memory();
    const ids = tf.engine().backend.numDataIds(); // kernels' scratch buffers included
    tf.dispose(grads());
    const after = tf.memory();
    expect(after.numTensors).toBe(before.numTensors);
    expect(after.numBytes).toBe(before.numBytes);
    expect(tf.engine().backend.numDataIds()).toBe(ids);
    tf.dispose([x, f]);
  });
});

describe('wasm transposed matMul', () => {
  // m, k, n = 17, 9, 13: XNNPACK (k < 16); 17, 20, 13: the SIMD module with overlapping channel
  // blocks, for A^T B on M and N zero-padded (fix 11); 12, 70, 16: the SIMD module throughout, A^T B in a
  // 64-row chunk plus 6 rows; 40, 70, 2: A^T B on N zero-padded to 8 (fix 11)
  const shapes = [false, true].flatMap((ta) =>
    [false, true].flatMap((tb) => [
      { ta, tb, m: 17, k: 9, n: 13 },
      { ta, tb, m: 17, k: 20, n: 13 },
      { ta, tb, m: 12, k: 70, n: 16 },
      { ta, tb, m: 40, k: 70, n: 2 },
    ]),
  );
  it.each(shapes)(
    'matMul transposeA=$ta transposeB=$tb ($m x $k x $n) agrees with cpu, plain and fused, with batch dims',
    async ({ ta, tb, m, k, n }) => {
      const rng = Random.seed(11);
      const av = rng.normalArray(3 * m * k);
      const bv = rng.normalArray(3 * k * n);
      const biasv = rng.normalArray(n);
      const { wasm, cpu } = await onBoth(async () => {
        const a = tf.tensor3d(av, ta ? [3, k, m] : [3, m, k]);
        const b = tf.tensor3d(bv, tb ? [3, n, k] : [3, k, n]);
        const bias = tf.tensor1d(biasv);
        const y = tf.matMul(a, b, ta, tb);
        const z = tf.fused.matMul({
          a,
          b,
          transposeA: ta,
          transposeB: tb,
          bias,
          activation: 'relu',
        });
        // a 2-D a against every entry of b, and b shared by every entry of a (broadcast batch)
        const a0 = tf.tensor2d(av.subarray(0, m * k), ta ? [k, m] : [m, k]);
        const v = tf.matMul(a0, b, ta, tb);
        const b0 = tf.tensor2d(bv.subarray(0, k * n), tb ? [n, k] : [k, n]);
        const w = tf.matMul(a, b0, ta, tb);
        const out = [
          await y.data(),
          await z.data(),
          await w.data(),
          await v.data(),
        ] as Float32Array[];
        tf.dispose([a, b, bias, y, z, b0, w, a0, v]);
        return out;
      });
      expectClose(wasm, cpu);
    },
  );

  it('MLP gradients (which use the transposed forms) agree with cpu', async () => {
    const rng = Random.seed(5);
    const xv = rng.normalArray(64 * 32);
    const w1v = rng.normalArray(32 * 48);
    const w2v = rng.normalArray(48 * 8);
    const { wasm, cpu } = await onBoth(async () => {
      const x = tf.tensor2d(xv, [64, 32]);
      const w1 = tf.tensor2d(w1v, [32, 48]);
      const w2 = tf.tensor2d(w2v, [48, 8]);
      const f = (a: tf.Tensor, b: tf.Tensor) =>
        tf.sum(tf.square(tf.matMul(tf.relu(tf.matMul(x, a as tf.Tensor2D)), b as tf.Tensor2D)));
      const [g1, g2] = tf.grads(f)([w1, w2]);
      const out = [await g1!.data(), await g2!.data()] as Float32Array[];
      tf.dispose([x, w1, w2, g1!, g2!]);
      return out;
    });
    expectClose(wasm, cpu);
  });
});

describe('wasm batched matMul as one product per entry', () => {
  // Each entry has >= 8192 multiply-adds, so the per-entry path (fix 7) runs; the broadcast cases
  // it does not cover fall back to the batched kernel and must agree as well. Gradients only where
  // no batch dim is broadcast: tfjs 4.22's BatchMatMul gradient does not reduce broadcast dims.
  const cases = [
    { name: 'same batch', a: [3, 40, 30], b: [3, 30, 20] },
    { name: 'two batch dims', a: [2, 3, 24, 32], b: [2, 3, 32, 16] },
    { name: 'only a batched (one product of all rows)', a: [2, 3, 40, 30], b: [30, 20], fwd: true },
    { name: 'only b batched (a shared)', a: [40, 30], b: [3, 30, 20], fwd: true },
    { name: 'a batch 1 broadcast', a: [1, 40, 30], b: [4, 30, 20], fwd: true },
    { name: 'attention scores, transposed b', a: [4, 49, 32], b: [4, 49, 32], tb: true },
    { name: 'attention grad, transposed a', a: [4, 49, 49], b: [4, 49, 32], ta: true },
  ] as const;
  it.each(cases)('$name: plain, fused (bias, relu) and gradients agree with cpu', async (c) => {
    const withGrads = !('fwd' in c && c.fwd);
    const rng = Random.seed(23);
    const size = (s: readonly number[]) => s.reduce((p, d) => p * d, 1);
    const av = rng.normalArray(size(c.a));
    const bv = rng.normalArray(size(c.b));
    const ta = 'ta' in c && c.ta;
    const tb = 'tb' in c && c.tb;
    const n = tb ? c.b[c.b.length - 2]! : c.b[c.b.length - 1]!;
    const biasv = rng.normalArray(n);
    const { wasm, cpu } = await onBoth(async () => {
      const a = tf.tensor(av, [...c.a]);
      const b = tf.tensor(bv, [...c.b]);
      const bias = tf.tensor1d(biasv);
      const y = tf.matMul(a, b, ta, tb);
      const z = tf.fused.matMul({ a, b, transposeA: ta, transposeB: tb, bias, activation: 'relu' });
      const out = [await y.data(), await z.data()];
      tf.dispose([y, z, bias]);
      if (withGrads) {
        const [da, db] = tf.grads((p: tf.Tensor, q: tf.Tensor) =>
          tf.sum(tf.square(tf.matMul(p, q, ta, tb))),
        )([a, b]);
        out.push(await da!.data(), await db!.data());
        tf.dispose([da!, db!]);
      }
      tf.dispose([a, b]);
      return out as Float32Array[];
    });
    expectClose(wasm, cpu);
  });

  it('leaves no tensors and no backend buffers behind', async () => {
    await initBackend('wasm');
    const a = tf.randomNormal([4, 49, 32]);
    const b = tf.randomNormal([4, 32, 49]);
    const backend = tf.engine().backend;
    const before = [tf.memory().numTensors, backend.numDataIds()];
    const y = tf.matMul(a, b);
    const g = tf.grads((p: tf.Tensor, q: tf.Tensor) => tf.sum(tf.matMul(p, q)))([a, b]);
    tf.dispose([y, ...g]);
    expect([tf.memory().numTensors, backend.numDataIds()]).toEqual(before);
    tf.dispose([a, b]);
  });
});

describe('wasm Sum over leading axes', () => {
  // Fix 8 handles float32 sums over a leading run of axes; the rest falls back to the wasm kernel.
  const cases = [
    { name: 'bias gradient [2048, 256] over axis 0', shape: [2048, 256], axis: [0] },
    { name: 'conv bias gradient over [0, 1, 2]', shape: [3, 9, 7, 6], axis: [0, 1, 2] },
    { name: 'inner size not a multiple of 4, more rows than a block', shape: [150, 7], axis: 0 },
    { name: 'keepDims', shape: [5, 6, 3], axis: [0, 1], keepDims: true },
    { name: 'negative and unsorted axes', shape: [4, 5, 6], axis: [-2, 0] },
    { name: 'all axes (fallback)', shape: [4, 5, 6], axis: [0, 1, 2] },
    { name: 'inner axis (fallback)', shape: [4, 5, 6], axis: [1, 2] },
    { name: 'int32 (fallback)', shape: [40, 6], axis: 0, dtype: 'int32' },
  ] as const;
  it.each(cases)('$name agrees with cpu', async (c) => {
    const rng = Random.seed(31);
    const n = c.shape.reduce((p: number, d: number) => p * d, 1);
    const dtype = 'dtype' in c ? c.dtype : 'float32';
    const values =
      dtype === 'int32'
        ? Int32Array.from(rng.normalArray(n), (v) => Math.round(10 * v))
        : rng.normalArray(n);
    const keepDims = 'keepDims' in c && c.keepDims;
    const { wasm, cpu } = await onBoth(async () => {
      const x = tf.tensor(values, [...c.shape], dtype);
      const y = tf.sum(x, c.axis as number | number[], keepDims);
      const out = [Float32Array.from(await y.data())];
      expect(y.shape).toEqual(
        tf.tidy(() => tf.sum(tf.zeros([...c.shape]), c.axis as number | number[], keepDims).shape),
      );
      tf.dispose([x, y]);
      return out;
    });
    expectClose(wasm, cpu, 1e-5);
  });

  it.each([
    [150, 7],
    [4096, 256],
    [3 * 9 * 7, 6],
    [1, 9],
  ])(
    'the SIMD column sums equal the JavaScript ones bit for bit: [%i, %i]',
    async (outer, inner) => {
      await initBackend('wasm');
      const x = tf.tensor2d(Random.seed(outer + inner).normalArray(outer * inner), [outer, inner]);
      const sum = async () => {
        const y = tf.sum(x, 0);
        const values = Array.from(await y.data());
        y.dispose();
        return values;
      };
      const simd = await sum();
      useSimdKernels(false);
      try {
        expect(simd).toEqual(await sum()); // columnSums, the JavaScript path
      } finally {
        useSimdKernels(true);
        x.dispose();
      }
    },
  );

  it('the bias gradient of a dense layer agrees with cpu, with no buffers left behind', async () => {
    const rng = Random.seed(37);
    const xv = rng.normalArray(300 * 16);
    const bv = rng.normalArray(16);
    const { wasm, cpu } = await onBoth(async () => {
      const x = tf.tensor2d(xv, [300, 16]);
      const b = tf.tensor1d(bv);
      const backend = tf.engine().backend;
      const before = backend.numDataIds();
      const g = tf.grad((p: tf.Tensor) => tf.sum(tf.square(tf.add(x, p))))(b);
      const out = [(await g.data()) as Float32Array];
      g.dispose();
      expect(backend.numDataIds()).toBe(before);
      tf.dispose([x, b]);
      return out;
    });
    expectClose(wasm, cpu);
  });
});

describe('wasm Identity and same-dtype Cast share the buffer', () => {
  it('a clone or a same-dtype cast outlives its source, and the buffer is freed with the last', async () => {
    await initBackend('wasm');
    const backend = tf.engine().backend;
    const before = [tf.memory().numTensors, backend.numDataIds()];
    const x = tf.tensor2d([1, 2, 3, 4.5], [2, 2]);
    const c = tf.clone(x);
    const k = tf.cast(x, 'float32');
    expect(backend.numDataIds()).toBe((before[1] as number) + 1); // one buffer for all three
    x.dispose();
    expect(Array.from(await c.data())).toEqual([1, 2, 3, 4.5]);
    c.dispose();
    expect(Array.from(await k.data())).toEqual([1, 2, 3, 4.5]);
    const i = tf.cast(k, 'int32'); // a real conversion still converts
    expect(i.dtype).toBe('int32');
    expect(Array.from(await i.data())).toEqual([1, 2, 3, 4]);
    tf.dispose([k, i]);
    expect([tf.memory().numTensors, backend.numDataIds()]).toEqual(before);
  });

  it('a variable assigned from a clone keeps its value when the clone source is disposed', async () => {
    await initBackend('wasm');
    const v = tf.variable(tf.zeros([3]));
    const src = tf.tensor1d([7, 8, 9]);
    const copy = tf.clone(src);
    v.assign(copy);
    tf.dispose([copy, src]);
    expect(Array.from(await v.data())).toEqual([7, 8, 9]);
    v.dispose();
  });
});

describe('wasm OneHot and UnsortedSegmentSum', () => {
  it('oneHot honours float32 (wasm wrote int32 bit patterns)', async () => {
    const { wasm, cpu } = await onBoth(async () => {
      const idx = tf.tensor2d([0, 2, 1, 3], [2, 2], 'int32');
      const f = tf.oneHot(idx, 4, 2.5, -1, 'float32');
      const i = tf.oneHot(idx, 4);
      const out = [await f.data(), Float32Array.from(await i.data())] as Float32Array[];
      expect(f.dtype).toBe('float32');
      tf.dispose([idx, f, i]);
      return out;
    });
    expect(Array.from(wasm[0]!)).toEqual(Array.from(cpu[0]!));
    expect(Array.from(wasm[1]!)).toEqual(Array.from(cpu[1]!));
  });

  it('unsortedSegmentSum and the gradient of gather agree with cpu', async () => {
    const rng = Random.seed(21);
    const xv = rng.normalArray(6 * 3);
    const { wasm, cpu } = await onBoth(async () => {
      const x = tf.tensor2d(xv, [6, 3]);
      const ids = tf.tensor1d([0, 4, 1, 4, 4, 2], 'int32');
      const s = tf.unsortedSegmentSum(x, ids, 5);
      const table = tf.tensor2d(xv.slice(0, 12), [4, 3]);
      const g = tf.grad((t: tf.Tensor) =>
        tf.sum(tf.square(tf.gather(t, tf.tensor1d([3, 0, 3, 1], 'int32')))),
      )(table);
      const out = [await s.data(), await g.data()] as Float32Array[];
      tf.dispose([x, ids, s, table, g]);
      return out;
    });
    expectClose(wasm, cpu, 1e-6);
  });
});

describe('wasm Concat by rows on the SIMD module', () => {
  const cases = [
    {
      name: 'channels of two NHWC maps',
      shapes: [
        [2, 5, 5, 3],
        [2, 5, 5, 7],
      ],
      axis: -1,
    },
    {
      name: 'three inputs along axis 1',
      shapes: [
        [3, 2, 4],
        [3, 1, 4],
        [3, 5, 4],
      ],
      axis: 1,
    },
    {
      name: 'axis 0',
      shapes: [
        [2, 3],
        [4, 3],
      ],
      axis: 0,
    },
    {
      name: 'an empty input among them',
      shapes: [
        [2, 3],
        [2, 0],
        [2, 1],
      ],
      axis: 1,
    },
    {
      name: 'int32',
      shapes: [
        [4, 2],
        [4, 3],
      ],
      axis: 1,
      dtype: 'int32',
    },
  ] as const;
  it.each(cases)('$name: values equal cpu exactly, and the gradient too', async (c) => {
    const rng = Random.seed(41);
    const dtype = 'dtype' in c ? c.dtype : 'float32';
    const values = c.shapes.map((s) => {
      const v = rng.normalArray(s.reduce((p: number, d: number) => p * d, 1));
      return dtype === 'int32' ? Int32Array.from(v, (x) => Math.round(10 * x)) : v;
    });
    const { wasm, cpu } = await onBoth(async () => {
      const xs = values.map((v, i) => tf.tensor(v, [...c.shapes[i]!], dtype));
      const y = tf.concat(xs, c.axis);
      const out = [Float32Array.from(await y.data())];
      if (dtype === 'float32') {
        const w = tf.tidy(() => tf.reshape(tf.range(0, y.size), y.shape));
        const grads = tf.grads((...t: tf.Tensor[]) => tf.sum(tf.mul(tf.concat(t, c.axis), w)))(xs);
        for (const g of grads) out.push(Float32Array.from(await g.data()));
        tf.dispose([w, ...grads]);
      }
      tf.dispose([...xs, y]);
      return out;
    });
    expectClose(wasm, cpu, 0);
  });
});
