import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allowOnly, testContext } from '../../../../test/support/test-context.js';
import { openTestStorage, type TestStorage } from '../../../../test/support/storage.js';
import { createFhirEngine } from './fhir-engine.factory.js';
import type { FhirEngine } from './fhir-engine.js';
import type { FhirRequest, FhirResponse } from './fhir-types.js';
import { FhirError } from './outcomes.js';

/**
 * Conditional create, update, patch and delete (R4 http.html#ccreate, #cond-update, #patch, #3.1.0.7.1)
 * and conditional references in transactions (#trules), on PGlite or on TEST_DATABASE_URL.
 */
let storage: TestStorage;
let engine: FhirEngine;
const ctx = testContext();
const SYS = 'urn:test:mrn';

const body = (res: FhirResponse) =>
  (res.body instanceof Buffer ? JSON.parse(res.body.toString('utf8')) : res.body) as Record<string, any>;
const query = (qs: string) => {
  const q: Record<string, string[]> = {};
  for (const [k, v] of new URLSearchParams(qs)) (q[k] ??= []).push(v);
  return q;
};
const send = (
  method: FhirRequest['method'],
  path: string,
  opts: { body?: unknown; qs?: string; headers?: FhirRequest['headers'] } = {},
) =>
  engine.handle(ctx, {
    method,
    path,
    query: query(opts.qs ?? ''),
    headers: opts.headers ?? {},
    body: opts.body,
  });
const failure = async (p: Promise<unknown>): Promise<FhirError> => {
  try {
    await p;
  } catch (e) {
    if (e instanceof FhirError) return e;
    throw e;
  }
  throw new Error('expected a FhirError');
};
/** A fresh identifier value per test, standing in for PHI that no outcome may repeat. */
const mrn = () => `SECRET-${randomUUID().slice(0, 8)}`;
const patient = (value: string, extra: object = {}) => ({
  resourceType: 'Patient',
  identifier: [{ system: SYS, value }],
  ...extra,
});
const createPatient = async (value: string, extra: object = {}) =>
  body(await send('POST', 'Patient', { body: patient(value, extra) })).id as string;
