import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { AsyncQueue } from '../async-queue.js';
import { LedgerError } from '../ledger.error.js';
import type {
  EventStreamOptions,
  Ledger,
  LedgerCall,
  LedgerEvent,
  LedgerEventStream,
  SubmitResult,
} from '../ledger.port.js';
import { BlockStore, type StoredBlock, type StoredTx } from './block-store.js';
import { ContractRunner } from './contract-runner.js';
import { EmbeddedStub } from './embedded-stub.js';
import { MemoryState, OverlayState } from './world-state.js';

/** Who is calling: the embedded equivalent of a Fabric X.509 identity (MSP id + certificate id). */
export interface EmbeddedIdentity {
  mspId: string;
  /** Same shape as Fabric's ClientIdentity.getID(), e.g. `x509::/CN=gateway::/CN=ca.org1`. */
  id: string;
}

export interface EmbeddedLedgerOptions {
  /** Folder holding `blocks.jsonl` and `node-key.pem`. */
  dir: string;
  identity: EmbeddedIdentity;
  /** Pin the node public key (SPKI PEM) so a replaced key file is detected as tampering too. */
  nodePublicKeyPem?: string;
  /** Most transactions sealed in one block (group commit). */
  maxBlockTransactions?: number;
  defaultTimeoutMs?: number;
}

interface Pending {
  call: LedgerCall;
  identity: EmbeddedIdentity;
  resolve: (r: SubmitResult) => void;
  reject: (e: unknown) => void;
}

const openDirs = new Set<string>();

/**
 * The chain behind one or more EmbeddedLedger views: verified on open, replayed into memory,
 * then extended by group commit (transactions that arrive while a block is being fsync'ed are
 * executed serially and sealed into the next block).
 */
class EmbeddedChain {
  readonly state = new MemoryState();
  readonly blockEvents: LedgerEvent[][] = [];
  readonly runner = new ContractRunner();
  private readonly subscribers = new Set<{ from: bigint; queue: AsyncQueue<LedgerEvent> }>();
  private pending: Pending[] = [];
  private writing = false;
  private failed: LedgerError | undefined;
  closed = false;

  constructor(
    readonly dir: string,
    private readonly store: BlockStore,
    blocks: StoredBlock[],
    private readonly maxBlockTxs: number,
  ) {
    for (const b of blocks) this.index(b);
  }

  get height(): number {
    return this.blockEvents.length;
  }

  enqueue(p: Pending): void {
    if (this.closed || this.failed) {
      p.reject(this.failed ?? new LedgerError('UNAVAILABLE', 'embedded ledger is closed'));
      return;
    }
    this.pending.push(p);
    void this.pump();
  }

  private async pump(): Promise<void> {
    if (this.writing) return;
    this.writing = true;
    try {
      while (this.pending.length > 0 && !this.failed) {
        const batch = this.pending.splice(0, this.maxBlockTxs);
        const overlay = new OverlayState(this.state);
        const included: { p: Pending; tx: StoredTx; result: string }[] = [];
        for (const p of batch) {
          const txId = randomBytes(32).toString('hex');
          const now = Date.now();
          const timestamp = { seconds: Math.floor(now / 1000), nanos: (now % 1000) * 1_000_000 };
          const stub = new EmbeddedStub(overlay, txId, timestamp);
          try {
            const result = await this.runner.run(
              p.call.contract,
              p.call.fn,
              p.call.args ?? [],
              stub,
              p.identity,
            );
            for (const [k, v] of stub.writes) overlay.stage(k, v, txId, timestamp);
            const tx: StoredTx = {
              txId,
              contract: p.call.contract,
              fn: p.call.fn,
              args: [...(p.call.args ?? [])],
              creator: { ...p.identity },
              timestamp,
              writes: stub.storedWrites(),
              ...(stub.event ? { event: stub.event } : {}),
            };
            included.push({ p, tx, result });
          } catch (e) {
            p.reject(e);
          }
        }
        if (included.length === 0) continue;
        let block: StoredBlock;
        try {
          block = await this.store.append(included.map((i) => i.tx));
        } catch (e) {
          // Like a database after a failed fsync, stop: the on-disk state is unknown until reopened.
          this.failed = new LedgerError('UNAVAILABLE', 'embedded ledger write failed; reopen it', {
            cause: e,
          });
          for (const i of included) i.p.reject(this.failed);
          for (const p of this.pending.splice(0)) p.reject(this.failed);
          return;
        }
        this.index(block);
        for (const i of included)
          i.p.resolve({
            transactionId: i.tx.txId,
            blockNumber: BigInt(block.header.number),
            result: i.result,
          });
        this.publish(block.header.number);
      }
    } finally {
      this.writing = false;
    }
  }

  private index(block: StoredBlock): void {
    for (const tx of block.txs) {
      for (const w of tx.writes)
        this.state.apply(
          w.key,
          w.value === null ? null : Buffer.from(w.value, 'base64'),
          tx.txId,
          tx.timestamp,
        );
    }
    const events: LedgerEvent[] = [];
    for (const tx of block.txs) {
      if (tx.event)
        events.push({
          blockNumber: BigInt(block.header.number),
          transactionId: tx.txId,
          name: tx.event.name,
          payload: tx.event.payload,
        });
    }
    this.blockEvents[block.header.number] = events;
  }

