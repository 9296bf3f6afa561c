// Profiles the MNIST U-Net on the tfjs wasm backend, kernel by kernel.
//
//   node scripts/profile-unet.mjs [--reps 5] [--channels 16] [--top 25] [--no-kernels]
//
// Wraps tf.engine().runKernel and times every call (wasm is synchronous and single-threaded in
// Node, so the process CPU time spent in a call is the kernel's cost; wall time is also shown but
// on a shared, loaded machine it mostly measures waiting); kernels called from inside other kernels
// are counted in their caller. Reports, for sampling
// forward passes (batch 8 and 64, one shared noise level) and a training step (batch 32, per-example
// levels, forward + backward, no optimizer), the median total ms over `reps` runs and the kernels
// that took the most time in one run.
import { initBackend, Random } from '@diffuse/backend';
import { UNet, unetConfig } from '@diffuse/models';
import * as tf from '@tensorflow/tfjs-core';
import os from 'node:os';

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? def : Number(process.argv[i + 1]);
};
const reps = arg('reps', 5);
const channels = arg('channels', 16);
const top = arg('top', 25);
const kernels = !process.argv.includes('--no-kernels');

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

const engine = tf.engine();
const original = engine.runKernel.bind(engine);
let table = null;
engine.runKernel = (name, inputs, attrs) => {
  if (table === null) return original(name, inputs, attrs);
  const c0 = process.cpuUsage();
  const out = original(name, inputs, attrs);
  const c = process.cpuUsage(c0);
  const ms = (c.user + c.system) / 1000;
  const shapes = Object.values(inputs)
    .map((t) => (t ? `[${t.shape}]` : '-'))
    .join(' ');
  const key = `${name} ${shapes}`;
  const row = table.get(key) ?? { name, key, ms: 0, calls: 0 };
  row.ms += ms;
  row.calls++;
  table.set(key, row);
  return out;
};

const rng = Random.seed(1);
function sampleStep(batch) {
  const x = rng.normal([batch, 28, 28, 1]);
  const labels = tf.tensor1d(Array.from({ length: batch }, (_, i) => i % 11), 'int32');
  return () => {
    const y = net.predict(x, { alpha: 0.8, sigma: 0.6 }, { labels });
    y.dispose();
  };
}
function trainStep(batch) {
  const x = rng.normal([batch, 28, 28, 1]);
  const eps = rng.normal([batch, 28, 28, 1]);
  const u = rng.uniform([batch]);
  const labels = tf.tensor1d(Array.from({ length: batch }, (_, i) => i % 11), 'int32');
  return () => {
    tf.tidy(() => {
      const t = tf.add(tf.mul(u, 0.98), 0.01);
      const alpha = tf.cos(tf.mul(t, Math.PI / 2));
      const sigma = tf.sin(tf.mul(t, Math.PI / 2));
      const xt = tf.add(tf.mul(x, tf.reshape(alpha, [-1, 1, 1, 1])), tf.mul(eps, tf.reshape(sigma, [-1, 1, 1, 1])));
      const { value, grads } = tf.variableGrads(
        () => tf.mean(tf.square(tf.sub(net.predict(xt, { alpha, sigma }, { labels }), eps))),
        net.params,
      );
      value.dataSync();
      for (const g of Object.values(grads)) g.dataSync();
    });
  };
}

function median(a) {
  const s = [...a].sort((p, q) => p - q);
  return s[Math.floor(s.length / 2)];
}

const cases = [
  ['forward batch 8 (sampling)', sampleStep(8)],
  ['forward batch 64 (sampling)', sampleStep(64)],
  ['train step batch 32 (fwd+bwd)', trainStep(32)],
];
console.log(
  `U-Net channels ${channels} mults [1,2] attention [] groups 8 embed 64 classes 10; ${net.numParams} params; reps ${reps}; loadavg ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`,
);
const results = [];
for (const [label, run] of cases) {
  run(); // warm up
  const times = [];
  const cpu = [];
  for (let r = 0; r < reps; r++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    run();
    times.push(performance.now() - t0);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
  }
  results.push({ label, wallMedian: median(times), cpuMedian: median(cpu), cpuMin: Math.min(...cpu) });
  console.log(
    `${label}: CPU median ${median(cpu).toFixed(1)} ms (min ${Math.min(...cpu).toFixed(1)}); wall median ${median(times).toFixed(1)} ms; n ${reps}`,
  );
  if (kernels) {
    table = new Map();
    const c0 = process.cpuUsage();
    run();
    const c = process.cpuUsage(c0);
    const total = (c.user + c.system) / 1000;
    const rows = [...table.values()];
    table = null;
    const byName = new Map();
    for (const r of rows) byName.set(r.name, (byName.get(r.name) ?? 0) + r.ms);
    const kernelMs = rows.reduce((s, r) => s + r.ms, 0);
    console.log(`  profiled run ${total.toFixed(1)} CPU ms, ${rows.reduce((s, r) => s + r.calls, 0)} kernel calls, ${kernelMs.toFixed(1)} ms in kernels`);
    console.log('  by kernel:', [...byName].sort((a, b) => b[1] - a[1]).slice(0, 15).map(([n, ms]) => `${n} ${ms.toFixed(1)}`).join(', '));
    for (const r of rows.sort((a, b) => b.ms - a.ms).slice(0, top))
      console.log(`  ${r.ms.toFixed(1).padStart(7)} ms ${String(r.calls).padStart(3)}x ${r.key}`);
  }
}
console.log(`loadavg after ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
console.log(JSON.stringify(results));
