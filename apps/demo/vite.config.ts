import { defineConfig } from 'vite';

// Static, offline build: relative asset URLs (the page works from any folder or file server),
// the tfjs wasm binaries and the committed model weights are bundled as assets by `?url` imports.
export default defineConfig({
  base: './',
  build: {
    target: 'es2022',
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 4096,
  },
  server: { host: '127.0.0.1' },
  preview: { host: '127.0.0.1' },
});
