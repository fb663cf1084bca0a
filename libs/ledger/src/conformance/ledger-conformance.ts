import { createPublicKey, generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InMemoryCheckpointer } from '../checkpointer.js';
import type { GrantInput, GrantRecord, IdentityRecord } from '../contracts/index.js';
import { LedgerError, type LedgerErrorCode } from '../ledger.error.js';
import type { Ledger, LedgerCall, LedgerEvent, LedgerEventStream, SubmitResult } from '../ledger.port.js';
import { delegatePayload, grantPayload, revokePayload, signCanonical, signTreeHead } from '../signing.js';

/**
 * The one conformance suite both adapters pass. The fixture gives three callers:
 *  - org1: a gateway client of the first hospital (MSP id `org1Msp`);
 *  - org1Other: a second client identity of the same hospital;
 *  - org2: a client of the second hospital.
 * Every id is prefixed with a fresh run id, so the suite can run again on a long-lived network.
 */
export interface ConformanceFixture {
  org1: Ledger;
  org1Other: Ledger;
  org2: Ledger;
  org1Msp: string;
  org2Msp: string;
  teardown(): Promise<void>;
}

export async function expectLedgerError(
  p: Promise<unknown>,
  code: LedgerErrorCode,
  reason?: string,
): Promise<LedgerError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e, `expected LedgerError ${code}${reason ? `/${reason}` : ''}`).toBeInstanceOf(LedgerError);
  const le = e as LedgerError;
  expect({ code: le.code, reason: le.reason, message: le.message }).toMatchObject({
    code,
    ...(reason ? { reason } : {}),
  });
  return le;
}

const pem = (k: KeyObject): string => createPublicKey(k).export({ type: 'spki', format: 'pem' }).toString();

async function nextEvents(
  stream: LedgerEventStream,
  n: number,
  match: (e: LedgerEvent) => boolean,
  timeoutMs = 20_000,
): Promise<LedgerEvent[]> {
  const out: LedgerEvent[] = [];
  const it = stream[Symbol.asyncIterator]();
  const deadline = Date.now() + timeoutMs;
  while (out.length < n) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`timed out with ${out.length}/${n} events`);
    let timer: NodeJS.Timeout | undefined;
    const r = await Promise.race([
      it.next(),
      new Promise<IteratorResult<LedgerEvent>>((_, rej) => {
        timer = setTimeout(() => rej(new Error(`timed out with ${out.length}/${n} events`)), left);
      }),
    ]).finally(() => clearTimeout(timer));
    if (r.done) throw new Error('stream ended early');
    if (match(r.value)) out.push(r.value);
  }
  return out;
}

