/**
 * Where checkpoints live. A store writes whole files atomically: after `write(name, bytes)` returns,
 * `read(name)` gives exactly `bytes`, and if the process dies during `write`, `read(name)` still
 * gives the previous content (or null if there was none).
 */
import { CheckpointError } from './errors.js';

/** A flat set of named files with atomic whole-file writes. */
export interface CheckpointStore {
  /** Writes `bytes` to `name`, atomically. */
  write(name: string, bytes: Uint8Array): Promise<void>;
  /** The bytes of `name`, or null when there is no such file. */
  read(name: string): Promise<Uint8Array | null>;
  /** Removes `name` (no error when absent). */
  remove(name: string): Promise<void>;
  /** Names of the files in the store. */
  list(): Promise<string[]>;
}

function checkName(name: string): void {
  if (!/^[A-Za-z0-9._-]+$/.test(name) || name.startsWith('.')) {
    throw new CheckpointError(
      `checkpoint file name '${name}' must be letters, digits, '.', '_' or '-'`,
    );
  }
}

/**
 * Checkpoints in memory (browser apps, tests). Copies bytes in and out.
 *
 * @example
 * const store = new MemoryCheckpointStore();
 * const trainer = new Trainer({ ..., checkpoint: { store, every: 100 } });
 */
export class MemoryCheckpointStore implements CheckpointStore {
  private readonly files = new Map<string, Uint8Array>();
  async write(name: string, bytes: Uint8Array): Promise<void> {
    checkName(name);
    this.files.set(name, bytes.slice());
  }
  async read(name: string): Promise<Uint8Array | null> {
    const b = this.files.get(name);
    return b === undefined ? null : b.slice();
  }
  async remove(name: string): Promise<void> {
    this.files.delete(name);
  }
  async list(): Promise<string[]> {
    return [...this.files.keys()];
  }
}

/** The few `node:fs/promises` calls the file store makes (injectable, to simulate crashes in tests). */
export interface FileSystem {
  open(
    path: string,
    flags: string,
  ): Promise<{
    write(b: Uint8Array): Promise<unknown>;
    sync(): Promise<void>;
    close(): Promise<void>;
  }>;
  rename(from: string, to: string): Promise<void>;
  readFile(path: string): Promise<Uint8Array>;
  unlink(path: string): Promise<void>;
  readdir(path: string): Promise<string[]>;
  mkdir(path: string, options: { recursive: true }): Promise<unknown>;
}

const TMP_SUFFIX = '.tmp';

/**
 * Checkpoints in a directory (Node). Each write goes to `<name>.<random>.tmp`, is flushed to disk
 * (fsync), then renamed over `<name>` (atomic on POSIX file systems), and the directory is fsynced so
 * the rename itself survives a power cut. A crash at any point leaves the old `<name>` intact;
 * leftover `.tmp` files are ignored by `list()` and removed by the next successful write. One
 * process writes to a directory at a time.
 *
 * @example
 * const store = await FileCheckpointStore.open('runs/moons');
 * await store.write('notes.txt', new TextEncoder().encode('hello'));
 */
export class FileCheckpointStore implements CheckpointStore {
  readonly dir: string;
  private readonly fs: FileSystem;

  private constructor(dir: string, fs: FileSystem) {
    this.dir = dir;
    this.fs = fs;
  }

  /** Opens (creating if needed) a checkpoint directory. `fs` defaults to `node:fs/promises`. */
  static async open(dir: string, fs?: FileSystem): Promise<FileCheckpointStore> {
    let impl = fs;
    if (impl === undefined) {
      // Inside try: bundlers (esbuild --platform=browser) then leave this Node-only import alone.
      try {
        impl = (await import('node:fs/promises')) as unknown as FileSystem;
      } catch (e) {
        throw new CheckpointError(
          `FileCheckpointStore needs node:fs/promises here; pass a \`fs\` implementation (or use MemoryCheckpointStore)`,
          { cause: e },
        );
      }
    }
    await impl.mkdir(dir, { recursive: true });
    return new FileCheckpointStore(dir, impl);
  }

  private path(name: string): string {
    return `${this.dir.replace(/\/+$/, '')}/${name}`;
  }

  private async syncDir(): Promise<void> {
    // fsync on a directory works on Linux and macOS; Windows cannot open directories (rename there is
    // already durable enough), so a failure here is not an error.
    try {
      const h = await this.fs.open(this.dir, 'r');
      try {
        await h.sync();
      } finally {
        await h.close();
      }
    } catch {
      /* see above */
    }
  }

  async write(name: string, bytes: Uint8Array): Promise<void> {
    checkName(name);
    const tmp = this.path(`${name}.${Math.random().toString(36).slice(2, 10)}${TMP_SUFFIX}`);
    const h = await this.fs.open(tmp, 'w');
    try {
      await h.write(bytes);
      await h.sync();
    } finally {
      await h.close();
    }
    await this.fs.rename(tmp, this.path(name));
    await this.syncDir();
    // clean leftovers of earlier crashed writes (a checkpoint directory has one writer)
    for (const f of await this.fs.readdir(this.dir)) {
      if (f.endsWith(TMP_SUFFIX)) await this.fs.unlink(this.path(f)).catch(() => {});
    }
  }

  async read(name: string): Promise<Uint8Array | null> {
    checkName(name);
    try {
      const b = await this.fs.readFile(this.path(name));
      return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    } catch (e) {
      if ((e as { code?: string }).code === 'ENOENT') return null;
      throw new CheckpointError(`could not read ${this.path(name)}: ${(e as Error).message}`, {
        cause: e,
      });
    }
  }

  async remove(name: string): Promise<void> {
    checkName(name);
    await this.fs.unlink(this.path(name)).catch((e: { code?: string }) => {
      if (e.code !== 'ENOENT') throw e;
    });
  }

  async list(): Promise<string[]> {
    return (await this.fs.readdir(this.dir)).filter((f) => !f.endsWith(TMP_SUFFIX));
  }
}
