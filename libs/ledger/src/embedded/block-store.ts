import {
  createHash,
  generateKeyPairSync,
  sign,
  verify,
  createPrivateKey,
  createPublicKey,
  type KeyObject,
} from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, open, readFile, writeFile, truncate, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { canonicalJson } from '../canonical-json.js';
import { LedgerError } from '../ledger.error.js';

export interface StoredWrite {
  key: string;
  /** Base64 value; null for a delete. */
  value: string | null;
}

export interface StoredTx {
  txId: string;
  contract: string;
  fn: string;
  args: string[];
  creator: { mspId: string; id: string };
  timestamp: { seconds: number; nanos: number };
  writes: StoredWrite[];
  event?: { name: string; payload: string };
}

export interface BlockHeader {
  number: number;
  prevHash: string;
  /** SHA-256 of the canonical JSON of the transactions. */
  dataHash: string;
  /** Genesis only: the node's Ed25519 public key (SPKI PEM) every later block is signed with. */
  nodePublicKey?: string;
}

export interface StoredBlock {
  header: BlockHeader;
  txs: StoredTx[];
  /** SHA-256 of the canonical header, hex. */
  hash: string;
  /** Ed25519 signature of `hash` by the node key, base64. */
  signature: string;
}

const sha256 = (s: string): string => createHash('sha256').update(s, 'utf8').digest('hex');
const ZERO = '0'.repeat(64);

/**
 * Append-only file of blocks, one canonical JSON line each, hash-linked and signed by the node
 * key. A block is acknowledged only after its whole line is written and fsync'ed, so a crash can
 * leave at most one torn last line (never acknowledged), which open() drops. Anything else that
 * fails verification on open is tampering and is refused.
 */
export class BlockStore {
  private constructor(
    private readonly file: FileHandle,
    private readonly nodeKey: KeyObject,
    private readonly nodePublicKey: KeyObject,
    private lastHash: string,
    private height: number,
  ) {}

  static async open(
    dir: string,
    pinnedPublicKeyPem?: string,
  ): Promise<{ store: BlockStore; blocks: StoredBlock[]; droppedTornBytes: number }> {
    await mkdir(dir, { recursive: true });
    const keyPath = join(dir, 'node-key.pem');
    const chainPath = join(dir, 'blocks.jsonl');
    if (!existsSync(keyPath)) {
      if (existsSync(chainPath))
        throw new LedgerError('TAMPERED', `node key missing for existing chain in ${dir}`);
      const { privateKey } = generateKeyPairSync('ed25519');
      await writeFile(keyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }), {
        mode: 0o600,
        flag: 'wx',
      });
    }
    const nodeKey = createPrivateKey(await readFile(keyPath, 'utf8'));
    const nodePublicKey = createPublicKey(nodeKey);
    const pubPem = nodePublicKey.export({ type: 'spki', format: 'pem' }).toString();

    const raw = existsSync(chainPath) ? await readFile(chainPath, 'utf8') : '';
    const lastNl = raw.lastIndexOf('\n');
    const complete = lastNl < 0 ? '' : raw.slice(0, lastNl);
    const droppedTornBytes =
      Buffer.byteLength(raw) - (lastNl < 0 ? 0 : Buffer.byteLength(raw.slice(0, lastNl + 1)));
    if (droppedTornBytes > 0) await truncate(chainPath, Buffer.byteLength(raw) - droppedTornBytes);

    const blocks = complete === '' ? [] : complete.split('\n').map((line, i) => parseLine(line, i));
    const trusted = createPublicKey(pinnedPublicKeyPem ?? blocks[0]?.header.nodePublicKey ?? pubPem);
    verifyChain(blocks, trusted);
    if (trusted.export({ type: 'spki', format: 'pem' }).toString() !== pubPem) {
      throw new LedgerError('TAMPERED', 'the node key does not match the key the chain was signed with');
    }

    const file = await open(chainPath, 'a');
    const store = new BlockStore(file, nodeKey, nodePublicKey, blocks.at(-1)?.hash ?? ZERO, blocks.length);
    if (blocks.length === 0) {
      const genesis = store.seal(
        { number: 0, prevHash: ZERO, dataHash: sha256(canonicalJson([])), nodePublicKey: pubPem },
        [],
      );
      await store.write(genesis);
      blocks.push(genesis);
    }
    return { store, blocks, droppedTornBytes };
  }

  get nextNumber(): number {
    return this.height;
  }

  /** Seals and durably appends a block of transactions. */
  async append(txs: StoredTx[]): Promise<StoredBlock> {
    const block = this.seal(
      { number: this.height, prevHash: this.lastHash, dataHash: sha256(canonicalJson(txs)) },
      txs,
    );
    await this.write(block);
    return block;
  }

  async close(): Promise<void> {
    await this.file.close();
  }

  private seal(header: BlockHeader, txs: StoredTx[]): StoredBlock {
    const hash = sha256(canonicalJson(header));
    const signature = sign(null, Buffer.from(hash, 'hex'), this.nodeKey).toString('base64');
    return { header, txs, hash, signature };
  }

  private async write(block: StoredBlock): Promise<void> {
    // One write call for the whole line, then fdatasync: the acknowledgement point.
    await this.file.write(`${canonicalJson(block)}\n`);
    await this.file.datasync();
    this.lastHash = block.hash;
    this.height = block.header.number + 1;
  }

  publicKeyPem(): string {
    return this.nodePublicKey.export({ type: 'spki', format: 'pem' }).toString();
  }
}

function parseLine(line: string, i: number): StoredBlock {
  try {
    return JSON.parse(line) as StoredBlock;
  } catch {
    throw new LedgerError('TAMPERED', `block line ${i} is not valid JSON`);
  }
}

function verifyChain(blocks: StoredBlock[], trusted: KeyObject): void {
  let prev = ZERO;
  blocks.forEach((b, i) => {
    const fail = (why: string): never => {
      throw new LedgerError('TAMPERED', `block ${i}: ${why}`);
    };
    if (!b || typeof b !== 'object' || !b.header || !Array.isArray(b.txs)) fail('malformed');
    if (b.header.number !== i) fail(`number ${b.header.number} out of sequence`);
    if (b.header.prevHash !== prev) fail('previous-hash link broken');
    if (b.header.dataHash !== sha256(canonicalJson(b.txs))) fail('transactions do not match the data hash');
    if (b.hash !== sha256(canonicalJson(b.header))) fail('header hash mismatch');
    if (i > 0 && b.header.nodePublicKey !== undefined) fail('unexpected key in a non-genesis block');
    let ok: boolean;
    try {
      ok = verify(null, Buffer.from(b.hash, 'hex'), trusted, Buffer.from(b.signature, 'base64'));
    } catch {
      ok = false;
    }
    if (!ok) fail('signature does not verify with the node key');
    prev = b.hash;
  });
}
