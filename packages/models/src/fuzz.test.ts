/**
 * Seeded fuzzing of every public loader and constructor of @diffuse/models (issue 17): 1,200 mutated
 * safetensors files (at least 1,000 of them malformed for `loadModel`) and 600 mutated configs per
 * run, plus 300 mutated diffusers checkpoints, 60 diffusers folders and 300 diffusers configs. Every call must either succeed (a mutation can leave a file or config valid) or throw a typed
 * `DiffuseError`; none may use over a second of CPU (the shared `Fuzzer` of @diffuse/backend); a rejected call must not grow the wasm heap (nothing is
 * allocated before the input is checked) or leave a tensor alive; the whole run must keep the wasm
 * heap and the process RSS bounded. Change SEED to explore; failures print the input that broke.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Fuzzer, initBackend } from '@diffuse/backend';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  classifierConfig,
  createDiffusersModel,
  createModel,
  diffusersModelFromFiles,
  Ema,
  GaussianMixture,
  ImageClassifier,
  imageClassifierConfig,
  loadModel,
  loadTensors,
  Mlp,
  type Model,
  type ModelConfig,
  mlpConfig,
  modelParameterShapes,
  NoiseConditionalClassifier,
  parseDiffusersConfig,
  parseSafetensors,
  saveModel,
  UNet,
  unetConfig,
  validateModelConfig,
} from './index.js';
import { loadDiffusersModel, loadModelFiles } from './node.js';

const SEED = 20261208;
const FILES = 1200;
const CONFIGS = 600;
const SPECS = 300;
const DIFFUSERS_FILES = 300;
const DIFFUSERS_CONFIGS = 300;
const DIFFUSERS_FOLDERS = 60;
/** Parameter budget of the constructor calls: a mutant that is valid builds, but stays small. */
const FUZZ_MAX_PARAMS = 300_000;

/** The project's seeded harness: every random choice below comes from `Random.seed(SEED)`. */
const fuzz = new Fuzzer(SEED);
const int = (n: number) => fuzz.int(n);
const pick = <T>(a: readonly T[]): T => fuzz.pick(a);

function wasmHeapBytes(): number {
  return (tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.buffer
    .byteLength;
}

function dispose(result: unknown): void {
  if (result instanceof Map) for (const t of result.values()) (t as tf.Tensor).dispose?.();
  else if (result && typeof (result as Model).dispose === 'function') (result as Model).dispose();
  else if (result && typeof result === 'object' && 'tensors' in result)
    dispose((result as { tensors: unknown }).tensors);
}

/**
 * One call on hostile input through the shared harness (typed error, < 1 s of CPU, no tensor left):
 * 'ok' or 'rejected'. A rejected call must not have grown the wasm heap either.
 */
function probe(what: string, input: () => string, fn: () => unknown): Promise<'ok' | 'rejected'> {
  const heap = wasmHeapBytes();
  return fuzz.probe(what, input, fn, {
    dispose,
    check: (outcome) =>
      outcome === 'rejected' && wasmHeapBytes() !== heap
        ? `rejected but grew the wasm heap by ${wasmHeapBytes() - heap}`
        : undefined,
  });
}

/** JSON of a hostile value for a message or a file; one that JSON cannot hold (circular, BigInt) as String(). */
function safeJson(v: unknown): string {
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    try {
      return String(v);
    } catch {
      return Object.prototype.toString.call(v);
    }
  }
}

const clip = (s: string) => (s.length > 300 ? `${s.slice(0, 300)}...` : s);
const describeBytes = (b: Uint8Array) => {
  const n = Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true));
  const head = new TextDecoder().decode(b.subarray(8, 8 + Math.min(n, 400)));
  return clip(`${b.byteLength} bytes, header length ${n}: ${head}`);
};

// ------------------------------------------------------------------ hostile configs

const HOSTILE: readonly unknown[] = [
  -1,
  0,
  0.5,
  1.5,
  3,
  7,
  1e9,
  1e15,
  2 ** 53,
  -0,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  '8',
  '',
  'mlp',
  'unet',
  true,
  null,
  undefined,
  [],
  [1],
  [0, 0, 0],
  [28, 28, 1],
  [1e9, 1e9, 1],
  [8, 8, '1'],
  [-8, 8, 1],
  {},
  { type: 'edm', sigmaData: -1 },
  { type: 'edm', sigmaData: 0.5 },
  { type: 'vp' },
  'x0',
  'epsilon',
  'v',
  'sample',
  Array(100).fill(2),
];

