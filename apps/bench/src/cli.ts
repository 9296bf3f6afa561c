/**
 * `pnpm bench`: the Diffuse benchmark app's command line.
 *
 * @example
 * pnpm bench                       # default suite (a few minutes on 2 cores)
 * pnpm bench --quick               # a short end-to-end run
 * pnpm bench --suites throughput,training --backends wasm --full
 */
import { resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { describeMachine, machineInfo } from './machine.js';
import {
  BROWSER_BACKENDS,
  NODE_BACKENDS,
  PlanError,
  type PlanOptions,
  resolvePlan,
  SUITES,
} from './plan.js';
import { createProgress } from './progress.js';
import { runBench, writeRun } from './run.js';

const list = (v: string) =>
  v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
const int = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`'${v}' is not an integer`);
  return n;
};
const ints = (v: string) => list(v).map(int);

export function buildProgram(): Command {
  return new Command('bench')
    .description(
      'Benchmarks Diffuse: sampler accuracy against exact Gaussian-mixture oracles, model throughput, training speed, ' +
        'and PyTorch CPU peers. Writes <out>/<timestamp>/ with results.json, REPORT.md and SVG plots.',
    )
    .option('--suites <list>', `comma-separated suites: ${SUITES.join(', ')}, or all`, list)
    .option(
      '--backends <list>',
      `comma-separated backends: ${NODE_BACKENDS.join(', ')} (Node), ${BROWSER_BACKENDS.join(', ')} (need --browser)`,
      list,
    )
    .option(
      '--browser',
      'also run throughput and training in headless Chromium (webgl, webgpu); not in the default run',
    )
    .addOption(
      new Option(
        '--quick',
        'a short end-to-end run: tiny sizes, NFE 5 and 10, 2 repeats',
      ).conflicts('full'),
    )
    .option(
      '--full',
      'full sizes: U-Net batch 64, MLP batch 4096 on every backend, 7 repeats, more NFE values',
    )
    .option('--repeats <n>', 'timed repeats per measurement (median reported)', int)
    .option('--warmup <n>', 'untimed warm-up calls before the repeats', int)
    .option(
      '--mlp-batch <n>',
      'MLP batch for forward passes and Adam steps (wasm and browser)',
      int,
    )
    .option(
      '--unet-batch <n>',
      'U-Net batch for forward passes and Adam steps (wasm and browser)',
      int,
    )
    .option('--cpu-mlp-batch <n>', 'MLP batch on the cpu backend', int)
    .option('--cpu-unet-batch <n>', 'U-Net batch on the cpu backend', int)
    .option('--steps <n>', 'steps of the sampling run in the throughput suite', int)
    .option('--nfe <list>', 'comma-separated NFE values for the accuracy suite (5 to 100)', ints)
    .option('--samples <n>', 'samples per accuracy run (distribution metrics)', int)
    .option('--samplers <list>', 'only these samplers in the accuracy suite', list)
    .option(
      '--cpu-unet-training',
      'also time the U-Net Adam step on the cpu backend (minutes per step)',
    )
    .option(
      '--no-transpose-fix',
      'skip timing wasm training without the backend transposed-matMul fix',
    )
    .option(
      '--no-simd-comparison',
      "skip timing wasm training without @diffuse/backend's own SIMD kernels",
    )
    .option(
      '--python <path>',
      'Python interpreter with torch for the peers suite (default: /usr/bin/python3, python3)',
    )
    .option(
      '--peer-repeats <n>',
      'timed calls per PyTorch thread setting (default 15 after 3 warm-up calls; --quick 3)',
      int,
    )
    .option('--seed <n>', 'seed of every random draw', int)
    .option(
      '--out <dir>',
      'where run folders go (default: bench-results/ in the directory pnpm was started from)',
    )
    .option('--no-progress', 'no progress bar')
    .addHelpText(
      'after',
      `
Default run (about 3 minutes on an idle 2-core machine): every suite on wasm, cpu, onnx, onnx-async and wasm-workers-2.
  accuracy    every registered sampler at NFE 5, 10, 20, 50, 100 on mixture A (2-D, refs) and a 16-D mixture,
              1024 samples: mean L2 to the exact ODE end points, sliced Wasserstein and MMD to the data; the
              k-diffusion and diffusers reference runs re-run beside their own errors.
  throughput  @diffuse/models Mlp (width 256, 2 residual blocks: 4 hidden layers of 256, SiLU) at batch 4096 and
              UNet (28x28, 32/64/128 channels) at batch 8 on wasm; batch 256 and 1 on cpu (25-35x slower);
              onnx: the same networks exported by @diffuse/onnx, run by onnxruntime-node on all cores through
              the Denoiser interface (worker round trip included); onnx-async: as an AsyncDenoiser on the
              main thread; n/a when onnxruntime-node is missing. wasm-workers-2: tfjs-wasm on 2 worker threads
              (ParallelDenoiser of @diffuse/train: a shard of each call's batch per thread) as an AsyncDenoiser.
              On wasm and onnx a 10-step dpmpp_2m run split into model time and the sampler's own time.
  training    one Adam step (@diffuse/train) at the same batches; on wasm the MLP also without the
              transposed-matMul fix; the U-Net on cpu only with --cpu-unet-training.
  peers       the same networks in PyTorch on CPU when python3 can import torch
              (apt-get install python3-torch libopenblas0-pthread), at every thread setting
              (torch threads 1, 2 x OPENBLAS_NUM_THREADS 1, 2); ratios ours / PyTorch's best.
  goals       (REPORT.md's first table) issue 9's goals from this run: sampling ms per model call <= PyTorch,
              Adam step <= 2x PyTorch, sampler overhead < 5% of the U-Net time per step; pass/fail/n/a.
Timings are medians of 5 repeats after 1 warm-up (PyTorch: 15 after 3, per thread setting). --full: U-Net batch 64 and MLP 4096 everywhere, 7 repeats.`,
    );
}

