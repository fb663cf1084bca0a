import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Client } from 'fhir-kit-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClientRepository } from '../../apps/fhir-gateway/src/auth/client.repository.js';
import type { PublicJwks } from '../../apps/fhir-gateway/src/auth/jwks.js';
import { PostgresDatabase } from '../../apps/fhir-gateway/src/database/postgres.database.js';
import { createFreshDatabase, testServerUrl } from '../support/database.js';
import { freePort } from '../support/net.js';
import { makeTestClient, requestToken } from '../support/smart-client.js';

/**
 * WORKERS=2 as an operator starts it: the real entry point (main.ts) in a child process on a real Postgres,
 * two server processes behind one port. Needs Postgres (PGlite serves one process), so it runs under
 * TEST_DATABASE_URL (`npm run test:pg`, and CI).
 */
interface LogLine {
  msg: string;
  pid?: number;
  pids?: number[];
  status?: number;
  [k: string]: unknown;
}

class GatewayProcess {
  readonly lines: LogLine[] = [];
  private waiters: { test: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];
  readonly exited: Promise<number | null>;

  constructor(readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on('line', (text) => {
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        return;
      }
      this.lines.push(line);
      this.waiters = this.waiters.filter((w) => (w.test(line) ? (w.resolve(line), false) : true));
    });
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  /** The first log line, already written or still to come, that passes `test`. */
  next(test: (l: LogLine) => boolean, after = 0): Promise<LogLine> {
    const seen = this.lines.slice(after).find(test);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => this.waiters.push({ test: (l) => test(l), resolve }));
  }
}