const BASES: ModelConfig[] = [
  mlpConfig({ dim: 2, width: 8, depth: 1, embedDim: 8, numClasses: 2 }),
  unetConfig({
    imageShape: [8, 8, 1],
    channels: 8,
    channelMults: [1, 2],
    groups: 4,
    embedDim: 8,
    attentionResolutions: [4],
  }),
  classifierConfig({ inputShape: [3], numClasses: 2, width: 8, depth: 1, embedDim: 8 }),
  classifierConfig({
    inputShape: [8, 8, 1],
    numClasses: 2,
    channels: 4,
    channelMults: [1, 2],
    groups: 2,
    embedDim: 8,
  }),
  imageClassifierConfig({ inputShape: [8, 8, 1], numClasses: 3, channels: [4, 4], hidden: 8 }),
];

/** A config with 1-3 hostile edits (or, rarely, replaced by a hostile value). */
function mutateConfig(base: ModelConfig): unknown {
  if (int(30) === 0) return pick(HOSTILE);
  const c = structuredClone(base) as unknown as Record<string, unknown>;
  for (let k = 1 + int(3); k > 0; k--) {
    const keys = Object.keys(c);
    const key = pick(keys);
    switch (int(6)) {
      case 0:
        delete c[key];
        break;
      case 1:
        c[pick(['widht', 'channel', '__proto__', 'extra', 'dims'])] = pick(HOSTILE);
        break;
      case 2: {
        const arr = keys.filter((k) => Array.isArray(c[k]));
        if (arr.length > 0) {
          const a = [...(c[pick(arr)] as unknown[])];
          a[int(a.length + 1)] = pick(HOSTILE);
          c[pick(arr)] = a;
          break;
        }
        c[key] = pick(HOSTILE);
        break;
      }
      case 3:
        c.kind = pick([
          'mlp',
          'unet',
          'classifier',
          'image-classifier',
          'MLP',
          'transformer',
          3,
          null,
        ]);
        break;
      default:
        c[key] = pick(HOSTILE);
    }
  }
  return c;
}

/** A diffusers config.json with 1-3 hostile edits (keys of the real config, or unknown ones). */
function mutateDiffusersConfig(base: Record<string, unknown>): unknown {
  if (int(30) === 0) return pick(HOSTILE);
  const c = structuredClone(base);
  for (let k = 1 + int(3); k > 0; k--) {
    const key = pick(Object.keys(c));
    const v = c[key];
    switch (int(5)) {
      case 0:
        delete c[key];
        break;
      case 1:
        c[
          pick([
            '_class_name',
            'block_out_channels',
            'down_block_types',
            'sample_size',
            'extra_key',
          ])
        ] = pick(HOSTILE);
        break;
      case 2:
        if (Array.isArray(v)) {
          const a = [...v];
          a[int(a.length + 1)] = pick([...HOSTILE, 'CrossAttnDownBlock2D', 'UpBlock2D', 'Foo']);
          c[key] = a;
          break;
        }
        c[key] = pick(HOSTILE);
        break;
      default:
        c[key] = pick(HOSTILE);
    }
  }
  return c;
}

/** A mixture spec with 1-2 hostile edits at any depth. */
function mutateSpec(base: Record<string, unknown>): unknown {
  if (int(30) === 0) return pick(HOSTILE);
  const c = structuredClone(base);
  for (let k = 1 + int(2); k > 0; k--) {
    const key = pick(Object.keys(c));
    let target: unknown = c;
    let field: string | number = key;
    // walk down a random path into the nested arrays
    while (Array.isArray((target as Record<string | number, unknown>)[field]) && int(2) === 0) {
      target = (target as Record<string | number, unknown>)[field];
      field = int((target as unknown[]).length + 1);
    }
    if (int(5) === 0) delete (target as Record<string | number, unknown>)[field];
    else (target as Record<string | number, unknown>)[field] = pick(HOSTILE);
  }
  return c;
}

