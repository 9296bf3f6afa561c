/**
 * Your own diffusers checkpoint: pick a model folder (or its files, or drop them here) as diffusers'
 * `save_pretrained` writes it: `config.json` + `diffusion_pytorch_model.safetensors` (or an fp16
 * variant, or shards), optionally with the pipeline's `scheduler/scheduler_config.json`. The page
 * loads it with `diffusersModelFromFiles` (nothing leaves the browser) and samples a pixel-space
 * `UNet2DModel` with any sampler, with classifier-free guidance for a class-conditional one (the
 * last class as the null class). A text UNet or a VAE loads and reports itself; sampling it needs
 * prompt embeddings, which this page does not compute.
 */
import { classifierFreeGuidance } from '@diffuse/guidance';
import {
  type Denoiser,
  DiffusersDenoiser,
  type DiffusersModel,
  diffusersModelFromFiles,
} from '@diffuse/models';
import { getSampler, listSamplers, sample } from '@diffuse/samplers';
import * as tf from '@tensorflow/tfjs-core';
import { act, button, el, labelled, nextFrame, number, row, section, select } from './ui.js';

/** The DDPM scheduler's defaults (google/ddpm-* checkpoints), when the folder holds no scheduler config. */
const DEFAULT_SCHEDULER = {
  _class_name: 'DDPMScheduler',
  beta_schedule: 'linear',
  beta_start: 0.0001,
  beta_end: 0.02,
  num_train_timesteps: 1000,
};

interface PickedFiles {
  config: string;
  weights: Uint8Array[];
  scheduler: string | undefined;
  where: string;
}

const pathOf = (f: File) => f.webkitRelativePath || f.name;

/**
 * The model's files among those picked: in a whole pipeline folder, the `unet/` ones; weights are
 * the plain `diffusion_pytorch_model.safetensors`, else its fp16 variant, else every shard.
 */
