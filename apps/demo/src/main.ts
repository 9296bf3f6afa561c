/**
 * The demo page: backend picker, then the playground sections in the order a reader of the paper
 * meets them. Each section is its own module; they share the current data set and trained model.
 */
import './style.css';
import { activeBackend, mountBackendPicker, switchBackend } from './backend.js';
import { loadDataset, type PlaygroundData } from './data.js';
import { mountForward } from './forward.js';
import { mountViews } from './views.js';

const status = document.getElementById('status')!;

async function boot(): Promise<void> {
  status.textContent = 'starting a tensor backend…';
  // `?backend=wasm` (or webgl, webgpu, cpu) picks the first backend; default: the best available.
  const asked = new URLSearchParams(location.search).get('backend');
  const info = await switchBackend(asked === 'webgpu' || asked === 'webgl' || asked === 'wasm' || asked === 'cpu' ? asked : 'auto');
  const skipped = info?.skipped.map((s) => `${s.name}: ${s.reason}`).join('; ');
  status.textContent = skipped ? `auto picked ${info?.name} (skipped ${skipped})` : `auto picked ${info?.name}`;

  let data: PlaygroundData = loadDataset('two-moons');
  const forward = mountForward(() => data);
  const views = mountViews(() => data, forward.schedule, () => undefined);

  const redrawAll = async () => {
    await forward.redraw();
    await views.redraw();
  };
  forward.onDatasetChange((name) => {
    data = loadDataset(name);
    void redrawAll();
  });
  mountBackendPicker(() => {
    status.textContent = `switched to ${activeBackend()?.name}`;
    void redrawAll();
  });
  await redrawAll();
  document.body.dataset.ready = 'true';
}

boot().catch((e) => {
  console.error(e);
  status.textContent = `failed to start: ${(e as Error).message}`;
  status.classList.add('error');
});
