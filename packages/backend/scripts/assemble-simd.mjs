// WebAssembly text -> binary with wabt (SIMD enabled), validated. Shared by build-simd.mjs and the
// test that checks kernels.generated.ts is up to date.
import wabtInit from 'wabt';

/** @param {string} wat @returns {Promise<Uint8Array>} */
export async function assembleSimdKernels(wat) {
  const wabt = await wabtInit();
  const mod = wabt.parseWat('kernels.wat', wat, { simd: true });
  try {
    mod.validate();
    return Uint8Array.from(mod.toBinary({ log: false, write_debug_names: false }).buffer);
  } finally {
    mod.destroy();
  }
}
