import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testContext } from '../../../../test/support/test-context.js';
import { openTestStorage, type TestStorage } from '../../../../test/support/storage.js';
import { createFhirEngine } from './fhir-engine.factory.js';
import type { FhirEngine } from './fhir-engine.js';
import type { FhirRequest } from './fhir-types.js';
import { FhirError } from './outcomes.js';

let storage: TestStorage;
let engine: FhirEngine;
const ctx = testContext();
const req = (
  method: FhirRequest['method'],
  path: string,
  body?: unknown,
  headers: FhirRequest['headers'] = {},
  query: Record<string, string[]> = {},
): FhirRequest => ({ method, path, body, headers, query });
const parse = (b: unknown) =>
  (b instanceof Buffer ? JSON.parse(b.toString('utf8')) : b) as Record<string, any>;
const failure = async (p: Promise<unknown>) => {
  try {
    await p;
  } catch (e) {
    if (e instanceof FhirError) return e;
    throw e;
  }
  throw new Error('expected a FhirError');
};

beforeAll(async () => {
  storage = await openTestStorage();
  engine = createFhirEngine(storage.store, 'http://localhost:8080');
});
afterAll(async () => storage.close());

describe('FhirEngine on storage', () => {
  it('creates, reads, updates with If-Match, patches, deletes (410) and lists history', async () => {
    const created = await engine.handle(
      ctx,
      req('POST', 'Patient', { resourceType: 'Patient', name: [{ family: 'Lovelace' }] }),
    );
    expect(created.status).toBe(201);
    const p = parse(created.body);
    expect(p.meta.versionId).toBe('1');
    const read = await engine.handle(ctx, req('GET', `Patient/${p.id}`));
    expect(read.body).toBeInstanceOf(Buffer);
    expect(parse(read.body).name[0].family).toBe('Lovelace');

    expect(
      (
        await failure(
          engine.handle(ctx, req('PUT', `Patient/${p.id}`, { ...p, active: true }, { ifMatch: 'W/"9"' })),
        )
      ).status,
    ).toBe(412);
    const upd = await engine.handle(
      ctx,
      req('PUT', `Patient/${p.id}`, { ...p, active: true }, { ifMatch: 'W/"1"' }),
    );
    expect(upd.status).toBe(200);
    expect(upd.headers.ETag).toBe('W/"2"');

    const patched = await engine.handle(
      ctx,
      req('PATCH', `Patient/${p.id}`, [{ op: 'replace', path: '/active', value: false }], {
        contentType: 'application/json-patch+json',
      }),
    );
    expect(parse(patched.body).active).toBe(false);

    await engine.handle(ctx, req('DELETE', `Patient/${p.id}`));
    expect((await failure(engine.handle(ctx, req('GET', `Patient/${p.id}`)))).status).toBe(410);
    const v1 = await engine.handle(ctx, req('GET', `Patient/${p.id}/_history/1`));
    expect(parse(v1.body).meta.versionId).toBe('1');

    const hist = parse((await engine.handle(ctx, req('GET', `Patient/${p.id}/_history`))).body);
    expect(hist.total).toBe(4);
    expect(hist.entry.map((e: any) => e.response.etag)).toEqual(['W/"4"', 'W/"3"', 'W/"2"', 'W/"1"']);
  });

  it('runs a transaction atomically with urn:uuid references rewritten', async () => {
    const bundle = {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        {
          fullUrl: 'urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a',
          resource: { resourceType: 'Patient', name: [{ family: 'X' }] },
          request: { method: 'POST', url: 'Patient' },
        },
        {
          fullUrl: 'urn:uuid:88f151c0-a954-468a-88bd-5ae15c08e059',
          resource: {
            resourceType: 'Observation',
            status: 'final',
            code: { text: 'hr' },
            subject: { reference: 'urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a' },
          },
          request: { method: 'POST', url: 'Observation' },
        },
      ],
    };
    const res = parse((await engine.handle(ctx, req('POST', '', bundle))).body);
    expect(res.type).toBe('transaction-response');
    const patientLoc = res.entry[0].response.location as string;
    const obs = res.entry[1].resource;
    expect(obs.subject.reference).toBe(patientLoc.replace(/\/_history\/.*/, ''));

    const before = await storage.db.query<{ n: number }>('SELECT count(*)::int AS n FROM resource_history');
    const bad = {
      ...bundle,
      entry: [
        bundle.entry[0],
        { ...bundle.entry[1], resource: { resourceType: 'Observation', status: 'bogus' } },
      ],
    };
    const err = await failure(engine.handle(ctx, req('POST', '', bad)));
    expect(err.status).toBe(422);
    const after = await storage.db.query<{ n: number }>('SELECT count(*)::int AS n FROM resource_history');
    expect(after.rows[0]!.n).toBe(before.rows[0]!.n);
  });

  it('keeps plaintext out of the tables', async () => {
    await engine.handle(
      ctx,
      req('POST', 'Patient', { resourceType: 'Patient', name: [{ family: 'Zyxwvutsrq' }] }),
    );
    const { rows } = await storage.db.query<{ t: string }>(
      `SELECT string_agg(encode(content, 'escape'), '') AS t FROM resource_history`,
    );
    expect(rows[0]!.t).not.toContain('Zyxwvutsrq');
  });
});

