import { spawn } from 'node:child_process';
import { appendFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LedgerError } from '../ledger.error.js';
import { EmbeddedLedger } from './embedded-ledger.js';

const identity = { mspId: 'Org1MSP', id: 'x509::/CN=admin::/CN=ca' };
const register = (l: EmbeddedLedger, id: string) =>
  l.submit({
    contract: 'identity',
    fn: 'register',
    args: [JSON.stringify({ id, kind: 'device', org: 'Org1MSP', role: 'monitor' })],
  });

describe('EmbeddedLedger persistence', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ledger-persist-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps committed state and events across reopen', async () => {
    const a = await EmbeddedLedger.open({ dir, identity });
    const r = await register(a, 'dev-1');
    await register(a, 'dev-2');
    await a.close();
    const b = await EmbeddedLedger.open({ dir, identity });
    try {
      expect(
        JSON.parse(await b.evaluate({ contract: 'identity', fn: 'get', args: ['dev-1'] })),
      ).toMatchObject({ id: 'dev-1', status: 'active' });
      expect(b.height).toBe(3n);
      const it = b.events({ startBlock: 0n })[Symbol.asyncIterator]();
      const first = await it.next();
      expect(first.value).toMatchObject({
        transactionId: r.transactionId,
        blockNumber: r.blockNumber,
        name: 'IdentityRegistered',
      });
      await it.return?.();
    } finally {
      await b.close();
    }
  });

  it('refuses a second writer on the same folder', async () => {
    const a = await EmbeddedLedger.open({ dir, identity });
    try {
      await expect(EmbeddedLedger.open({ dir, identity })).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    } finally {
      await a.close();
    }
  });

  describe('tamper detection on open', () => {
    async function chainWithBlocks(): Promise<string[]> {
      const a = await EmbeddedLedger.open({ dir, identity });
      for (const id of ['dev-1', 'dev-2', 'dev-3']) await register(a, id);
      await a.close();
      return (await readFile(join(dir, 'blocks.jsonl'), 'utf8')).trimEnd().split('\n');
    }
    const expectTampered = async (): Promise<void> => {
      const e = await EmbeddedLedger.open({ dir, identity }).catch((err: unknown) => err);
      expect(e).toBeInstanceOf(LedgerError);
      expect((e as LedgerError).code).toBe('TAMPERED');
    };

    it('detects an edited write value', async () => {
      const lines = await chainWithBlocks();
      const b = JSON.parse(lines[2]!) as { txs: { writes: { value: string }[] }[] };
      b.txs[0]!.writes[0]!.value = Buffer.from(
        '{"id":"dev-2","kind":"gateway","org":"Org1MSP","role":"x","status":"active"}',
      ).toString('base64');
      lines[2] = JSON.stringify(b);
      await writeFile(join(dir, 'blocks.jsonl'), `${lines.join('\n')}\n`);
      await expectTampered();
    });

    it('detects a removed block', async () => {
      const lines = await chainWithBlocks();
      lines.splice(2, 1);
      await writeFile(join(dir, 'blocks.jsonl'), `${lines.join('\n')}\n`);
      await expectTampered();
    });

    it('detects re-hashed blocks not signed by the node key', async () => {
      const lines = await chainWithBlocks();
      const b = JSON.parse(lines[3]!) as { hash: string; signature: string };
      b.signature = Buffer.alloc(64).toString('base64');
      lines[3] = JSON.stringify(b);
      await writeFile(join(dir, 'blocks.jsonl'), `${lines.join('\n')}\n`);
      await expectTampered();
    });

    it('detects a replaced node key', async () => {
      await chainWithBlocks();
      await rm(join(dir, 'node-key.pem'));
      await expectTampered();
    });
  });

  it('drops a torn, never-acknowledged last line and keeps every committed transaction', async () => {
    const a = await EmbeddedLedger.open({ dir, identity });
    await register(a, 'dev-1');
    await a.close();
    await appendFile(join(dir, 'blocks.jsonl'), '{"header":{"number":2,"prevHash":"ab');
    const b = await EmbeddedLedger.open({ dir, identity });
    try {
      expect(b.height).toBe(2n);
      await register(b, 'dev-2');
      expect(b.height).toBe(3n);
    } finally {
      await b.close();
    }
    const c = await EmbeddedLedger.open({ dir, identity });
    await c.close();
  });

  it('survives SIGKILL mid-write: chain intact, no acknowledged transaction lost', async () => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(import.meta.dirname, 'crash-writer.fixture.ts'), dir],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const acked: string[] = [];
    let buf = '';
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        buf += d.toString();
        const lines = buf.split('\n');
        buf = lines.pop() ?? '';
        for (const l of lines) if (l.startsWith('ACK ')) acked.push(l.split(' ')[1]!);
        // Kill at a moment that varies with scheduling, well into the run.
        if (acked.length >= 40 + Math.floor(Math.random() * 20)) {
          child.kill('SIGKILL');
          resolve();
        }
      });
      child.on('exit', (code) =>
        code === null ? resolve() : reject(new Error(`child exited ${code}: ${stderr}`)),
      );
    });
    await new Promise((r) => child.once('close', r));
    expect(acked.length).toBeGreaterThanOrEqual(40);

    const reopened = await EmbeddedLedger.open({ dir, identity });
    try {
      for (const id of acked) {
        expect(
          JSON.parse(await reopened.evaluate({ contract: 'identity', fn: 'get', args: [id] })),
        ).toMatchObject({ id });
      }
      await register(reopened, 'after-crash');
    } finally {
      await reopened.close();
    }
  }, 60_000);
});