export function ledgerConformance(name: string, makeFixture: () => Promise<ConformanceFixture>): void {
  describe(`Ledger conformance: ${name}`, () => {
    let f: ConformanceFixture;
    const run = `t${randomUUID().slice(0, 8)}`;
    const gatewayKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const patientKey = generateKeyPairSync('ed25519').privateKey;
    const strangerKey = generateKeyPairSync('ed25519').privateKey;
    const patientId = `${run}-pat-1`;
    const gatewayId = `${run}-gw-1`;

    /**
     * Waits until both organisations' peers have committed `r`. On Fabric, submit resolves when
     * the gateway's own peer has committed; the other hospital's peer may be a block behind for
     * a moment, and every write here is endorsed by both, so a dependent write (or a read on the
     * other peer) must wait for it. Seeing the transaction's event on a peer proves the commit.
     */
    const settled = async (r: SubmitResult): Promise<void> => {
      for (const l of [f.org1, f.org2]) {
        const s = l.events({ startBlock: r.blockNumber });
        try {
          await nextEvents(s, 1, (e) => e.transactionId === r.transactionId, 15_000);
        } finally {
          s.close();
        }
      }
    };
    const commit = async (l: Ledger, call: LedgerCall): Promise<SubmitResult> => {
      const r = await l.submit(call);
      await settled(r);
      return r;
    };
    const submitJson = async <T>(
      l: Ledger,
      contract: 'consent' | 'anchor' | 'identity',
      fn: string,
      ...args: string[]
    ): Promise<{ value: T; blockNumber: bigint; transactionId: string }> => {
      const r = await commit(l, { contract, fn, args });
      return { value: JSON.parse(r.result) as T, blockNumber: r.blockNumber, transactionId: r.transactionId };
    };
    const evalJson = async <T>(
      l: Ledger,
      contract: 'consent' | 'anchor' | 'identity',
      fn: string,
      ...args: string[]
    ): Promise<T> => JSON.parse(await l.evaluate({ contract, fn, args })) as T;
    const fabricIdOf = async (l: Ledger): Promise<string> =>
      (await evalJson<{ fabricId: string }>(l, 'identity', 'whoami')).fabricId;

    const grantOf = (grantId: string, version: number, grantees: string[], pid = patientId): GrantInput => ({
      grantId,
      patientId: pid,
      version,
      scope: 'patient-privacy',
      provision: {
        type: 'permit',
        period: { start: '2026-01-01T00:00:00Z', end: '2027-01-01T00:00:00Z' },
        actor: grantees.map((reference) => ({ role: 'PRCP', reference })),
        action: ['access'],
        purpose: ['TREAT'],
        class: ['Observation', 'Condition'],
        securityLabel: ['N'],
        dataPeriod: { start: '2020-01-01T00:00:00Z' },
        provision: [{ type: 'deny', securityLabel: ['R'], class: ['Observation'] }],
      },
    });
    const signedGrant = (g: GrantInput, key = patientKey, signer?: string): string[] => [
      JSON.stringify(g),
      JSON.stringify({ ...(signer ? { signer } : {}), signature: signCanonical(key, grantPayload(g)) }),
    ];

    beforeAll(async () => {
      f = await makeFixture();
      await commit(f.org1, {
        contract: 'identity',
        fn: 'register',
        args: [
          JSON.stringify({
            id: gatewayId,
            kind: 'gateway',
            org: f.org1Msp,
            role: 'fhir-gateway',
            publicKeyPem: pem(gatewayKey),
            fabricId: await fabricIdOf(f.org1),
          }),
        ],
      });
      await commit(f.org1, {
        contract: 'identity',
        fn: 'register',
        args: [
          JSON.stringify({
            id: patientId,
            kind: 'patient',
            org: f.org1Msp,
            role: 'patient',
            publicKeyPem: pem(patientKey),
          }),
        ],
      });
    });
    afterAll(async () => {
      await f?.teardown();
    });

    describe('identity contract', () => {
      it('reads back a registration with the key fingerprint it derived', async () => {
        const rec = await evalJson<IdentityRecord>(f.org1, 'identity', 'get', patientId);
        expect(rec).toMatchObject({
          id: patientId,
          kind: 'patient',
          org: f.org1Msp,
          status: 'active',
          delegates: [],
          seq: 0,
        });
        expect(rec.keyFingerprint).toMatch(/^[0-9a-f]{64}$/);
      });

      it('refuses registering an identity in another organisation', async () => {
        const args = [JSON.stringify({ id: `${run}-x`, kind: 'client', org: f.org1Msp, role: 'app' })];
        await expectLedgerError(
          f.org2.submit({ contract: 'identity', fn: 'register', args }),
          'REJECTED_BY_CONTRACT',
          'NOT_AUTHORIZED',
        );
      });

      it('refuses a duplicate and a mismatched fingerprint', async () => {
        const dup = [JSON.stringify({ id: patientId, kind: 'patient', org: f.org1Msp, role: 'patient' })];
        await expectLedgerError(
          f.org1.submit({ contract: 'identity', fn: 'register', args: dup }),
          'REJECTED_BY_CONTRACT',
          'ALREADY_EXISTS',
        );
        const bad = [
          JSON.stringify({
            id: `${run}-fp`,
            kind: 'device',
            org: f.org1Msp,
            role: 'd',
            publicKeyPem: pem(strangerKey),
            keyFingerprint: '0'.repeat(64),
          }),
        ];
        await expectLedgerError(
          f.org1.submit({ contract: 'identity', fn: 'register', args: bad }),
          'REJECTED_BY_CONTRACT',
          'INVALID_INPUT',
        );
      });

      it('revokes only within the owning organisation, and emits events', async () => {
        const id = `${run}-dev-1`;
        const reg = await submitJson<IdentityRecord>(
          f.org1,
          'identity',
          'register',
          JSON.stringify({ id, kind: 'device', org: f.org1Msp, role: 'monitor' }),
        );
        const stream = f.org1.events({ startBlock: reg.blockNumber });
        try {
          await expectLedgerError(
            f.org2.submit({ contract: 'identity', fn: 'revoke', args: [id] }),
            'REJECTED_BY_CONTRACT',
            'NOT_AUTHORIZED',
          );
          const rev = await submitJson<IdentityRecord>(f.org1, 'identity', 'revoke', id);
          expect(rev.value.status).toBe('revoked');
          const evs = await nextEvents(stream, 2, (e) => e.payload.includes(id));
          expect(evs.map((e) => e.name)).toEqual(['IdentityRegistered', 'IdentityRevoked']);
          expect(evs[1]?.transactionId).toBe(rev.transactionId);
        } finally {
          stream.close();
        }
      });
    });

    describe('consent contract', () => {
      const grantId = `${run}-g-1`;

      it('grants with the patient signature, then reads, lists, updates, revokes and shows history', async () => {
        const g1 = grantOf(grantId, 1, [`${run}-prac-a`]);
        const r1 = await submitJson<GrantRecord>(f.org1, 'consent', 'grant', ...signedGrant(g1));
        expect(r1.value).toMatchObject({
          grantId,
          status: 'active',
          version: 1,
          grantees: [`${run}-prac-a`],
          authorizedBy: `signature:${patientId}`,
        });
        expect(r1.blockNumber).toBeGreaterThan(0n);
        expect(await evalJson<GrantRecord>(f.org2, 'consent', 'get', grantId)).toEqual(r1.value);

        const g2 = grantOf(grantId, 2, [`${run}-prac-b`]);
        await submitJson(f.org2, 'consent', 'grant', ...signedGrant(g2));
        expect(
          (await evalJson<GrantRecord[]>(f.org1, 'consent', 'listByPatient', patientId)).map(
            (g) => g.version,
          ),
        ).toEqual([2]);
        expect(await evalJson<GrantRecord[]>(f.org1, 'consent', 'listByGrantee', `${run}-prac-a`)).toEqual(
          [],
        );
        expect(
          (await evalJson<GrantRecord[]>(f.org1, 'consent', 'listByGrantee', `${run}-prac-b`)).map(
            (g) => g.grantId,
          ),
        ).toEqual([grantId]);

        const sig = signCanonical(patientKey, revokePayload(grantId, patientId, 3));
        const r3 = await submitJson<GrantRecord>(
          f.org1,
          'consent',
          'revoke',
          grantId,
          '3',
          JSON.stringify({ signature: sig }),
        );
        expect(r3.value).toMatchObject({ status: 'revoked', version: 3 });
        expect(await evalJson<GrantRecord[]>(f.org1, 'consent', 'listByGrantee', `${run}-prac-b`)).toEqual(
          [],
        );

        const hist = await evalJson<{ txId: string; value: GrantRecord }[]>(
          f.org1,
          'consent',
          'history',
          grantId,
        );
        expect(hist.map((h) => [h.value.version, h.value.status])).toEqual([
          [1, 'active'],
          [2, 'active'],
          [3, 'revoked'],
        ]);
        expect(hist[0]?.txId).toBe(r1.transactionId);
        expect(hist[2]?.txId).toBe(r3.transactionId);
      });

      it('rejects a grant from an identity that is neither the patient nor a delegate', async () => {
        const g = grantOf(`${run}-g-2`, 1, [`${run}-prac-a`]);
        await expectLedgerError(
          f.org1.submit({ contract: 'consent', fn: 'grant', args: [JSON.stringify(g), '{}'] }),
          'REJECTED_BY_CONTRACT',
          'NOT_AUTHORIZED',
        );
        await expectLedgerError(
          f.org1.submit({ contract: 'consent', fn: 'grant', args: signedGrant(g, strangerKey) }),
          'REJECTED_BY_CONTRACT',
          'BAD_SIGNATURE',
        );
        // Signature over different terms than those submitted (a gateway altering the grant).
        const tampered = signedGrant(g);
        tampered[0] = JSON.stringify({
          ...g,
          provision: { ...g.provision, class: ['Observation', 'Condition', 'Patient'] },
        });
        await expectLedgerError(
          f.org1.submit({ contract: 'consent', fn: 'grant', args: tampered }),
          'REJECTED_BY_CONTRACT',
          'BAD_SIGNATURE',
        );
        await expectLedgerError(
          f.org1.submit({
            contract: 'consent',
            fn: 'grant',
            args: signedGrant(g, strangerKey, `${run}-nobody`),
          }),
          'REJECTED_BY_CONTRACT',
          'NOT_AUTHORIZED',
        );
        await expectLedgerError(
          f.org1.evaluate({ contract: 'consent', fn: 'get', args: [`${run}-g-2`] }),
          'REJECTED_BY_CONTRACT',
          'NOT_FOUND',
        );
      });

      it('refuses replaying a signed grant and bad input', async () => {
        const g = grantOf(`${run}-g-3`, 1, [`${run}-prac-a`]);
        const args = signedGrant(g);
        await commit(f.org1, { contract: 'consent', fn: 'grant', args });
        await expectLedgerError(
          f.org1.submit({ contract: 'consent', fn: 'grant', args }),
          'REJECTED_BY_CONTRACT',
          'VERSION_MISMATCH',
        );
        await expectLedgerError(
          f.org1.submit({ contract: 'consent', fn: 'grant', args: ['{"grantId":"has space"}', '{}'] }),
          'REJECTED_BY_CONTRACT',
          'INVALID_INPUT',
        );
        await expectLedgerError(
          f.org1.submit({ contract: 'consent', fn: 'grant', args: ['not json', '{}'] }),
          'REJECTED_BY_CONTRACT',
          'INVALID_INPUT',
        );
      });

      it('lets a delegate the patient authorised grant by its own certificate, and nobody else', async () => {
        const delegateId = `${run}-prac-deleg`;
        await commit(f.org1, {
          contract: 'identity',
          fn: 'register',
          args: [
            JSON.stringify({
              id: delegateId,
              kind: 'practitioner',
              org: f.org1Msp,
              role: 'PRCP',
              fabricId: await fabricIdOf(f.org1Other),
            }),
          ],
        });
        const g = grantOf(`${run}-g-4`, 1, [`${run}-prac-c`]);
        await expectLedgerError(
          f.org1Other.submit({ contract: 'consent', fn: 'grant', args: [JSON.stringify(g), '{}'] }),
          'REJECTED_BY_CONTRACT',
          'NOT_AUTHORIZED',
        );
        const sig = signCanonical(patientKey, delegatePayload(patientId, delegateId, true, 1));
        await commit(f.org1, {
          contract: 'identity',
          fn: 'setDelegate',
          args: [patientId, delegateId, 'true', JSON.stringify({ signature: sig })],
        });
        const r = await submitJson<GrantRecord>(f.org1Other, 'consent', 'grant', JSON.stringify(g), '{}');
        expect(r.value.authorizedBy).toBe(`caller:${delegateId}`);
        const g2 = grantOf(`${run}-g-5`, 1, [`${run}-prac-c`]);
        await expectLedgerError(
          f.org2.submit({ contract: 'consent', fn: 'grant', args: [JSON.stringify(g2), '{}'] }),
          'REJECTED_BY_CONTRACT',
          'NOT_AUTHORIZED',
        );
        // Replaying the delegation signature (seq 1) is refused.
        await expectLedgerError(
          f.org1.submit({
            contract: 'identity',
            fn: 'setDelegate',
            args: [patientId, delegateId, 'true', JSON.stringify({ signature: sig })],
          }),
          'REJECTED_BY_CONTRACT',
          'BAD_SIGNATURE',
        );
      });

      it('evaluate never commits', async () => {
        const g = grantOf(`${run}-g-eval`, 1, [`${run}-prac-a`]);
        const out = JSON.parse(
          await f.org1.evaluate({ contract: 'consent', fn: 'grant', args: signedGrant(g) }),
        ) as GrantRecord;
        expect(out.grantId).toBe(g.grantId);
        await expectLedgerError(
          f.org1.evaluate({ contract: 'consent', fn: 'get', args: [g.grantId] }),
          'REJECTED_BY_CONTRACT',
          'NOT_FOUND',
        );
      });

      it('commits concurrent grants of different patients', async () => {
        const n = 6;
        const keys = Array.from({ length: n }, () => generateKeyPairSync('ed25519').privateKey);
        await Promise.all(
          keys.map((k, i) =>
            commit(f.org1, {
              contract: 'identity',
              fn: 'register',
              args: [
                JSON.stringify({
                  id: `${run}-cp-${i}`,
                  kind: 'patient',
                  org: f.org1Msp,
                  role: 'patient',
                  publicKeyPem: pem(k),
                }),
              ],
            }),
          ),
        );
        const results = await Promise.all(
          keys.map((k, i) =>
            commit(f.org2, {
              contract: 'consent',
              fn: 'grant',
              args: signedGrant(grantOf(`${run}-cg-${i}`, 1, [`${run}-prac-z`], `${run}-cp-${i}`), k),
            }),
          ),
        );
        expect(new Set(results.map((r) => r.transactionId)).size).toBe(n);
        expect(
          (await evalJson<GrantRecord[]>(f.org1, 'consent', 'listByGrantee', `${run}-prac-z`)).length,
        ).toBe(n);
      });
    });

    describe('anchor contract', () => {
      const logId = `${run}-audit`;
      const head = (treeSize: number, key = gatewayKey, signer = gatewayId): string =>
        JSON.stringify(
          signTreeHead(key, {
            logId,
            treeSize,
            rootHash: treeSize.toString(16).padStart(64, 'a'),
            timestamp: '2026-11-25T12:00:00.000Z',
            signer,
          }),
        );

      it('anchors growing heads and reads them back by log id and size', async () => {
        await commit(f.org1, { contract: 'anchor', fn: 'anchor', args: [head(10)] });
        await commit(f.org1, { contract: 'anchor', fn: 'anchor', args: [head(25)] });
        const h10 = await evalJson<{ treeSize: number; rootHash: string; signer: string }>(
          f.org2,
          'anchor',
          'get',
          logId,
          '10',
        );
        expect(h10).toMatchObject({ treeSize: 10, signer: gatewayId });
        expect((await evalJson<{ treeSize: number }>(f.org2, 'anchor', 'latest', logId)).treeSize).toBe(25);
      });

      it('rejects a head that does not grow', async () => {
        await expectLedgerError(
          f.org1.submit({ contract: 'anchor', fn: 'anchor', args: [head(25)] }),
          'REJECTED_BY_CONTRACT',
          'NOT_GROWING',
        );
        await expectLedgerError(
          f.org1.submit({ contract: 'anchor', fn: 'anchor', args: [head(11)] }),
          'REJECTED_BY_CONTRACT',
          'NOT_GROWING',
        );
      });

      it('commits concurrent anchors of different logs', async () => {
        const heads = Array.from({ length: 4 }, (_, i) =>
          JSON.stringify(
            signTreeHead(gatewayKey, {
              logId: `${logId}-p${i}`,
              treeSize: 1,
              rootHash: 'b'.repeat(64),
              timestamp: '2026-11-25T12:00:00.000Z',
              signer: gatewayId,
            }),
          ),
        );
        const results = await Promise.all(
          heads.map((h) => commit(f.org1, { contract: 'anchor', fn: 'anchor', args: [h] })),
        );
        expect(results).toHaveLength(4);
      });

      it('racing anchors of one log: the larger head ends up latest, the loser is refused as not growing', async () => {
        const race = `${logId}-race`;
        const h = (n: number): string =>
          JSON.stringify(
            signTreeHead(gatewayKey, {
              logId: race,
              treeSize: n,
              rootHash: 'c'.repeat(64),
              timestamp: '2026-11-25T12:00:00.000Z',
              signer: gatewayId,
            }),
          );
        await commit(f.org1, { contract: 'anchor', fn: 'anchor', args: [h(1)] });
        // On Fabric both are endorsed against the same state; one is invalidated by MVCC at commit
        // and FabricLedger retries it as a new proposal, which then sees the other's head.
        const outcomes = await Promise.all(
          [30, 40].map((n) =>
            commit(f.org1, { contract: 'anchor', fn: 'anchor', args: [h(n)] }).then(
              () => 'ok',
              (e: unknown) => (e instanceof LedgerError ? `${e.code}/${e.reason ?? ''}` : String(e)),
            ),
          ),
        );
        for (const o of outcomes) expect(['ok', 'REJECTED_BY_CONTRACT/NOT_GROWING']).toContain(o);
        expect((await evalJson<{ treeSize: number }>(f.org2, 'anchor', 'latest', race)).treeSize).toBe(40);
      });

      it('rejects a bad signature and a caller that is not the registered gateway', async () => {
        await expectLedgerError(
          f.org1.submit({ contract: 'anchor', fn: 'anchor', args: [head(30, strangerKey)] }),
          'REJECTED_BY_CONTRACT',
          'BAD_SIGNATURE',
        );
        await expectLedgerError(
          f.org2.submit({ contract: 'anchor', fn: 'anchor', args: [head(30)] }),
          'REJECTED_BY_CONTRACT',
          'NOT_AUTHORIZED',
        );
        await expectLedgerError(
          f.org1.submit({ contract: 'anchor', fn: 'anchor', args: [head(30, gatewayKey, patientId)] }),
          'REJECTED_BY_CONTRACT',
          'NOT_AUTHORIZED',
        );
      });
    });

    describe('event stream', () => {
      it('delivers chaincode events in order and resumes from a checkpoint exactly once', async () => {
        const pid = `${run}-ev-pat`;
        const key = generateKeyPairSync('ed25519').privateKey;
        const reg = await commit(f.org1, {
          contract: 'identity',
          fn: 'register',
          args: [
            JSON.stringify({
              id: pid,
              kind: 'patient',
              org: f.org1Msp,
              role: 'patient',
              publicKeyPem: pem(key),
            }),
          ],
        });
        const mine = (e: LedgerEvent): boolean =>
          e.name === 'ConsentGranted' && e.payload.includes(`"patientId":"${pid}"`);
        const first = f.org2.events({ startBlock: reg.blockNumber });
        const txIds: string[] = [];
        for (let i = 0; i < 5; i++) {
          const r = await f.org1.submit({
            contract: 'consent',
            fn: 'grant',
            args: signedGrant(grantOf(`${run}-ev-${i}`, 1, [`${run}-prac-e`], pid), key),
          });
          txIds.push(r.transactionId);
        }
        const checkpointer = new InMemoryCheckpointer();
        const got = await nextEvents(first, 2, mine);
        for (const e of got) await checkpointer.checkpointEvent(e);
        first.close();
        expect(got.map((e) => e.transactionId)).toEqual(txIds.slice(0, 2));
        const payload = JSON.parse(got[0]?.payload ?? '{}') as GrantRecord;
        expect(payload).toMatchObject({ grantId: `${run}-ev-0`, status: 'active' });

        const resumed = f.org2.events({ checkpoint: checkpointer.current()! });
        try {
          const rest = await nextEvents(resumed, 3, mine);
          expect(rest.map((e) => e.transactionId)).toEqual(txIds.slice(2));
        } finally {
          resumed.close();
        }
      });
    });
  });
}
