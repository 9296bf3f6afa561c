// Profiles the MNIST U-Net on the tfjs wasm backend, before and after the fast paths of issue 9.3.
//
//   node scripts/profile-unet.mjs [--reps 5] [--channels 16] [--top 12] [--kernels]
//
// Cases: sampling forward passes (batch 8 and 64, one shared noise level, class labels) and a
// training step (batch 32, per-example levels, forward + backward of an epsilon MSE, no optimizer).
// Modes, interleaved rep by rep so both see the same machine load:
//   before: GroupNorm + SiLU composed of tfjs ops (the fused kernel unregistered) and the noise
//           embedding computed per example (levels passed as [batch] tensors);
//   after:  the fused @diffuse/backend groupNorm kernel and a shared level's embedding on one row.
// Times are process CPU time (wasm is synchronous and single-threaded in Node, so CPU time is the
// work done; on a shared, loaded machine wall time mostly measures waiting); wall time is shown too.
// With --kernels, one extra run per mode wraps tf.engine().runKernel and lists the kernels that
// took the most CPU time (kernels called from inside other kernels count in their caller).

import os from 'node:os';
import { GROUP_NORM, initBackend, Random } from '@diffuse/backend';
import { UNet, unetConfig } from '@diffuse/models';
import * as tf from '@tensorflow/tfjs-core';

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? def : Number(process.argv[i + 1]);
};
const reps = arg('reps', 5);
const channels = arg('channels', 16);
const top = arg('top', 12);
const kernels = process.argv.includes('--kernels');

await initBackend('wasm');
const config = unetConfig({
  imageShape: [28, 28, 1],
  channels,
  channelMults: [1, 2],
  numResBlocks: 1,
  attentionResolutions: [],
  groups: 8,
  embedDim: 64,
  numClasses: 10,
  prediction: 'epsilon',
});
const net = new UNet(config, { seed: 0 });
const fused = tf.getKernel(GROUP_NORM, 'wasm');

function setMode(mode) {
  const has = tf.getKernel(GROUP_NORM, 'wasm') !== undefined;
  if (mode === 'before' && has) tf.unregisterKernel(GROUP_NORM, 'wasm');
  if (mode === 'after' && !has) tf.registerKernel(fused);
}

const engine = tf.engine();
const original = engine.runKernel.bind(engine);
let table = null;
engine.runKernel = (name, inputs, attrs) => {
  if (table === null) return original(name, inputs, attrs);
  const c0 = process.cpuUsage();
  const out = original(name, inputs, attrs);
  const c = process.cpuUsage(c0);
  const shapes = Object.values(inputs)
    .map((t) => (t ? `[${t.shape}]` : '-'))
    .join(' ');
  const key = `${name} ${shapes}`;
  const row = table.get(key) ?? { name, key, ms: 0, calls: 0 };
  row.ms += (c.user + c.system) / 1000;
  row.calls++;
  table.set(key, row);
  return out;
};

const rng = Random.seed(1);
const labelsFor = (batch) =>
  tf.tensor1d(
    Array.from({ length: batch }, (_, i) => i % 11),
    'int32',
  );
function sampleStep(batch) {
  const x = rng.normal([batch, 28, 28, 1]);
  const labels = labelsFor(batch);
  const perExample = { alpha: tf.fill([batch], 0.8), sigma: tf.fill([batch], 0.6) };
  return (mode) => {
    const level = mode === 'before' ? perExample : { alpha: 0.8, sigma: 0.6 };
    net.predict(x, level, { labels }).dataSync();
  };
}
function trainStep(batch) {
  const x = rng.normal([batch, 28, 28, 1]);
  const eps = rng.normal([batch, 28, 28, 1]);
  const u = rng.uniform([batch]);
  const labels = labelsFor(batch);
  return () => {
    tf.tidy(() => {
      const t = tf.add(tf.mul(u, 0.98), 0.01);
      const alpha = tf.cos(tf.mul(t, Math.PI / 2));
      const sigma = tf.sin(tf.mul(t, Math.PI / 2));
      const xt = tf.add(
        tf.mul(x, tf.reshape(alpha, [-1, 1, 1, 1])),
        tf.mul(eps, tf.reshape(sigma, [-1, 1, 1, 1])),
      );
      const { value, grads } = tf.variableGrads(
        () => tf.mean(tf.square(tf.sub(net.predict(xt, { alpha, sigma }, { labels }), eps))),
        net.params,
      );
      value.dataSync();
      for (const g of Object.values(grads)) g.dataSync();
    });
  };
}

const median = (a) => [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)];
const load = () =>
  os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

const cases = [
  ['forward batch 8 (sampling)', sampleStep(8)],
  ['forward batch 64 (sampling)', sampleStep(64)],
  ['train step batch 32 (fwd+bwd)', trainStep(32)],
];
const modes = ['before', 'after'];
console.log(
  `U-Net channels ${channels} mults [1,2] attention [] (mid attention 14x14) groups 8 embed 64 classes 10; ${net.numParams} params; ${reps} reps; ${os.cpus().length} cpus; loadavg ${load()}`,
);
const results = [];
for (const [label, run] of cases) {
  const cpu = { before: [], after: [] };
  const wall = { before: [], after: [] };
  for (const mode of modes) {
    setMode(mode);
    run(mode); // warm up
  }
  for (let r = 0; r < reps; r++) {
    for (const mode of modes) {
      setMode(mode);
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      run(mode);
      wall[mode].push(performance.now() - t0);
      const c = process.cpuUsage(c0);
      cpu[mode].push((c.user + c.system) / 1000);
    }
  }
  const row = { label };
  for (const mode of modes) {
    row[mode] = {
      cpuMedian: median(cpu[mode]),
      cpuMin: Math.min(...cpu[mode]),
      wallMedian: median(wall[mode]),
    };
  }
  results.push(row);
  console.log(
    `${label}: before ${row.before.cpuMedian.toFixed(1)} CPU ms (min ${row.before.cpuMin.toFixed(1)}, wall ${row.before.wallMedian.toFixed(0)}); after ${row.after.cpuMedian.toFixed(1)} CPU ms (min ${row.after.cpuMin.toFixed(1)}, wall ${row.after.wallMedian.toFixed(0)}); ratio ${(row.before.cpuMedian / row.after.cpuMedian).toFixed(2)}x; loadavg ${load()}`,
  );
  if (kernels) {
    for (const mode of modes) {
      setMode(mode);
      table = new Map();
      run(mode);
      const rows = [...table.values()];
      table = null;
      const byName = new Map();
      for (const r of rows) byName.set(r.name, (byName.get(r.name) ?? 0) + r.ms);
      const total = rows.reduce((s, r) => s + r.ms, 0);
      const calls = rows.reduce((s, r) => s + r.calls, 0);
      console.log(`  [${mode}] ${calls} kernel calls, ${total.toFixed(1)} CPU ms in kernels`);
      console.log(
        '   by kernel:',
        [...byName]
          .sort((a, b) => b[1] - a[1])
          .slice(0, 14)
          .map(([n, ms]) => `${n} ${ms.toFixed(1)}`)
          .join(', '),
      );
      for (const r of rows.sort((a, b) => b.ms - a.ms).slice(0, top))
        console.log(
          `   ${r.ms.toFixed(1).padStart(7)} ms ${String(r.calls).padStart(3)}x ${r.key}`,
        );
    }
  }
}
setMode('after');
console.log(JSON.stringify(results));