const count = async (table: string, where = 'true', params: unknown[] = []) =>
  (await storage.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table} WHERE ${where}`, params))
    .rows[0]!.n;
const matching = async (value: string) =>
  (body(await send('GET', 'Patient', { qs: `identifier=${SYS}|${value}` })).entry ?? []).map(
    (e: any) => e.resource.id as string,
  );
const expectNoPhi = (err: FhirError, ...values: string[]) => {
  const text = JSON.stringify(err.outcome);
  for (const v of values) expect(text).not.toContain(v);
};

beforeAll(async () => {
  storage = await openTestStorage();
  engine = createFhirEngine(storage.store, 'http://localhost');
});
afterAll(async () => storage.close());

describe('conditional create (If-None-Exist)', () => {
  it('creates when nothing matches, then answers 200 with the existing resource and writes nothing', async () => {
    const value = mrn();
    const first = await send('POST', 'Patient', {
      body: patient(value),
      headers: { ifNoneExist: `identifier=${SYS}|${value}` },
    });
    expect(first.status).toBe(201);
    const id = body(first).id as string;
    const versions = await count('resource_history');
    const keys = await count('data_key');

    for (const form of [
      `identifier=${SYS}|${value}`,
      `?identifier=${SYS}|${value}`,
      `Patient?identifier=${SYS}|${value}`,
    ]) {
      const again = await send('POST', 'Patient', {
        body: patient(value, { active: true }),
        headers: { ifNoneExist: form },
      });
      expect(again.status).toBe(200);
      expect(body(again).id).toBe(id);
      expect(body(again).active).toBeUndefined();
      expect(again.headers.ETag).toBe('W/"1"');
      expect(again.headers.Location).toBe(`http://localhost/fhir/Patient/${id}/_history/1`);
    }
    expect(await count('resource_history')).toBe(versions);
    // No data key was made for the tentative id of a Patient that was never written.
    expect(await count('data_key')).toBe(keys);
    expect(await matching(value)).toEqual([id]);
  });

  it('answers Prefer: return=OperationOutcome on a match without claiming a write', async () => {
    const value = mrn();
    const id = await createPatient(value);
    const res = await send('POST', 'Patient', {
      body: patient(value),
      headers: { ifNoneExist: `identifier=${SYS}|${value}`, prefer: 'return=OperationOutcome' },
    });
    expect(res.status).toBe(200);
    expect(body(res).issue[0].diagnostics).toContain(`Patient/${id}`);
    expect(body(res).issue[0].diagnostics).toContain('nothing was created');
  });

  it('412 when the criteria match several, without quoting them', async () => {
    const value = mrn();
    await createPatient(value);
    await createPatient(value);
    const before = await count('resource_history');
    const err = await failure(
      send('POST', 'Patient', {
        body: patient(value),
        headers: { ifNoneExist: `identifier=${SYS}|${value}` },
      }),
    );
    expect(err.status).toBe(412);
    expect(err.outcome.resourceType).toBe('OperationOutcome');
    expectNoPhi(err, value, SYS);
    expect(await count('resource_history')).toBe(before);
  });

  it('400 on empty criteria, empty values, unknown parameters and another type; never quoting values', async () => {
    const value = mrn();
    for (const ifNoneExist of [
      '',
      '?',
      '_count=1',
      `identifier=`,
      `nonsense=${value}`,
      `Observation?identifier=${SYS}|${value}`,
    ]) {
      const err = await failure(send('POST', 'Patient', { body: patient(value), headers: { ifNoneExist } }));
      expect(err.status, ifNoneExist).toBe(400);
      expectNoPhi(err, value);
    }
    expect(await matching(value)).toEqual([]);
  });

  it('needs the search right as well as the create right', async () => {
    const value = mrn();
    const err = await failure(
      engine.handle(testContext(allowOnly({ Patient: ['c'] })), {
        method: 'POST',
        path: 'Patient',
        query: {},
        headers: { ifNoneExist: `identifier=${SYS}|${value}` },
        body: patient(value),
      }),
    );
    expect(err.status).toBe(403);
    expect(await matching(value)).toEqual([]);
  });

  // Organization is stored under the shared key, so no request detours through creating a data key and
  // all eight reach the search at once; the Patient's own key is created on the first write.
  it.each(['Organization', 'Patient'])(
    '8 concurrent conditional creates of a %s with the same criteria create exactly one',
    async (type) => {
      const value = mrn();
      const results = await Promise.all(
        Array.from({ length: 8 }, () =>
          send('POST', type, {
            body: { resourceType: type, identifier: [{ system: SYS, value }] },
            headers: { ifNoneExist: `identifier=${SYS}|${value}` },
          }),
        ),
      );
      const found = body(await send('GET', type, { qs: `identifier=${SYS}|${value}` }));
      const ids = (found.entry ?? []).map((e: any) => e.resource.id as string);
      expect(ids).toHaveLength(1);
      expect(results.map((r) => r.status).sort()).toEqual([200, 200, 200, 200, 200, 200, 200, 201]);
      expect(new Set(results.map((r) => body(r).id))).toEqual(new Set(ids));
    },
  );
});

describe('conditional update (PUT [type]?criteria)', () => {
  it('creates under a server id when nothing matches, then updates the one match', async () => {
    const value = mrn();
    const created = await send('PUT', 'Patient', { qs: `identifier=${SYS}|${value}`, body: patient(value) });
    expect(created.status).toBe(201);
    const id = body(created).id as string;
    expect(id).toMatch(/^[0-9a-f-]{36}$/);

    const updated = await send('PUT', 'Patient', {
      qs: `identifier=${SYS}|${value}`,
      body: patient(value, { active: true }),
    });
    expect(updated.status).toBe(200);
    expect(body(updated).id).toBe(id);
    expect(body(updated).meta.versionId).toBe('2');
    expect(body(updated).active).toBe(true);

    // A body id equal to the match's is fine.
    const again = await send('PUT', 'Patient', {
      qs: `identifier=${SYS}|${value}`,
      body: patient(value, { id, active: false }),
      headers: { ifMatch: 'W/"2"' },
    });
    expect(body(again).meta.versionId).toBe('3');
    expect(await matching(value)).toEqual([id]);
  });

  it('creates under the body id when nothing matches (update as create)', async () => {
    const value = mrn();
    const id = `cond-${randomUUID()}`;
    const res = await send('PUT', 'Patient', {
      qs: `identifier=${SYS}|${value}`,
      body: patient(value, { id }),
    });
    expect(res.status).toBe(201);
    expect(body(res).id).toBe(id);
    expect(body(await send('GET', `Patient/${id}`)).identifier[0].value).toBe(value);
  });

  it('400 when the body id is not the match; 409 when it names another existing resource; 412 on several', async () => {
    const value = mrn();
    const id = await createPatient(value);
    const other = await createPatient(mrn());
    const before = await count('resource_history');

    const wrongId = await failure(
      send('PUT', 'Patient', { qs: `identifier=${SYS}|${value}`, body: patient(value, { id: other }) }),
    );
    expect(wrongId.status).toBe(400);

    const unmatched = mrn();
    const taken = await failure(
      send('PUT', 'Patient', { qs: `identifier=${SYS}|${unmatched}`, body: patient(unmatched, { id }) }),
    );
    expect(taken.status).toBe(409);
    expectNoPhi(taken, unmatched);

    await createPatient(value);
    const several = await failure(
      send('PUT', 'Patient', { qs: `identifier=${SYS}|${value}`, body: patient(value) }),
    );
    expect(several.status).toBe(412);
    expectNoPhi(several, value);
    expect(await count('resource_history')).toBe(before + 1);
  });

  it('400 without criteria or with unknown parameters', async () => {
    const value = mrn();
    for (const qs of ['', '_format=json', `unknown=${value}`]) {
      const err = await failure(send('PUT', 'Patient', { qs, body: patient(value) }));
      expect(err.status, qs).toBe(400);
      expectNoPhi(err, value);
    }
  });
});

