// Loads MNIST through the built package exactly as a bundled browser app would.
import { loadMnist, ShuffledBatches } from '../../dist/index.js';

loadMnist()
  .then((m) => {
    const counts = new Array(10).fill(0);
    for (const l of m.labels) counts[l]++;
    let min = Infinity;
    let max = -Infinity;
    for (const v of m.x) {
      if (v < min) min = v;
      if (v > max) max = v;
    }
    const first = new ShuffledBatches(m, { batchSize: 4, seed: 1 }).nextIndices();
    window.result = { count: m.count, shape: m.shape, counts, min, max, first: Array.from(first) };
  })
  .catch((e) => {
    window.result = { error: String(e) };
  });