async function pickFiles(files: File[]): Promise<PickedFiles> {
  const configs = files.filter((f) => f.name === 'config.json');
  const config = configs.find((f) => /(^|\/)unet\//.test(pathOf(f))) ?? configs[0];
  if (!config) throw new Error('no config.json among the picked files');
  const dir = pathOf(config).slice(0, pathOf(config).length - 'config.json'.length);
  const inDir = files.filter(
    (f) => pathOf(f).startsWith(dir) && !pathOf(f).slice(dir.length).includes('/'),
  );
  const st = inDir.filter((f) => f.name.endsWith('.safetensors'));
  const chosen =
    st.filter((f) => f.name === 'diffusion_pytorch_model.safetensors').length > 0
      ? st.filter((f) => f.name === 'diffusion_pytorch_model.safetensors')
      : st.filter((f) => f.name === 'diffusion_pytorch_model.fp16.safetensors').length > 0
        ? st.filter((f) => f.name === 'diffusion_pytorch_model.fp16.safetensors')
        : st.filter((f) => /^diffusion_pytorch_model.*-of-\d+\.safetensors$/.test(f.name));
  if (chosen.length === 0)
    throw new Error(`no diffusion_pytorch_model*.safetensors next to ${pathOf(config)}`);
  const sched = files.find((f) => f.name === 'scheduler_config.json');
  return {
    config: await config.text(),
    weights: await Promise.all(chosen.map(async (f) => new Uint8Array(await f.arrayBuffer()))),
    scheduler: sched ? await sched.text() : undefined,
    where: `${pathOf(config)} + ${chosen.map((f) => f.name).join(', ')}${sched ? ` + ${pathOf(sched)}` : ''}`,
  };
}

/** Draws NCHW images in [-1, 1] side by side, scaled up to at least 96 pixels. */
function drawImages(canvas: HTMLCanvasElement, images: tf.Tensor): void {
  const [n, c, h, w] = images.shape as [number, number, number, number];
  const data = images.dataSync();
  const zoom = Math.max(1, Math.ceil(96 / h));
  canvas.width = n * w * zoom + (n - 1) * 4;
  canvas.height = h * zoom;
  const ctx = canvas.getContext('2d')!;
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const px = (v: number) => Math.round(255 * Math.min(1, Math.max(0, v / 2 + 0.5)));
  for (let k = 0; k < n; k++) {
    const img = ctx.createImageData(w, h);
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        const at = (ch: number) => data[((k * c + Math.min(ch, c - 1)) * h + y) * w + x]!;
        const o = (y * w + x) * 4;
        img.data[o] = px(at(0));
        img.data[o + 1] = px(at(1));
        img.data[o + 2] = px(at(2));
        img.data[o + 3] = 255;
      }
    const tmp = document.createElement('canvas');
    tmp.width = w;
    tmp.height = h;
    tmp.getContext('2d')!.putImageData(img, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(tmp, k * (w * zoom + 4), 0, w * zoom, h * zoom);
  }
}

export function mountDiffusers(): void {
  const s = section(
    'diffusers',
    'Your diffusers model',
    "Pick a <b>diffusers model folder</b> (<code>config.json</code> + <code>diffusion_pytorch_model.safetensors</code>, fp16 or sharded; a whole pipeline folder works, its <code>unet/</code> and <code>scheduler/</code> are used), or its files, or drop them here. It loads in the page (<code>diffusersModelFromFiles</code>: nothing is uploaded) as diffusers' <code>UNet2DModel</code>, <code>UNet2DConditionModel</code> or <code>AutoencoderKL</code>, with diffusers' numbers. A pixel-space UNet samples with any sampler; a class-conditional one with classifier-free guidance (its last class as the null class).",
  );
  const folder = el('input', { id: 'diffusers-folder', type: 'file', multiple: true });
  folder.setAttribute('webkitdirectory', '');
  const files = el('input', { id: 'diffusers-files', type: 'file', multiple: true });
  row(s, labelled('model folder', folder), labelled('or files', files));
  const samplerSel = select(
    'diffusers-sampler',
    listSamplers().map((d) => d.name),
    'ddim',
  );
  const steps = number('diffusers-steps', 1, 1000, 20);
  const batch = number('diffusers-n', 1, 16, 4);
  const cls = number('diffusers-class', 0, 9999, 0);
  const scale = number('diffusers-scale', 0, 20, 3);
  const go = button('diffusers-button', 'sample');
  go.disabled = true;
  row(
    s,
    labelled('sampler', samplerSel),
    labelled('steps', steps),
    labelled('images', batch),
    labelled('class', cls),
    labelled('guidance scale', scale),
    go,
  );
  const info = el('div', {
    id: 'diffusers-info',
    className: 'status',
    textContent: 'no model loaded',
  });
  const canvas = el('canvas', { id: 'diffusers-canvas', width: 96, height: 96 });
  s.append(info, canvas);

  let model: DiffusersModel | undefined;
  let scheduler: string | object = DEFAULT_SCHEDULER;

  const load = (list: FileList | File[] | null) =>
    act(s, async () => {
      if (!list || list.length === 0) return;
      info.textContent = 'reading…';
      const picked = await pickFiles([...list]);
      model?.dispose();
      model = undefined;
      go.disabled = true;
      const m = diffusersModelFromFiles({ config: picked.config, weights: picked.weights });
      model = m;
      scheduler = picked.scheduler ?? DEFAULT_SCHEDULER;
      const pixel = m.className === 'UNet2DModel';
      const classes = pixel ? m.config.num_class_embeds : null;
      info.textContent = `${m.className}, ${m.numParameters.toLocaleString('en')} parameters, from ${picked.where}${picked.scheduler ? '' : ' (no scheduler config: DDPM linear betas)'}${pixel ? (classes ? `; ${classes} classes` : '') : '; sampling it needs prompt embeddings / a UNet: not in this page'}`;
      s.dataset.loaded = m.className;
      go.disabled = !pixel;
    });
  folder.addEventListener('change', () => void load(folder.files));
  files.addEventListener('change', () => void load(files.files));
  s.addEventListener('dragover', (e) => e.preventDefault());
  s.addEventListener('drop', (e) => {
    e.preventDefault();
    void load(e.dataTransfer?.files ?? null);
  });

  go.addEventListener('click', () =>
    act(s, async () => {
      if (model?.className !== 'UNet2DModel') throw new Error('load a UNet2DModel folder first');
      const unet = model;
      const base = new DiffusersDenoiser(unet, { scheduler });
      const classes = unet.config.num_class_embeds;
      const n = Math.max(1, Math.min(16, Number(batch.value) || 1));
      let denoiser: Denoiser = base;
      let cond: { labels: tf.Tensor } | undefined;
      if (classes) {
        const label = Math.min(classes - 1, Math.max(0, Number(cls.value) || 0));
        cond = { labels: tf.fill([n], label, 'int32') };
        denoiser = classifierFreeGuidance(base, {
          guidanceScale: Number(scale.value),
          nullLabel: classes - 1,
        });
      }
      const t0 = performance.now();
      try {
        const x = await sample(denoiser, {
          sampler: getSampler(samplerSel.value).name,
          schedule: base.schedule,
          steps: Number(steps.value) || 20,
          batch: n,
          seed: 0,
          cond,
          onStep: async ({ i, steps: total }) => {
            info.textContent = `sampling: step ${i + 1} / ${total}`;
            await nextFrame();
          },
        });
        drawImages(canvas, x);
        x.dispose();
      } finally {
        cond?.labels.dispose();
      }
      info.textContent = `${unet.className}: ${n} samples in ${((performance.now() - t0) / 1000).toFixed(1)} s`;
    }),
  );
}