// ------------------------------------------------------------------ hostile files

function header(bytes: Uint8Array): { json: Record<string, unknown>; data: Uint8Array } {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return {
    json: JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))),
    data: bytes.subarray(8 + n),
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

const SHAPES: readonly unknown[] = [
  [],
  [0],
  [-1],
  [1.5],
  ['8'],
  [2 ** 53],
  [1e9, 1e9],
  null,
  'x',
  [8, 8, 8, 8, 8, 8, 8, 8, 8, 8],
];

/** A malformed (or occasionally still valid) variant of a valid model file. */
function mutateFile(bytes: Uint8Array): Uint8Array {
  const { json, data } = header(bytes);
  const names = Object.keys(json).filter((k) => k !== '__metadata__');
  const name = pick(names);
  const entry = json[name] as { dtype: string; shape: number[]; data_offsets: number[] };
  const meta = json.__metadata__ as Record<string, string> | undefined;
  let op = int(16);
  // files without a Diffuse config (diffusers checkpoints): metadata edits become other edits
  if (meta?.['diffuse.config'] === undefined && op >= 9 && op <= 12) op = 3 + (op % 4);
  switch (op) {
    case 0:
      return bytes.slice(0, int(bytes.length));
    case 1: {
      // flip bytes in the length prefix or the header
      const out = bytes.slice();
      const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
      for (let k = 1 + int(4); k > 0; k--) {
        const at = int(8 + n);
        out[at] = out[at]! ^ (1 << int(8));
      }
      return out;
    }
    case 2: {
      const out = bytes.slice();
      const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
      const v = pick([0n, 1n, BigInt(n - 8), BigInt(n + 8), 2n ** 40n, 2n ** 63n, 2n ** 64n - 1n]);
      new DataView(out.buffer).setBigUint64(0, v, true);
      return out;
    }
    case 3:
      entry.dtype = pick(['F16', 'F64', 'I32', 'U8', 'BOOL', 'BF16', 'f32', 'X', 5, null] as never);
      return withHeader(json, data);
    case 4:
      entry.shape = (
        int(2) === 0 ? [...entry.shape].reverse().concat(int(2) ? [1] : []) : pick(SHAPES)
      ) as number[];
      return withHeader(json, data);
    case 5: {
      const [b, e] = entry.data_offsets as [number, number];
      entry.data_offsets = pick([
        [b, e + 4],
        [e, b],
        [-4, e],
        [b, 2 ** 60],
        [b],
        [b + 4, e + 4],
        'x',
      ] as never);
      return withHeader(json, data);
    }
    case 6:
      delete json[name];
      return withHeader(json, data);
    case 7:
      json[`${name}.renamed`] = json[name];
      delete json[name];
      return withHeader(json, data);
    case 8:
      // an extra empty tensor: a valid file, but not this network's
      json['extra.weight'] = { dtype: 'F32', shape: [0], data_offsets: [0, 0] };
      return withHeader(json, data);
    case 9:
      delete meta!['diffuse.config'];
      return withHeader(json, data);
    case 10:
    case 11:
      meta!['diffuse.config'] = safeJson(mutateConfig(JSON.parse(meta!['diffuse.config']!)));
      return withHeader(json, data);
    case 12:
      meta!['diffuse.config'] = pick(['{"kind":', '', 'null', '[]', '"mlp"', '{}']);
      return withHeader(json, data);
    case 13:
      json.__metadata__ = pick([[], 'x', { 'diffuse.config': 5 }, null]);
      return withHeader(json, data);
    case 14: {
      // bytes added or removed at the end of the data section
      const out = new Uint8Array(bytes.length + pick([-8, -4, -1, 1, 4, 8]));
      out.set(bytes.subarray(0, Math.min(bytes.length, out.length)));
      return out;
    }
    default:
      return int(2) === 0
        ? withHeader(pick([[], 1, 'x', null, { a: 1 }, [{ dtype: 'F32' }]]), data)
        : Uint8Array.from({ length: int(64) }, () => int(256));
  }
}

// ------------------------------------------------------------------ the runs

let dir: string;
let rss0: number;
let heap0: number;

