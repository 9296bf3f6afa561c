/**
 * The demo page: backend picker, then the playground sections in the order a reader of the paper
 * meets them. Each section is its own module; they share the current data set and trained model.
 */
import './style.css';
import type { BackendName } from '@diffuse/backend';
import { activeBackend, exclusive, mountBackendPicker, switchBackend } from './backend.js';
import { loadDataset, type PlaygroundData } from './data.js';
import { mountDiffusers } from './diffusers.js';
import { mountForward } from './forward.js';
import {
  type GuidedModel,
  mountGuidance,
  oracleGuidedModel,
  shippedGuidedModels,
} from './guidance.js';
import { mountMnist } from './mnist.js';
import { mountSampling } from './sampling.js';
import { mountTraining } from './train.js';
import { mountViews } from './views.js';

const status = document.getElementById('status')!;
const BACKENDS: BackendName[] = ['webgpu', 'webgl', 'wasm', 'cpu'];

async function boot(): Promise<void> {
  status.textContent = 'starting a tensor backend…';
  // `?backend=wasm` (or webgl, webgpu, cpu) picks the first backend; default: the best available.
  const asked = new URLSearchParams(location.search).get('backend') as BackendName | null;
  const info = await switchBackend(asked && BACKENDS.includes(asked) ? asked : 'auto');
  const skipped = info?.skipped.map((s) => `${s.name}: ${s.reason}`).join('; ');
  status.textContent = skipped
    ? `auto picked ${info?.name} (skipped ${skipped})`
    : `running on ${info?.name}`;

  let data: PlaygroundData = await loadDataset('two-moons');
  const getData = () => data;
  const forward = mountForward(getData);
  const training = mountTraining(getData, () => void views.redraw());
  const sampling = mountSampling(getData, training.model);
  const views = mountViews(getData, forward.schedule, training.model);
  const guidedModels: GuidedModel[] = [oracleGuidedModel()];
  const guidance = mountGuidance(() => guidedModels);
  try {
    guidedModels.push(...(await exclusive(shippedGuidedModels)));
    guidance.refresh();
  } catch (e) {
    status.textContent += ` (could not load the shipped 2-D model: ${(e as Error).message})`;
  }
  mountMnist();
  mountDiffusers();

  const redrawAll = async () => {
    await forward.redraw();
    await views.redraw();
  };
  forward.onDatasetChange((name) => {
    void exclusive(async () => {
      data = await loadDataset(name);
    }).then(() => {
      training.reset();
      sampling.redrawIdle();
      void redrawAll();
    });
  });
  mountBackendPicker(() => {
    status.textContent = `switched to ${activeBackend()?.name}`;
    void redrawAll();
  });
  sampling.redrawIdle();
  await redrawAll();
  document.body.dataset.ready = 'true';
}

boot().catch((e) => {
  console.error(e);
  status.textContent = `failed to start: ${(e as Error).message}`;
  status.classList.add('error');
});
