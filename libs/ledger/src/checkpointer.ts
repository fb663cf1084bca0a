import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Checkpoint, LedgerEvent } from './ledger.port.js';

/** Remembers the last event a consumer finished with, so a restarted stream neither loses nor repeats events. */
export interface Checkpointer {
  current(): Checkpoint | undefined;
  /** Call after the event has been fully processed. */
  checkpointEvent(event: LedgerEvent): Promise<void>;
}

export class InMemoryCheckpointer implements Checkpointer {
  private cp: Checkpoint | undefined;
  constructor(initial?: Checkpoint) {
    this.cp = initial;
  }
  current(): Checkpoint | undefined {
    return this.cp;
  }
  checkpointEvent(event: LedgerEvent): Promise<void> {
    this.cp = { blockNumber: event.blockNumber, transactionId: event.transactionId };
    return Promise.resolve();
  }
}

interface StoredCheckpoint {
  blockNumber: string;
  transactionId?: string;
}

/** Durable checkpoint: write to a temp file, fsync, then rename over the old one (atomic on POSIX). */
export class FileCheckpointer implements Checkpointer {
  private cp: Checkpoint | undefined;
  private constructor(private readonly path: string) {}

  static async open(path: string): Promise<FileCheckpointer> {
    const c = new FileCheckpointer(path);
    try {
      const raw = JSON.parse(await readFile(path, 'utf8')) as StoredCheckpoint;
      c.cp = {
        blockNumber: BigInt(raw.blockNumber),
        ...(raw.transactionId ? { transactionId: raw.transactionId } : {}),
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    return c;
  }

  current(): Checkpoint | undefined {
    return this.cp;
  }

  async checkpointEvent(event: LedgerEvent): Promise<void> {
    const next: StoredCheckpoint = {
      blockNumber: event.blockNumber.toString(),
      transactionId: event.transactionId,
    };
    await mkdir(dirname(this.path), { recursive: true });
    const tmp = `${this.path}.tmp`;
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(JSON.stringify(next));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, this.path);
    this.cp = { blockNumber: event.blockNumber, transactionId: event.transactionId };
  }
}