describe('conditional patch (PATCH [type]?criteria)', () => {
  const jsonPatch = [{ op: 'add', path: '/active', value: true }];
  const patchHeaders = { contentType: 'application/json-patch+json' };

  it('patches the one match; 404 on none; 412 on several', async () => {
    const value = mrn();
    const id = await createPatient(value);
    const res = await send('PATCH', 'Patient', {
      qs: `identifier=${SYS}|${value}`,
      body: jsonPatch,
      headers: patchHeaders,
    });
    expect(res.status).toBe(200);
    expect(body(res).id).toBe(id);
    expect(body(res).active).toBe(true);

    const none = mrn();
    const notFound = await failure(
      send('PATCH', 'Patient', { qs: `identifier=${SYS}|${none}`, body: jsonPatch, headers: patchHeaders }),
    );
    expect(notFound.status).toBe(404);
    expectNoPhi(notFound, none);

    await createPatient(value);
    const several = await failure(
      send('PATCH', 'Patient', { qs: `identifier=${SYS}|${value}`, body: jsonPatch, headers: patchHeaders }),
    );
    expect(several.status).toBe(412);
  });
});

describe('conditional delete (DELETE [type]?criteria)', () => {
  it('deletes the one match, does nothing on none, refuses several (single only) and empty criteria', async () => {
    const value = mrn();
    const id = await createPatient(value);
    const res = await send('DELETE', 'Patient', { qs: `identifier=${SYS}|${value}` });
    expect(res.status).toBe(200);
    expect(res.headers.ETag).toBe('W/"2"');
    expect((await failure(send('GET', `Patient/${id}`))).status).toBe(410);

    const before = await count('resource_history');
    const none = await send('DELETE', 'Patient', { qs: `identifier=${SYS}|${value}` });
    expect(none.status).toBe(200);
    expect(body(none).issue[0].diagnostics).toContain('nothing was deleted');
    expect(await count('resource_history')).toBe(before);

    const twice = mrn();
    const a = await createPatient(twice);
    const b = await createPatient(twice);
    const several = await failure(send('DELETE', 'Patient', { qs: `identifier=${SYS}|${twice}` }));
    expect(several.status).toBe(412);
    expect(several.message).toContain('single');
    expectNoPhi(several, twice);
    expect((await matching(twice)).sort()).toEqual([a, b].sort());

    for (const qs of ['', '_count=10', '_format=json']) {
      const err = await failure(send('DELETE', 'Patient', { qs }));
      expect(err.status, qs).toBe(400);
    }
    expect((await matching(twice)).sort()).toEqual([a, b].sort());
  });
});