export async function main(argv = process.argv): Promise<number> {
  const program = buildProgram();
  program.parse(argv);
  const o = program.opts<PlanOptions & { out?: string; progress: boolean }>();
  let plan: ReturnType<typeof resolvePlan>;
  try {
    plan = resolvePlan(o);
  } catch (e) {
    if (e instanceof PlanError) program.error(`error: ${e.message}`);
    throw e;
  }
  const outRoot = resolve(o.out ?? resolve(process.env.INIT_CWD ?? process.cwd(), 'bench-results'));
  console.log(
    `Diffuse bench (${plan.preset}): suites ${plan.suites.join(', ')}; backends ${[...plan.backends, ...plan.browserBackends].join(', ')}`,
  );
  console.log(`machine: ${describeMachine(machineInfo())}`);
  // tfjs-backend-cpu advertises tfjs-node on its first use; that package is not what is measured here.
  const warn = console.warn;
  console.warn = (...a: unknown[]) => {
    if (!String(a[0]).includes('looks like you are running TensorFlow.js in Node')) warn(...a);
  };
  const progress = createProgress(o.progress !== false);
  const results = await runBench(plan, progress, argv.slice(2));
  progress.stop();
  for (const b of results.backends) {
    console.log(
      b.available
        ? `backend ${b.name} (${b.environment}): ${b.simd === undefined ? '' : `SIMD ${b.simd ? 'on' : 'off'}, `}${b.threads} thread(s)${b.simdKernels ? ', Diffuse SIMD kernels' : ''}`
        : `backend ${b.name} (${b.environment}): unavailable: ${b.reason}`,
    );
  }
  const { dir, files } = writeRun(results, outRoot);
  console.log(`\nwrote ${dir}/ (${files.join(', ')})`);
  for (const [name, s] of Object.entries(results.suites)) {
    console.log(`  ${name}: ${s.status}${s.notes.length ? `: ${s.notes.join('; ')}` : ''}`);
  }
  return 0;
}

// Run when executed (not when imported by tests).
const entry = process.argv[1] ?? '';
if (/cli\.(js|ts)$/.test(entry)) {
  main().then(
    (code) => process.exit(code),
    (e) => {
      console.error(e instanceof Error ? e.message : e);
      process.exit(1);
    },
  );
}