beforeAll(async () => {
  await initBackend('wasm');
  dir = await mkdtemp(join(tmpdir(), 'diffuse-fuzz-'));
  rss0 = process.memoryUsage().rss;
  heap0 = wasmHeapBytes();
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe(`fuzz (seed ${SEED})`, () => {
  it(`${FILES} mutated safetensors files through parseSafetensors, loadTensors, loadModel and loadModelFiles`, async () => {
    const files: { bytes: Uint8Array; config: ModelConfig }[] = [];
    for (const config of BASES) {
      const net = createModel(config, { seed: 1 });
      files.push({ bytes: (await saveModel(net)).weights, config: net.config });
      net.dispose();
    }
    let malformed = 0;
    for (let i = 0; i < FILES; i++) {
      const base = files[i % files.length]!;
      const bytes = mutateFile(base.bytes);
      const input = () => describeBytes(bytes);
      await probe('parseSafetensors', input, () => parseSafetensors(bytes));
      await probe('loadTensors', input, () => loadTensors(bytes));
      const r = await probe('loadModel({ weights })', input, () => loadModel({ weights: bytes }));
      if (r === 'rejected') malformed++;
      await probe('loadModel({ config, weights })', input, () =>
        loadModel({ config: base.config, weights: bytes }),
      );
      const path = join(dir, `f${i}`);
      await writeFile(`${path}.safetensors`, bytes);
      if (i % 2 === 0) await writeFile(`${path}.json`, JSON.stringify(base.config));
      await probe('loadModelFiles', input, () => loadModelFiles(path));
    }
    console.log(`files: ${malformed} of ${FILES} rejected by loadModel; ${fuzz.summary()}`);
    expect(fuzz.failures, fuzz.report()).toEqual([]);
    expect(malformed).toBeGreaterThanOrEqual(1000);
  });

  it(`${CONFIGS} mutated configs through validateModelConfig, modelParameterShapes, createModel, every network constructor and loadModel; ${SPECS} mixture specs and Ema options`, async () => {
    const files = new Map<ModelConfig, Uint8Array>();
    for (const config of BASES) {
      const net = createModel(config, { seed: 2 });
      files.set(config, (await saveModel(net)).weights);
      net.dispose();
    }
    const ctors = {
      mlp: Mlp,
      unet: UNet,
      classifier: NoiseConditionalClassifier,
      'image-classifier': ImageClassifier,
    } as const;
    let rejected = 0;
    for (let i = 0; i < CONFIGS; i++) {
      const base = BASES[i % BASES.length]!;
      const config = mutateConfig(base);
      const text = safeJson(config);
      const input = () => clip(text);
      const v = await probe('validateModelConfig', input, () => validateModelConfig(config));
      if (v === 'rejected') rejected++;
      await probe('modelParameterShapes', input, () => modelParameterShapes(config));
      const options = { seed: 1, maxParams: FUZZ_MAX_PARAMS };
      await probe('createModel', input, () => createModel(config as ModelConfig, options));
      const Ctor = ctors[base.kind];
      await probe(`new ${Ctor.name}`, input, () => new Ctor(config as never, options));
      const weights = files.get(base)!;
      await probe('loadModel({ config, weights })', input, () =>
        loadModel({ config: config as ModelConfig, weights }),
      );
    }
    // the other constructors: GaussianMixture specs and Ema options
    const spec = {
      weights: [0.25, 0.75],
      means: [
        [-1, 0],
        [1, 2],
      ],
      covs: [
        [
          [0.5, 0.1],
          [0.1, 0.5],
        ],
        [
          [1, 0],
          [0, 1],
        ],
      ],
      labels: [0, 1],
      numClasses: 2,
    };
    let rejectedSpecs = 0;
    const net = createModel(BASES[0]!);
    for (let i = 0; i < SPECS; i++) {
      const s = mutateSpec(spec);
      const text = safeJson(s);
      const input = () => clip(text);
      if (
        (await probe('new GaussianMixture', input, () => new GaussianMixture(s as never))) ===
        'rejected'
      )
        rejectedSpecs++;
      const options = pick([{ decay: pick(HOSTILE) }, { warmup: pick(HOSTILE) }, pick(HOSTILE)]);
      await probe(
        'new Ema',
        () => clip(safeJson(options)),
        () => new Ema(net.params, options as never),
      );
    }
    net.dispose();
    console.log(
      `configs: ${rejected} of ${CONFIGS} rejected by validateModelConfig, ${rejectedSpecs} of ${SPECS} mixture specs; ${fuzz.summary()}`,
    );
    expect(fuzz.failures, fuzz.report()).toEqual([]);
    expect(rejected).toBeGreaterThanOrEqual(500);
  });

  it(`${DIFFUSERS_FILES} mutated diffusers checkpoints and ${DIFFUSERS_CONFIGS} mutated diffusers configs through diffusersModelFromFiles, loadDiffusersModel, parseDiffusersConfig and createDiffusersModel`, async () => {
    const dirOf = (name: string) =>
      fileURLToPath(new URL(`../../../reference-data/diffusers-models/${name}/`, import.meta.url));
    const base = dirOf('unet2d-ddpm-tiny');
    const configText = await readFile(join(base, 'config.json'), 'utf8');
    const config = JSON.parse(configText) as Record<string, unknown>;
    const weights = new Uint8Array(
      await readFile(join(base, 'diffusion_pytorch_model.safetensors')),
    );
    let rejectedFiles = 0;
    for (let i = 0; i < DIFFUSERS_FILES; i++) {
      const bytes = mutateFile(weights);
      const input = () => describeBytes(bytes);
      const r = await probe('diffusersModelFromFiles (weights)', input, () =>
        diffusersModelFromFiles({ config: configText, weights: bytes }),
      );
      if (r === 'rejected') rejectedFiles++;
    }
    // and folders through the Node loader: a mutated checkpoint or a cut config.json
    for (let i = 0; i < DIFFUSERS_FOLDERS; i++) {
      const folder = join(dir, `diffusers-${i}`);
      await mkdir(folder);
      const bytes = i % 3 === 0 ? weights : mutateFile(weights);
      const text = i % 3 === 0 ? configText.slice(0, int(configText.length)) : configText;
      await writeFile(join(folder, 'config.json'), text);
      await writeFile(join(folder, 'diffusion_pytorch_model.safetensors'), bytes);
      const input = () => `config ${clip(text)}; weights ${describeBytes(bytes)}`;
      await probe('loadDiffusersModel', input, () => loadDiffusersModel(folder));
      await rm(folder, { recursive: true });
    }
    let rejectedConfigs = 0;
    for (let i = 0; i < DIFFUSERS_CONFIGS; i++) {
      const c = mutateDiffusersConfig(config);
      const text = safeJson(c);
      const input = () => clip(text);
      if (
        (await probe('parseDiffusersConfig', input, () => parseDiffusersConfig(c as object))) ===
        'rejected'
      )
        rejectedConfigs++;
      await probe('createDiffusersModel', input, () =>
        createDiffusersModel(parseDiffusersConfig(c as object), { maxParams: FUZZ_MAX_PARAMS }),
      );
      await probe('diffusersModelFromFiles (config)', input, () =>
        diffusersModelFromFiles({ config: c as object, weights }),
      );
    }
    console.log(
      `diffusers: ${rejectedFiles} of ${DIFFUSERS_FILES} files and ${rejectedConfigs} of ${DIFFUSERS_CONFIGS} configs rejected; ${fuzz.summary()}`,
    );
    expect(fuzz.failures, fuzz.report()).toEqual([]);
    expect(rejectedFiles).toBeGreaterThanOrEqual(DIFFUSERS_FILES * 0.8);
  });

  it('memory stayed bounded over the whole run', () => {
    const heapGrowth = wasmHeapBytes() - heap0;
    const rssGrowth = process.memoryUsage().rss - rss0;
    console.log(
      `wasm heap +${(heapGrowth / 1e6).toFixed(1)} MB, RSS +${(rssGrowth / 1e6).toFixed(1)} MB`,
    );
    // valid mutants build networks of at most FUZZ_MAX_PARAMS (1.2 MB); rejected calls allocate nothing
    expect(heapGrowth).toBeLessThan(16e6);
    expect(rssGrowth).toBeLessThan(400e6);
  });
});
