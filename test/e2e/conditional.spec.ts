import { randomUUID } from 'node:crypto';
import { Client, RESPONSE_KEY } from 'fhir-kit-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type RunningGateway } from '../support/gateway.js';

/**
 * Conditional interactions (R4 http.html#ccreate, #cond-update, #3.1.0.7.1, #trules) as an EHR sends them:
 * a stock FHIR client (fhir-kit-client) over HTTP with a SMART token, on PGlite or TEST_DATABASE_URL.
 */
let gw: RunningGateway;
let client: Client;
const SYS = 'urn:e2e:mrn';
const logLines: string[] = [];
/** Every identifier value sent: criteria may be PHI, so none of them may reach a log line. */
const sent: string[] = [];

beforeAll(async () => {
  gw = await startTestGateway(
    { LOG_LEVEL: 'debug' },
    { logDestination: { write: (line: string) => void logLines.push(line) } },
  );
  client = new Client({ baseUrl: gw.fhirUrl, bearerToken: await gw.token('system/*.cruds') });
}, 60_000);
afterAll(async () => gw?.close());

const statusOf = (r: unknown) => (r as Record<string, Response>)[RESPONSE_KEY]!.status;
const headerOf = (r: unknown, name: string) =>
  (r as Record<string, Response>)[RESPONSE_KEY]!.headers.get(name);
const fhirError = async (p: Promise<unknown>): Promise<{ status: number; outcome: any }> => {
  try {
    await p;
  } catch (e: any) {
    return { status: e.response?.status, outcome: e.response?.data };
  }
  throw new Error('expected the request to fail');
};
const mrn = () => {
  const value = `E2E-${randomUUID().slice(0, 8)}`;
  sent.push(value);
  return value;
};
const patient = (value: string, extra: object = {}) => ({
  resourceType: 'Patient',
  identifier: [{ system: SYS, value }],
  ...extra,
});
const matches = async (value: string): Promise<string[]> => {
  const bundle: any = await client.search({
    resourceType: 'Patient',
    searchParams: { identifier: `${SYS}|${value}` },
  });
  return (bundle.entry ?? []).map((e: any) => e.resource.id);
};

describe('conditional interactions with fhir-kit-client', () => {
  it('conditional create with If-None-Exist: 201, then 200 with the same resource, then 412 on two', async () => {
    const value = mrn();
    const ifNoneExist = { 'If-None-Exist': `identifier=${SYS}|${value}` };
    const created: any = await client.create({
      resourceType: 'Patient',
      body: patient(value),
      options: { headers: ifNoneExist },
    });
    expect(statusOf(created)).toBe(201);

    const again: any = await client.create({
      resourceType: 'Patient',
      body: patient(value, { active: true }),
      options: { headers: ifNoneExist },
    });
    expect(statusOf(again)).toBe(200);
    expect(again.id).toBe(created.id);
    expect(again.meta.versionId).toBe('1');
    expect(headerOf(again, 'etag')).toBe('W/"1"');
    expect(headerOf(again, 'location')).toBe(`${gw.fhirUrl}/Patient/${created.id}/_history/1`);

    await client.create({ resourceType: 'Patient', body: patient(value) });
    const several = await fhirError(
      client.create({ resourceType: 'Patient', body: patient(value), options: { headers: ifNoneExist } }),
    );
    expect(several.status).toBe(412);
    expect(several.outcome.resourceType).toBe('OperationOutcome');
    expect(JSON.stringify(several.outcome)).not.toContain(value);

    const empty = await fhirError(
      client.create({
        resourceType: 'Patient',
        body: patient(value),
        options: { headers: { 'If-None-Exist': '' } },
      }),
    );
    expect(empty.status).toBe(400);
  });

  it('conditional update (searchParams) and conditional delete', async () => {
    const value = mrn();
    const created: any = await client.update({
      resourceType: 'Patient',
      searchParams: { identifier: `${SYS}|${value}` },
      body: patient(value),
    });
    expect(statusOf(created)).toBe(201);
    const updated: any = await client.update({
      resourceType: 'Patient',
      searchParams: { identifier: `${SYS}|${value}` },
      body: patient(value, { active: true }),
    });
    expect(statusOf(updated)).toBe(200);
    expect(updated.id).toBe(created.id);
    expect(updated.meta.versionId).toBe('2');

    const deleted: any = await client.request(`Patient?identifier=${encodeURIComponent(`${SYS}|${value}`)}`, {
      method: 'DELETE',
    });
    expect(deleted.resourceType).toBe('OperationOutcome');
    expect(await matches(value)).toEqual([]);
    const everything = await fhirError(client.request('Patient', { method: 'DELETE' }));
    expect(everything.status).toBe(400);
  });

  it('transaction with a conditional create, a conditional reference and a conditional update', async () => {
    const existing = mrn();
    const existingPatient: any = await client.create({ resourceType: 'Patient', body: patient(existing) });
    const fresh = mrn();
    const res: any = await client.transaction({
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          {
            fullUrl: 'urn:uuid:7c2f3a8e-5d0b-4f5e-9a57-0d3b8d1e2f01',
            resource: patient(fresh),
            request: { method: 'POST', url: 'Patient', ifNoneExist: `identifier=${SYS}|${fresh}` },
          },
          {
            resource: {
              resourceType: 'Encounter',
              status: 'finished',
              class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
              subject: { reference: `Patient?identifier=${SYS}|${existing}` },
            },
            request: { method: 'POST', url: 'Encounter' },
          },
          {
            resource: patient(fresh, { active: true }),
            request: { method: 'PUT', url: `Patient?identifier=${SYS}|${fresh}` },
          },
        ],
      },
    });
    expect(res.type).toBe('transaction-response');
    expect(res.entry.map((e: any) => e.response.status)).toEqual(['201 Created', '201 Created', '200 OK']);
    const freshId = res.entry[0].resource.id;
    expect(res.entry[1].resource.subject.reference).toBe(`Patient/${existingPatient.id}`);
    expect(res.entry[2].resource.id).toBe(freshId);
    expect(res.entry[2].resource.active).toBe(true);
    expect(await matches(fresh)).toEqual([freshId]);

    // A conditional reference that matches nothing fails the whole transaction: the Patient is not written.
    const unresolved = mrn();
    const failed = await fhirError(
      client.transaction({
        body: {
          resourceType: 'Bundle',
          type: 'transaction',
          entry: [
            { resource: patient(unresolved), request: { method: 'POST', url: 'Patient' } },
            {
              resource: {
                resourceType: 'Encounter',
                status: 'finished',
                class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
                subject: { reference: `Patient?identifier=${SYS}|${mrn()}` },
              },
              request: { method: 'POST', url: 'Encounter' },
            },
          ],
        },
      }),
    );
    expect(failed.status).toBe(412);
    expect(failed.outcome.resourceType).toBe('OperationOutcome');
    expect(await matches(unresolved)).toEqual([]);
  });

  it('logs none of the criteria values', () => {
    expect(logLines.length).toBeGreaterThan(10);
    const logs = logLines.join('\n');
    for (const value of sent) expect(logs).not.toContain(value);
  });

  it('the CapabilityStatement declares the conditional interactions', async () => {
    const cs: any = await client.capabilityStatement();
    const p = cs.rest[0].resource.find((r: any) => r.type === 'Patient');
    expect(p).toMatchObject({
      conditionalCreate: true,
      conditionalUpdate: true,
      conditionalDelete: 'single',
    });
  });
});
