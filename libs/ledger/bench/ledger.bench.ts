// Ledger benchmark: the same scenarios on the embedded ledger and, when the local network is up
// (npm run fabric:up), on Fabric, side by side.
//   npm run bench:ledger [-- --quick] [-- --no-fabric] [-- --clients=8]
//  - submit latency (sequential consent grants, p50/p99)
//  - submits/s with concurrent clients
//  - evaluate latency (consent:get)
//  - grant commit -> event at a subscriber (and submit start -> event)
import { createPublicKey, generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { EmbeddedLedger } from '../src/embedded/embedded-ledger.js';
import { connectionPath, connectAs } from '../src/fabric/fabric-test-network.js';
import type { GrantInput } from '../src/contracts/schemas.js';
import type { Ledger, LedgerEvent } from '../src/ledger.port.js';
import { grantPayload, signCanonical } from '../src/signing.js';

const quick = process.argv.includes('--quick');
const noFabric = process.argv.includes('--no-fabric');
const clientsArg = Number(process.argv.find((a) => a.startsWith('--clients='))?.split('=')[1] ?? 8);

interface Sizes {
  sequential: number;
  clients: number;
  perClient: number;
  evaluates: number;
  events: number;
}
const sizes = (fabric: boolean): Sizes =>
  fabric
    ? {
        sequential: quick ? 15 : 40,
        clients: clientsArg,
        perClient: quick ? 5 : 15,
        evaluates: quick ? 50 : 200,
        events: quick ? 10 : 30,
      }
    : {
        sequential: quick ? 100 : 500,
        clients: clientsArg,
        perClient: quick ? 50 : 250,
        evaluates: quick ? 500 : 2000,
        events: quick ? 50 : 200,
      };

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? NaN;
}
const ms = (x: number): string => (Number.isNaN(x) ? 'n/a' : x < 10 ? x.toFixed(2) : x.toFixed(1));

interface Row {
  adapter: string;
  submitP50: number;
  submitP99: number;
  throughput: number;
  evalP50: number;
  evalP99: number;
  commitToEventP50: number;
  commitToEventP99: number;
  submitToEventP50: number;
  submitToEventP99: number;
}

interface Target {
  name: string;
  submitter: Ledger;
  listener: Ledger;
  msp: string;
  fabric: boolean;
  close(): Promise<void>;
}

async function scenario(t: Target): Promise<Row> {
  const n = sizes(t.fabric);
  const run = `b${randomUUID().slice(0, 8)}`;
  const key: KeyObject = generateKeyPairSync('ed25519').privateKey;
  const patientId = `${run}-pat`;
  await t.submitter.submit({
    contract: 'identity',
    fn: 'register',
    args: [
      JSON.stringify({
        id: patientId,
        kind: 'patient',
        org: t.msp,
        role: 'patient',
        publicKeyPem: createPublicKey(key).export({ type: 'spki', format: 'pem' }).toString(),
      }),
    ],
  });
  let seq = 0;
  const grantArgs = (): { grantId: string; args: string[] } => {
    const grant: GrantInput = {
      grantId: `${run}-g-${seq++}`,
      patientId,
      version: 1,
      scope: 'patient-privacy',
      provision: {
        type: 'permit',
        actor: [{ role: 'PRCP', reference: `${run}-prac` }],
        action: ['access'],
        purpose: ['TREAT'],
        class: ['Observation'],
      },
    };
    return {
      grantId: grant.grantId,
      args: [JSON.stringify(grant), JSON.stringify({ signature: signCanonical(key, grantPayload(grant)) })],
    };
  };
  const grant = (l: Ledger) => l.submit({ contract: 'consent', fn: 'grant', args: grantArgs().args });

  // 1. sequential submit latency
  const lat: number[] = [];
  for (let i = 0; i < n.sequential; i++) {
    const t0 = performance.now();
    await grant(t.submitter);
    lat.push(performance.now() - t0);
  }

  // 2. throughput with concurrent clients
  const t1 = performance.now();
  await Promise.all(
    Array.from({ length: n.clients }, async () => {
      for (let i = 0; i < n.perClient; i++) await grant(t.submitter);
    }),
  );
  const throughput = (n.clients * n.perClient) / ((performance.now() - t1) / 1000);

  // 3. evaluate latency
  const evl: number[] = [];
  for (let i = 0; i < n.evaluates; i++) {
    const t0 = performance.now();
    await t.listener.evaluate({ contract: 'consent', fn: 'get', args: [`${run}-g-${i % seq}`] });
    evl.push(performance.now() - t0);
  }

  // 4. grant commit -> event at a subscriber (the subscriber is on the other organisation's peer)
  const marker = await t.submitter.submit({ contract: 'identity', fn: 'whoami' });
  const stream = t.listener.events({ startBlock: marker.blockNumber });
  const arrivals = new Map<string, number>();
  const waiters = new Map<string, () => void>();
  const consume = (async () => {
    for await (const e of stream as AsyncIterable<LedgerEvent>) {
      if (e.name !== 'ConsentGranted') continue;
      const id = (JSON.parse(e.payload) as { grantId: string }).grantId;
      arrivals.set(id, performance.now());
      waiters.get(id)?.();
    }
  })();
  const c2e: number[] = [];
  const s2e: number[] = [];
  for (let i = 0; i < n.events; i++) {
    const { grantId, args } = grantArgs();
    const arrived = new Promise<void>((resolve) => waiters.set(grantId, resolve));
    const t0 = performance.now();
    await t.submitter.submit({ contract: 'consent', fn: 'grant', args });
    const committed = performance.now();
    await Promise.race([
      arrived,
      new Promise((_, rej) =>
        setTimeout(() => rej(new Error(`event for ${grantId} not seen in 30 s`)), 30_000),
      ),
    ]);
    const at = arrivals.get(grantId) ?? NaN;
    c2e.push(Math.max(0, at - committed));
    s2e.push(at - t0);
  }
  stream.close();
  await consume;

  return {
    adapter: t.name,
    submitP50: pct(lat, 50),
    submitP99: pct(lat, 99),
    throughput,
    evalP50: pct(evl, 50),
    evalP99: pct(evl, 99),
    commitToEventP50: pct(c2e, 50),
    commitToEventP99: pct(c2e, 99),
    submitToEventP50: pct(s2e, 50),
    submitToEventP99: pct(s2e, 99),
  };
}

