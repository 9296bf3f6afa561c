import type { Server } from 'node:http';

/**
 * Serves `root` on 127.0.0.1 at a random free port (directories as their `index.html`; paths outside
 * it 403, missing files 404), with `headers` added to every file response. `requests` records every
 * path asked for, in order.
 */
export declare function serveStatic(
  root: string,
  options?: { headers?: Record<string, string> },
): Promise<{ url: string; server: Server; requests: string[] }>;