describe('conditional interactions in Bundles', () => {
  const transaction = (entry: object[]) =>
    send('POST', '', { body: { resourceType: 'Bundle', type: 'transaction', entry } });

  it('transaction: conditional create matched, conditional reference, conditional update and delete', async () => {
    const existing = mrn();
    const existingId = await createPatient(existing);
    const upd = mrn();
    const updId = await createPatient(upd);
    const del = mrn();
    const delId = await createPatient(del);
    const fresh = mrn();

    const res = body(
      await transaction([
        {
          fullUrl: 'urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a',
          resource: patient(existing, { active: true }),
          request: { method: 'POST', url: 'Patient', ifNoneExist: `identifier=${SYS}|${existing}` },
        },
        {
          fullUrl: 'urn:uuid:88f151c0-a954-468a-88bd-5ae15c08e059',
          resource: patient(fresh),
          request: { method: 'POST', url: 'Patient', ifNoneExist: `identifier=${SYS}|${fresh}` },
        },
        {
          resource: {
            resourceType: 'Observation',
            status: 'final',
            code: { text: 'weight' },
            subject: { reference: 'urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a' },
            performer: [{ reference: `Patient?identifier=${SYS}|${fresh}` }],
          },
          request: { method: 'POST', url: 'Observation' },
        },
        {
          resource: {
            resourceType: 'Observation',
            status: 'final',
            code: { text: 'height' },
            subject: { reference: 'urn:uuid:88f151c0-a954-468a-88bd-5ae15c08e059' },
          },
          request: { method: 'POST', url: 'Observation' },
        },
        {
          resource: patient(upd, { active: true }),
          request: { method: 'PUT', url: `Patient?identifier=${SYS}|${upd}` },
        },
        { request: { method: 'DELETE', url: `Patient?identifier=${SYS}|${del}` } },
      ]),
    );
    expect(res.type).toBe('transaction-response');
    const status = res.entry.map((e: any) => e.response.status);
    expect(status).toEqual(['200 OK', '201 Created', '201 Created', '201 Created', '200 OK', '200 OK']);
    expect(res.entry[0].resource.id).toBe(existingId);
    expect(res.entry[0].resource.active).toBeUndefined();
    const freshId = res.entry[1].resource.id as string;
    // References to the matched conditional create point at the existing Patient; the conditional
    // reference resolved to the Patient created earlier in the same transaction.
    expect(res.entry[2].resource.subject.reference).toBe(`Patient/${existingId}`);
    expect(res.entry[2].resource.performer[0].reference).toBe(`Patient/${freshId}`);
    expect(res.entry[3].resource.subject.reference).toBe(`Patient/${freshId}`);
    expect(res.entry[4].resource.id).toBe(updId);
    expect(res.entry[4].resource.active).toBe(true);
    expect((await failure(send('GET', `Patient/${delId}`))).status).toBe(410);
    // The Observation is stored under its subject's key and is searchable by it.
    const bySubject = body(await send('GET', 'Observation', { qs: `subject=Patient/${existingId}` }));
    expect(bySubject.entry.map((e: any) => e.resource.id)).toEqual([res.entry[2].resource.id]);
  });

  it('transaction: two conditional creates with the same criteria are one resource', async () => {
    const value = mrn();
    const res = body(
      await transaction([
        {
          fullUrl: 'urn:uuid:2d4a33e4-3fd5-4b6c-9a3f-1a1d8f1f0001',
          resource: patient(value),
          request: { method: 'POST', url: 'Patient', ifNoneExist: `identifier=${SYS}|${value}` },
        },
        {
          fullUrl: 'urn:uuid:2d4a33e4-3fd5-4b6c-9a3f-1a1d8f1f0002',
          resource: patient(value),
          request: { method: 'POST', url: 'Patient', ifNoneExist: `identifier=${SYS}|${value}` },
        },
        {
          resource: {
            resourceType: 'Observation',
            status: 'final',
            code: { text: 'x' },
            subject: { reference: 'urn:uuid:2d4a33e4-3fd5-4b6c-9a3f-1a1d8f1f0002' },
          },
          request: { method: 'POST', url: 'Observation' },
        },
      ]),
    );
    const ids = await matching(value);
    expect(ids).toHaveLength(1);
    expect(res.entry.map((e: any) => e.response.status)).toEqual(['201 Created', '200 OK', '201 Created']);
    expect(res.entry[1].resource.id).toBe(ids[0]);
    expect(res.entry[2].resource.subject.reference).toBe(`Patient/${ids[0]}`);
  });

  it('transaction: an unresolvable conditional reference fails it with 412 and writes nothing', async () => {
    const value = mrn();
    const twice = mrn();
    await createPatient(twice);
    await createPatient(twice);
    for (const [ref, why] of [
      [`Patient?identifier=${SYS}|${mrn()}`, 'matches no resource'],
      [`Patient?identifier=${SYS}|${twice}`, 'matches more than one resource'],
    ] as const) {
      const versions = await count('resource_history');
      const err = await failure(
        transaction([
          {
            fullUrl: 'urn:uuid:0f3cf1f6-7e51-4b36-9f86-5f3a7a2b0001',
            resource: patient(value),
            request: { method: 'POST', url: 'Patient', ifNoneExist: `identifier=${SYS}|${value}` },
          },
          {
            resource: {
              resourceType: 'Observation',
              status: 'final',
              code: { text: 'x' },
              subject: { reference: ref },
            },
            request: { method: 'POST', url: 'Observation' },
          },
        ]),
      );
      expect(err.status).toBe(412);
      expect(err.message).toContain('entry 1');
      expect(err.message).toContain(why);
      expectNoPhi(err, value, twice, SYS);
      expect(await count('resource_history')).toBe(versions);
      expect(await matching(value)).toEqual([]);
    }
  });

  it('transaction: a conditional update matching several fails it with 412 and writes nothing', async () => {
    const twice = mrn();
    await createPatient(twice);
    await createPatient(twice);
    const versions = await count('resource_history');
    const err = await failure(
      transaction([
        { resource: patient(mrn()), request: { method: 'POST', url: 'Patient' } },
        { resource: patient(twice), request: { method: 'PUT', url: `Patient?identifier=${SYS}|${twice}` } },
      ]),
    );
    expect(err.status).toBe(412);
    expectNoPhi(err, twice);
    expect(await count('resource_history')).toBe(versions);
  });

  it('transaction: conditional entries resolving to one resource overlap: 409, nothing written', async () => {
    const value = mrn();
    const id = await createPatient(value, { gender: 'male' });
    const versions = await count('resource_history');
    // Two criteria, one resource (R4 http.html#trules: resolved identities count as overlapping).
    const byTwo = await failure(
      transaction([
        {
          resource: patient(value, { gender: 'female' }),
          request: { method: 'PUT', url: `Patient?identifier=${SYS}|${value}` },
        },
        { request: { method: 'DELETE', url: `Patient?_id=${id}` } },
      ]),
    );
    expect(byTwo.status).toBe(409);
    expect(byTwo.outcome.issue[0]?.expression).toEqual(['Bundle.entry[1].request.url']);
    expectNoPhi(byTwo, value);
    // A conditional update and a literal one on the same resource.
    const withLiteral = await failure(
      transaction([
        { resource: { ...patient(value), id }, request: { method: 'PUT', url: `Patient/${id}` } },
        {
          resource: patient(value, { gender: 'other' }),
          request: { method: 'PUT', url: `Patient?identifier=${SYS}|${value}` },
        },
      ]),
    );
    expect(withLiteral.status).toBe(409);
    expect(await count('resource_history')).toBe(versions);
    expect(body(await send('GET', `Patient/${id}`)).gender).toBe('male');
  });

  it('batch: each conditional entry succeeds or fails on its own', async () => {
    const value = mrn();
    const twice = mrn();
    await createPatient(twice);
    await createPatient(twice);
    const res = body(
      await send('POST', '', {
        body: {
          resourceType: 'Bundle',
          type: 'batch',
          entry: [
            {
              resource: patient(value),
              request: { method: 'POST', url: 'Patient', ifNoneExist: `identifier=${SYS}|${value}` },
            },
            {
              resource: patient(twice),
              request: { method: 'POST', url: 'Patient', ifNoneExist: `identifier=${SYS}|${twice}` },
            },
            { request: { method: 'DELETE', url: 'Patient?_count=5' } },
          ],
        },
      }),
    );
    expect(res.entry.map((e: any) => e.response.status.slice(0, 3))).toEqual(['201', '412', '400']);
    expect(JSON.stringify(res.entry[1].response.outcome)).not.toContain(twice);
    expect(await matching(value)).toHaveLength(1);
  });
});

describe('CapabilityStatement', () => {
  it('declares conditional create, update and single delete', async () => {
    const cs = body(await send('GET', 'metadata'));
    const p = cs.rest[0].resource.find((r: any) => r.type === 'Patient');
    expect(p).toMatchObject({
      conditionalCreate: true,
      conditionalUpdate: true,
      conditionalDelete: 'single',
    });
  });
});
