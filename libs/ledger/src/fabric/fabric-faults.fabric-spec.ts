import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InMemoryCheckpointer } from '../checkpointer.js';
import { LedgerError } from '../ledger.error.js';
import type { LedgerEvent } from '../ledger.port.js';
import type { FabricLedger } from './fabric-ledger.js';
import { connectAs, node } from './fabric-test-network.js';

/** Registers a device identity: the cheapest transaction that emits an event. */
const register = (l: FabricLedger, id: string, timeoutMs?: number) =>
  l.submit({
    contract: 'identity',
    fn: 'register',
    args: [JSON.stringify({ id, kind: 'device', org: 'Org1MSP', role: 'monitor' })],
    ...(timeoutMs ? { timeoutMs } : {}),
  });

async function until<T>(what: string, ms: number, attempt: () => Promise<T>): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      return await attempt();
    } catch (e) {
      if (Date.now() > end) throw new Error(`${what} did not succeed within ${ms} ms`, { cause: e });
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

describe('FabricLedger faults (local network)', () => {
  let submitter: FabricLedger;
  let listener: FabricLedger;
  const run = `f${randomUUID().slice(0, 8)}`;

  beforeAll(async () => {
    submitter = await connectAs('org1', 'org1');
    listener = await connectAs('org2', 'org2', { reconnectDelayMs: 250 });
  });
  afterAll(async () => {
    // Leave the network whole for whatever runs next, even after a failure.
    await node('start', 'orderer');
    await node('start', 'peer0.org2');
    await Promise.all([submitter?.close(), listener?.close()]);
  });

  it('peer stopped mid-stream and restarted: the stream resumes and delivers every event exactly once', async () => {
    const first = await register(submitter, `${run}-p-0`);
    const stream = listener.events({ startBlock: first.blockNumber });
    const checkpointer = new InMemoryCheckpointer();
    const seen: LedgerEvent[] = [];
    const mine = (e: LedgerEvent) => e.payload.includes(`"${run}-p-`);
    const consume = (async () => {
      for await (const e of stream) {
        if (!mine(e)) continue;
        seen.push(e);
        await checkpointer.checkpointEvent(e);
        if (seen.length === 7) break;
      }
    })();

    const expected = [first.transactionId];
    for (let i = 1; i <= 3; i++) expected.push((await register(submitter, `${run}-p-${i}`)).transactionId);
    await until('first events', 20_000, () =>
      seen.length >= 4 ? Promise.resolve() : Promise.reject(new Error(`${seen.length} events`)),
    );

    // Two more commits, then the listener's peer goes down before it can surely deliver them.
    for (let i = 4; i <= 5; i++) expected.push((await register(submitter, `${run}-p-${i}`)).transactionId);
    await node('stop', 'peer0.org2');
    await new Promise((r) => setTimeout(r, 1500));
    await node('start', 'peer0.org2');
    // Endorsement needs both hospitals, so this waits for the restarted peer.
    expected.push(
      (await until('submit after peer restart', 60_000, () => register(submitter, `${run}-p-6`)))
        .transactionId,
    );

    await Promise.race([
      consume,
      new Promise((_, rej) => setTimeout(() => rej(new Error(`only ${seen.length} events`)), 60_000)),
    ]);
    stream.close();
    expect(seen.map((e) => e.transactionId)).toEqual(expected);
    expect(new Set(seen.map((e) => e.transactionId)).size).toBe(7);
    expect(checkpointer.current()?.transactionId).toBe(expected[6]);
  });

  it('orderer down: submit fails with UNAVAILABLE within its deadline, then succeeds after restart', async () => {
    await register(submitter, `${run}-o-0`);
    await node('stop', 'orderer');
    try {
      const started = Date.now();
      const err = await register(submitter, `${run}-o-1`, 8_000).then(
        () => undefined,
        (e: unknown) => e,
      );
      const elapsed = Date.now() - started;
      expect(err).toBeInstanceOf(LedgerError);
      expect((err as LedgerError).code).toBe('UNAVAILABLE');
      expect(elapsed).toBeLessThan(8_000 + 500);
    } finally {
      await node('start', 'orderer');
    }
    const r = await until('submit after orderer restart', 60_000, () =>
      register(submitter, `${run}-o-2`, 10_000),
    );
    expect(r.blockNumber).toBeGreaterThan(0n);
  });
});