describe('PATCH formats', () => {
  it('applies a FHIRPath Patch (Parameters) and rejects unknown patch media types', async () => {
    const created = await engine.handle(
      ctx,
      req('POST', 'Patient', { resourceType: 'Patient', name: [{ family: 'Old' }] }),
    );
    const id = parse(created.body).id as string;
    const params = {
      resourceType: 'Parameters',
      parameter: [
        {
          name: 'operation',
          part: [
            { name: 'type', valueCode: 'replace' },
            { name: 'path', valueString: 'Patient.name[0].family' },
            { name: 'value', valueString: 'New' },
          ],
        },
      ],
    };
    const res = await engine.handle(
      ctx,
      req('PATCH', `Patient/${id}`, params, { contentType: 'application/fhir+json' }),
    );
    expect(parse(res.body).name[0].family).toBe('New');
    expect(
      (
        await failure(
          engine.handle(ctx, req('PATCH', `Patient/${id}`, params, { contentType: 'text/plain' })),
        )
      ).status,
    ).toBe(415);
    const badTest = [{ op: 'test', path: '/name/0/family', value: 'Nope' }];
    const err = await failure(
      engine.handle(
        ctx,
        req('PATCH', `Patient/${id}`, badTest, { contentType: 'application/json-patch+json' }),
      ),
    );
    expect(err.status).toBe(422);
  });
});

describe('reference and compartment index', () => {
  it('follows updates and deletes', async () => {
    const links = async (id: string) => {
      const refs = await storage.db.query<{ t: string }>(
        `SELECT target_type || '/' || target_id AS t FROM resource_reference WHERE resource_type = 'Observation' AND id = $1 ORDER BY 1`,
        [id],
      );
      const comps = await storage.db.query<{ p: string }>(
        `SELECT patient_id AS p FROM resource_compartment WHERE resource_type = 'Observation' AND id = $1 ORDER BY 1`,
        [id],
      );
      return { refs: refs.rows.map((r) => r.t), patients: comps.rows.map((r) => r.p) };
    };
    const obs = (subject: string, performer?: string) => ({
      resourceType: 'Observation',
      status: 'final',
      code: { text: 'x' },
      subject: { reference: subject },
      ...(performer ? { performer: [{ reference: performer }] } : {}),
    });
    const created = parse(
      (await engine.handle(ctx, req('POST', 'Observation', obs('Patient/a', 'Practitioner/p')))).body,
    );
    expect(await links(created.id)).toEqual({ refs: ['Patient/a', 'Practitioner/p'], patients: ['a'] });
    await engine.handle(
      ctx,
      req('PUT', `Observation/${created.id}`, { ...obs('Patient/b', 'Practitioner/p'), id: created.id }),
    );
    expect(await links(created.id)).toEqual({ refs: ['Patient/b', 'Practitioner/p'], patients: ['b'] });
    await engine.handle(ctx, req('DELETE', `Observation/${created.id}`));
    expect(await links(created.id)).toEqual({ refs: [], patients: [] });
  });
});
