// Debian's chromium and the launch flags proven to work headless on this project's machines
// (Debian 12, Chromium 156, 2 cores): software WebGL through SwiftShader, WebGPU's fallback
// adapter, and no background network traffic (the machines reach only the package registries).
// One list for every browser test and the bench's --browser runs.

/** Where Debian's `chromium` package installs the browser; `CHROMIUM_PATH` overrides it. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Launch flags for `chromium.launchPersistentContext(freshTmpDir, { args })`. */
export const CHROMIUM_ARGS = Object.freeze([
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-angle=swiftshader',
  '--enable-unsafe-swiftshader',
  '--enable-unsafe-webgpu',
]);