async function embeddedTarget(): Promise<Target> {
  const dir = await mkdtemp(join(tmpdir(), 'ledger-bench-'));
  const l = await EmbeddedLedger.open({ dir, identity: { mspId: 'Org1MSP', id: 'x509::/CN=bench::/CN=ca' } });
  return {
    name: 'embedded',
    submitter: l,
    listener: l.as({ mspId: 'Org2MSP', id: 'x509::/CN=bench2::/CN=ca' }),
    msp: 'Org1MSP',
    fabric: false,
    close: async () => {
      await l.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function fabricTarget(): Promise<Target | undefined> {
  if (noFabric || !existsSync(connectionPath)) return undefined;
  try {
    const submitter = await connectAs('org1', 'org1');
    const listener = await connectAs('org2', 'org2');
    await submitter.evaluate({ contract: 'identity', fn: 'whoami', timeoutMs: 3000 });
    return {
      name: 'fabric',
      submitter,
      listener,
      msp: 'Org1MSP',
      fabric: true,
      close: async () => Promise.all([submitter.close(), listener.close()]).then(() => undefined),
    };
  } catch (e) {
    console.error(`Fabric not reachable, embedded only: ${e instanceof Error ? e.message : String(e)}`);
    return undefined;
  }
}

const rows: Row[] = [];
for (const make of [embeddedTarget, fabricTarget]) {
  const t = await make();
  if (!t) continue;
  try {
    console.error(`running ${t.name} (${JSON.stringify(sizes(t.fabric))})`);
    rows.push(await scenario(t));
  } finally {
    await t.close();
  }
}

const header = [
  'adapter',
  'submit p50 ms',
  'submit p99 ms',
  `submits/s (${clientsArg} clients)`,
  'evaluate p50 ms',
  'evaluate p99 ms',
  'commit->event p50 ms',
  'commit->event p99 ms',
  'submit->event p50 ms',
  'submit->event p99 ms',
];
console.log(`| ${header.join(' | ')} |`);
console.log(`|${header.map(() => '---').join('|')}|`);
for (const r of rows) {
  console.log(
    `| ${r.adapter} | ${ms(r.submitP50)} | ${ms(r.submitP99)} | ${r.throughput.toFixed(1)} | ${ms(r.evalP50)} | ${ms(r.evalP99)} | ${ms(r.commitToEventP50)} | ${ms(r.commitToEventP99)} | ${ms(r.submitToEventP50)} | ${ms(r.submitToEventP99)} |`,
  );
}
console.log(JSON.stringify({ when: new Date().toISOString(), quick, rows }));
