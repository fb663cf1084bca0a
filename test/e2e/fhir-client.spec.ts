import { Client } from 'fhir-kit-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type RunningGateway } from '../support/gateway.js';

/**
 * An EHR's view: a stock FHIR client (fhir-kit-client) against the running server over HTTP, with a SMART
 * backend-services token. Runs on PGlite by default and on real Postgres under TEST_DATABASE_URL.
 */
let gw: RunningGateway;
let client: Client;

beforeAll(async () => {
  gw = await startTestGateway();
  client = new Client({ baseUrl: gw.fhirUrl, bearerToken: await gw.token('system/*.cruds') });
}, 60_000);
afterAll(async () => gw?.close());

const fhirError = async (p: Promise<unknown>): Promise<{ status: number; outcome: any }> => {
  try {
    await p;
  } catch (e: any) {
    return { status: e.response?.status, outcome: e.response?.data };
  }
  throw new Error('expected the request to fail');
};

describe('FHIR REST with fhir-kit-client', () => {
  it('reads the CapabilityStatement', async () => {
    const cs: any = await client.capabilityStatement();
    expect(cs.resourceType).toBe('CapabilityStatement');
    expect(cs.fhirVersion).toBe('4.0.1');
    const patient = cs.rest[0].resource.find((r: any) => r.type === 'Patient');
    expect(patient.interaction.map((i: any) => i.code)).toEqual(
      expect.arrayContaining(['read', 'vread', 'update', 'patch', 'delete', 'create']),
    );
  });

  it('create, read, vread, update with If-Match, patch, history, delete then 410', async () => {
    const created: any = await client.create({
      resourceType: 'Patient',
      body: {
        resourceType: 'Patient',
        name: [{ family: 'Hopper', given: ['Grace'] }],
        birthDate: '1906-12-09',
      },
    });
    expect(created.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(created.meta.versionId).toBe('1');

    const read: any = await client.read({ resourceType: 'Patient', id: created.id });
    expect(read).toEqual(created);

    const updated: any = await client.update({
      resourceType: 'Patient',
      id: created.id,
      body: { ...read, active: true },
      options: { headers: { 'If-Match': 'W/"1"' } },
    });
    expect(updated.meta.versionId).toBe('2');
    expect(updated.active).toBe(true);

    const stale = await fhirError(
      client.update({
        resourceType: 'Patient',
        id: created.id,
        body: { ...read, active: false },
        options: { headers: { 'If-Match': 'W/"1"' } },
      }),
    );
    expect(stale.status).toBe(412);
    expect(stale.outcome.resourceType).toBe('OperationOutcome');

    const patched: any = await client.patch({
      resourceType: 'Patient',
      id: created.id,
      jsonPatch: [{ op: 'add', path: '/gender', value: 'female' }],
    });
    expect(patched.gender).toBe('female');
    expect(patched.meta.versionId).toBe('3');

    const v1: any = await client.vread({ resourceType: 'Patient', id: created.id, version: '1' });
    expect(v1.active).toBeUndefined();
    expect(v1.meta.versionId).toBe('1');

    const history: any = await client.history({ resourceType: 'Patient', id: created.id });
    expect(history.type).toBe('history');
    expect(history.entry.map((e: any) => e.resource.meta.versionId)).toEqual(['3', '2', '1']);

    await client.delete({ resourceType: 'Patient', id: created.id });
    const gone = await fhirError(client.read({ resourceType: 'Patient', id: created.id }));
    expect(gone.status).toBe(410);
    expect(gone.outcome.issue[0].code).toBe('deleted');
  });

  it('updates as create with a client-chosen id', async () => {
    const id = `ehr-${Date.now()}`;
    const res: any = await client.update({
      resourceType: 'Organization',
      id,
      body: { resourceType: 'Organization', id, name: 'General Hospital' },
    });
    expect(res.id).toBe(id);
    expect(res.meta.versionId).toBe('1');
  });

  it('runs a transaction with urn:uuid references', async () => {
    const patientUrn = 'urn:uuid:3f2504e0-4f89-41d3-9a0c-0305e82c3301';
    const response: any = await client.transaction({
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          {
            fullUrl: 'urn:uuid:7c9e6679-7425-40de-944b-e07fc1f90ae7',
            resource: {
              resourceType: 'Encounter',
              status: 'finished',
              class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
              subject: { reference: patientUrn },
            },
            request: { method: 'POST', url: 'Encounter' },
          },
          {
            fullUrl: patientUrn,
            resource: { resourceType: 'Patient', name: [{ family: 'Turing' }] },
            request: { method: 'POST', url: 'Patient' },
          },
        ],
      },
    });
    expect(response.type).toBe('transaction-response');
    expect(response.entry).toHaveLength(2);
    expect(response.entry.map((e: any) => e.response.status)).toEqual(['201 Created', '201 Created']);
    const patientLocation: string = response.entry[1].response.location;
    const encounter: any = await client.read({
      resourceType: 'Encounter',
      id: response.entry[0].resource.id,
    });
    expect(`${encounter.subject.reference}/_history/1`).toBe(patientLocation);
    const patient: any = await client.read({ resourceType: 'Patient', id: patientLocation.split('/')[1]! });
    expect(patient.name[0].family).toBe('Turing');
  });

  it('validates with $validate', async () => {
    const ok: any = await client.operation({
      name: '$validate',
      resourceType: 'Patient',
      method: 'POST',
      input: { resourceType: 'Patient', gender: 'female' },
    });
    expect(ok.issue.every((i: any) => i.severity !== 'error')).toBe(true);
    const bad: any = await client.operation({
      name: '$validate',
      resourceType: 'Patient',
      method: 'POST',
      input: { resourceType: 'Patient', gender: 'sometimes', unknownThing: 1 },
    });
    const errors = bad.issue.filter((i: any) => i.severity === 'error');
    expect(errors.map((i: any) => i.expression?.[0])).toEqual(
      expect.arrayContaining(['Patient.gender', 'Patient.unknownThing']),
    );
  });
});

describe('search with fhir-kit-client', () => {
  it('finds patients by name prefix and identifier, pages with next links, and counts', async () => {
    const family = `Searchable${Date.now()}`;
    for (let i = 0; i < 3; i++) {
      await client.create({
        resourceType: 'Patient',
        body: {
          resourceType: 'Patient',
          name: [{ family, given: [`G${i}`] }],
          identifier: [{ system: 'urn:e2e', value: `${family}-${i}` }],
        },
      });
    }
    const byName: any = await client.search({
      resourceType: 'Patient',
      searchParams: { family: family.slice(0, 12).toLowerCase(), _count: '2', _total: 'accurate' },
    });
    expect(byName.type).toBe('searchset');
    expect(byName.total).toBe(3);
    expect(byName.entry).toHaveLength(2);
    const page2: any = await client.nextPage({ bundle: byName });
    expect(page2.entry).toHaveLength(1);
    const ids = [...byName.entry, ...page2.entry].map((e: any) => e.resource.id);
    expect(new Set(ids).size).toBe(3);
    const byIdentifier: any = await client.search({
      resourceType: 'Patient',
      searchParams: { identifier: `urn:e2e|${family}-1` },
    });
    expect(byIdentifier.entry.map((e: any) => e.resource.name[0].given[0])).toEqual(['G1']);
  });
});