function startMain(env: Record<string, string>): GatewayProcess {
  const child = spawn(
    process.execPath,
    ['--conditions=source', '--import', 'tsx', 'apps/fhir-gateway/src/main.ts'],
    {
      env: { PATH: process.env.PATH, HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  return new GatewayProcess(child);
}

/** GET on a connection of its own: node:cluster hands each new connection to the next worker in turn. */
function getOnNewConnection(url: string, token: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, headers: { authorization: `Bearer ${token}` } }, (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode ?? 0));
    });
    req.once('error', reject);
    req.end();
  });
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe.runIf(!!testServerUrl())('WORKERS=2 on Postgres', () => {
  let fresh: Awaited<ReturnType<typeof createFreshDatabase>>;
  let dataDir: string;
  let gw: GatewayProcess;
  let base: string;
  let token: string;
  const kek = `k1:${randomBytes(32).toString('base64')}`;

  beforeAll(async () => {
    fresh = await createFreshDatabase(testServerUrl()!);
    dataDir = mkdtempSync(join(tmpdir(), 'gw-cluster-'));
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    gw = startMain({
      WORKERS: '2',
      PORT: String(port),
      DATA_DIR: dataDir,
      DATABASE_URL: fresh.url,
      FHIRGW_KEK: kek,
    });
    await gw.next((l) => l.msg === 'fhir gateway workers ready');
    const db = new PostgresDatabase(fresh.url, 1);
    const client = await makeTestClient();
    await new ClientRepository(db).insert({
      id: client.clientId,
      name: 'cluster test client',
      jwks: client.publicJwks as PublicJwks,
      scopes: 'system/*.cruds',
    });
    await db.close();
    token = await requestToken(base, client, 'system/*.cruds');
  }, 120_000);

  afterAll(async () => {
    if (gw && gw.child.exitCode === null) {
      gw.child.kill('SIGKILL');
      await gw.exited;
    }
    await fresh?.drop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  /** The pids that logged the `count` requests made after log line `from`, sorted. */
  async function servedBy(from: number, count: number): Promise<(number | undefined)[]> {
    await gw.next((l) => l.msg === 'request', from + count - 1);
    const pids = gw.lines
      .slice(from)
      .filter((l) => l.msg === 'request')
      .map((l) => l.pid);
    return [...new Set(pids)].sort();
  }

  /** Another WORKERS=2 gateway on its own port and data dir, the same key, for a test of its own. */
  async function withAnotherGateway(databaseUrl: string, fn: (g: GatewayProcess) => Promise<void>) {
    const dir = mkdtempSync(join(tmpdir(), 'gw-cluster-other-'));
    const other = startMain({
      WORKERS: '2',
      PORT: String(await freePort()),
      DATA_DIR: dir,
      DATABASE_URL: databaseUrl,
      FHIRGW_KEK: kek,
    });
    try {
      await fn(other);
    } finally {
      if (other.child.exitCode === null) other.child.kill('SIGKILL');
      await other.exited;
      rmSync(dir, { recursive: true, force: true });
    }
  }

  it('serves one port from two processes, which share keys, tokens and data', async () => {
    const ready = await gw.next((l) => l.msg === 'fhir gateway workers ready');
    expect(ready.pids).toHaveLength(2);
    const fhir = new Client({ baseUrl: `${base}/fhir`, bearerToken: token });
    const created: any = await fhir.create({
      resourceType: 'Patient',
      body: { resourceType: 'Patient', name: [{ family: 'Clusterson' }] },
    });
    const mark = gw.lines.length;
    // A token signed by one worker verifies on the other; a resource written by one reads on the other.
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++)
      statuses.push(await getOnNewConnection(`${base}/fhir/Patient/${created.id}`, token));
    expect(statuses).toEqual([200, 200, 200, 200, 200, 200]);
    expect(await servedBy(mark, 6)).toEqual([...ready.pids!].sort());
    const found: any = await fhir.search({ resourceType: 'Patient', searchParams: { family: 'clusters' } });
    expect(found.entry.map((e: any) => e.resource.id)).toEqual([created.id]);
  }, 60_000);

  it('replaces a worker that dies, and keeps serving meanwhile', async () => {
    const ready = await gw.next((l) => l.msg === 'fhir gateway workers ready');
    const [victim, survivor] = ready.pids!;
    const mark = gw.lines.length;
    process.kill(victim!, 'SIGKILL');
    await gw.next((l) => l.msg === 'worker died; replacing it' && l.pid === victim, mark);
    const replaced = await gw.next((l) => l.msg === 'worker replaced', mark);
    expect(alive(victim!)).toBe(false);
    expect(replaced.pid).not.toBe(victim);
    const after = gw.lines.length;
    for (let i = 0; i < 4; i++) expect(await getOnNewConnection(`${base}/fhir/metadata`, token)).toBe(200);
    expect(await servedBy(after, 4)).toEqual([replaced.pid, survivor].sort());
  }, 60_000);

  it('stops every worker on SIGTERM and exits 0', async () => {
    const pids = [...new Set(gw.lines.filter((l) => l.msg === 'request').map((l) => l.pid!))];
    expect(pids.length).toBeGreaterThanOrEqual(2);
    gw.child.kill('SIGTERM');
    expect(await gw.exited).toBe(0);
    // The workers closed their servers and pools before the primary exited.
    expect(pids.filter(alive)).toEqual([]);
  }, 60_000);

  it('gives up with exit 1 when workers keep dying', async () => {
    // A second gateway on the same database: its workers are killed as soon as they serve, as a crash
    // loop would. The sixth death within a minute stops it (RESTART_LIMIT 5), after pauses of 0.25 to 4 s.
    await withAnotherGateway(fresh.url, async (looping) => {
      const ready = await looping.next((l) => l.msg === 'fhir gateway workers ready');
      for (const pid of ready.pids!) process.kill(pid, 'SIGKILL');
      let seen = 0;
      while (looping.child.exitCode === null) {
        const replaced = await Promise.race([
          looping.next((l) => l.msg === 'worker replaced', seen),
          looping.exited.then(() => undefined),
        ]);
        if (!replaced) break;
        seen = looping.lines.indexOf(replaced) + 1;
        process.kill(replaced.pid!, 'SIGKILL');
      }
      expect(await looping.exited).toBe(1);
      const msgs = looping.lines.map((l) => l.msg);
      expect(msgs.filter((m) => m === 'worker died; replacing it')).toHaveLength(5);
      expect(msgs).toContain('workers keep dying; stopping the gateway');
    });
  }, 90_000);

  it('exits 1 when its workers cannot start, instead of restarting them forever', async () => {
    // Nothing listens at that database address.
    await withAnotherGateway(`postgres://postgres@127.0.0.1:${await freePort()}/none`, async (bad) => {
      expect(await bad.exited).toBe(1);
      expect(bad.lines.map((l) => l.msg)).toContain('a worker failed to start; stopping the gateway');
    });
  }, 60_000);
});