  private publish(n: number): void {
    for (const s of this.subscribers) {
      if (BigInt(n) >= s.from) for (const e of this.blockEvents[n] ?? []) s.queue.push(e);
    }
  }

  subscribe(options: EventStreamOptions): LedgerEventStream {
    const cp = options.checkpoint;
    const from = cp?.blockNumber ?? options.startBlock ?? BigInt(this.height);
    const sub = { from, queue: new AsyncQueue<LedgerEvent>(() => this.subscribers.delete(sub)) };
    // Replay and registration happen in one synchronous step, so no block can slip between them.
    let skipping = cp?.transactionId !== undefined;
    for (let n = Number(from); n < this.height; n++) {
      for (const e of this.blockEvents[n] ?? []) {
        if (skipping && e.blockNumber === cp?.blockNumber) {
          if (e.transactionId === cp.transactionId) skipping = false;
          continue;
        }
        sub.queue.push(e);
      }
    }
    if (this.closed) sub.queue.end();
    else this.subscribers.add(sub);
    const queue = sub.queue;
    return {
      [Symbol.asyncIterator]: () => queue,
      close: () => void queue.return(),
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.writing) await new Promise((r) => setTimeout(r, 1));
    for (const s of this.subscribers) s.queue.end();
    this.subscribers.clear();
    await this.store.close();
    await rm(join(this.dir, 'LOCK'), { force: true });
    openDirs.delete(this.dir);
  }
}

/**
 * In-process ledger: persisted, hash-linked blocks signed by the node key, running the same
 * contract classes as the Fabric chaincode with an equivalent deterministic context. The default
 * for a laptop or a single hospital (ARCHITECTURE.md, Ledger).
 */
export class EmbeddedLedger implements Ledger {
  private constructor(
    private readonly chain: EmbeddedChain,
    readonly identity: EmbeddedIdentity,
    private readonly owner: boolean,
    private readonly defaultTimeoutMs: number,
  ) {}

  static async open(options: EmbeddedLedgerOptions): Promise<EmbeddedLedger> {
    const dir = resolve(options.dir);
    if (openDirs.has(dir))
      throw new LedgerError('UNAVAILABLE', `embedded ledger ${dir} is already open in this process`);
    await acquireLock(dir);
    openDirs.add(dir);
    try {
      const { store, blocks } = await BlockStore.open(dir, options.nodePublicKeyPem);
      const chain = new EmbeddedChain(dir, store, blocks, options.maxBlockTransactions ?? 256);
      return new EmbeddedLedger(chain, options.identity, true, options.defaultTimeoutMs ?? 30_000);
    } catch (e) {
      openDirs.delete(dir);
      await rm(join(dir, 'LOCK'), { force: true });
      throw e;
    }
  }

  /** Another caller identity on the same chain (closing the view does not close the chain). */
  as(identity: EmbeddedIdentity): EmbeddedLedger {
    return new EmbeddedLedger(this.chain, identity, false, this.defaultTimeoutMs);
  }

  /** Number of blocks, genesis included. */
  get height(): bigint {
    return BigInt(this.chain.height);
  }

  submit(call: LedgerCall): Promise<SubmitResult> {
    const work = new Promise<SubmitResult>((res, rej) =>
      this.chain.enqueue({ call, identity: this.identity, resolve: res, reject: rej }),
    );
    return withDeadline(work, call.timeoutMs ?? this.defaultTimeoutMs, `submit ${call.contract}:${call.fn}`);
  }

  async evaluate(call: LedgerCall): Promise<string> {
    if (this.chain.closed) throw new LedgerError('UNAVAILABLE', 'embedded ledger is closed');
    // Reads committed state only; writes the function makes are discarded, as Fabric does for evaluate.
    const stub = new EmbeddedStub(this.chain.state, `eval-${randomBytes(8).toString('hex')}`, nowTimestamp());
    return withDeadline(
      this.chain.runner.run(call.contract, call.fn, call.args ?? [], stub, this.identity),
      call.timeoutMs ?? this.defaultTimeoutMs,
      'evaluate',
    );
  }

  events(options: EventStreamOptions = {}): LedgerEventStream {
    return this.chain.subscribe(options);
  }

  async close(): Promise<void> {
    if (this.owner) await this.chain.close();
  }
}

function nowTimestamp(): { seconds: number; nanos: number } {
  const now = Date.now();
  return { seconds: Math.floor(now / 1000), nanos: (now % 1000) * 1_000_000 };
}

function withDeadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, rej) => {
    timer = setTimeout(() => rej(new LedgerError('TIMEOUT', `${what} exceeded its ${ms} ms deadline`)), ms);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

/** One writer per data folder: a LOCK file with the owner's pid; a dead owner's lock is taken over. */
async function acquireLock(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const lock = join(dir, 'LOCK');
  if (existsSync(lock)) {
    const pid = Number((await readFile(lock, 'utf8')).trim());
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
      throw new LedgerError('UNAVAILABLE', `embedded ledger ${dir} is in use by process ${pid}`);
    }
  }
  await writeFile(lock, String(process.pid));
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
