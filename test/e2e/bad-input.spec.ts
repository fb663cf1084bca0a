import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type RunningGateway } from '../support/gateway.js';

/**
 * Every error is an OperationOutcome with the right status, carries no internals, and a failed write leaves
 * nothing behind. Driven over HTTP against the running server.
 */
let gw: RunningGateway;
let token: string;
const MAX_BODY = 64 * 1024;

beforeAll(async () => {
  gw = await startTestGateway({ MAX_BODY_BYTES: String(MAX_BODY) });
  token = await gw.token('system/*.cruds');
}, 60_000);
afterAll(async () => gw?.close());

async function call(
  method: string,
  path: string,
  opts: { body?: string; headers?: Record<string, string>; auth?: string | null } = {},
) {
  const headers: Record<string, string> = { accept: 'application/fhir+json', ...opts.headers };
  const auth = opts.auth === undefined ? token : opts.auth;
  if (auth !== null) headers.authorization = `Bearer ${auth}`;
  if (opts.body !== undefined && !headers['content-type']) headers['content-type'] = 'application/fhir+json';
  const res = await fetch(`${gw.fhirUrl}/${path}`, { method, headers, body: opts.body });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: text ? JSON.parse(text) : undefined };
}

function expectOutcome(r: Awaited<ReturnType<typeof call>>, status: number) {
  expect(r.status).toBe(status);
  expect(r.headers.get('content-type')).toMatch(/^application\/fhir\+json/);
  expect(r.json.resourceType).toBe('OperationOutcome');
  expect(r.json.issue[0].severity).toBe('error');
  // Never internals: no stack frames, file paths or SQL.
  expect(r.text).not.toMatch(/\bat .+:\d+:\d+|node_modules|\/work\/|SELECT |INSERT /);
}

const patient = (extra: object = {}) =>
  JSON.stringify({ resourceType: 'Patient', name: [{ family: 'Doe' }], ...extra });

async function countVersions(): Promise<number> {
  const { rows } = await gw.gateway.storage.db.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM resource_history',
  );
  return rows[0]!.n;
}

describe('bad input gets the right OperationOutcome', () => {
  it('400 for malformed JSON', async () => {
    expectOutcome(await call('POST', 'Patient', { body: '{"resourceType": "Patient", ' }), 400);
  });

  it('400 when resourceType differs from the URL', async () => {
    const r = await call('POST', 'Patient', { body: JSON.stringify({ resourceType: 'Observation' }) });
    expectOutcome(r, 400);
    expect(r.json.issue[0].expression).toEqual(['resourceType']);
  });

  it('400 when the id in the body differs from the URL, or is missing on update', async () => {
    expectOutcome(await call('PUT', 'Patient/abc', { body: patient({ id: 'xyz' }) }), 400);
    expectOutcome(await call('PUT', 'Patient/abc', { body: patient() }), 400);
  });

  it('401 without a token or with a bad one', async () => {
    const none = await call('GET', 'Patient/abc', { auth: null });
    expectOutcome(none, 401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expectOutcome(await call('GET', 'Patient/abc', { auth: 'not.a.jwt' }), 401);
  });

  it('403 when the scopes do not cover the interaction', async () => {
    const readOnly = await gw.token('system/Patient.rs');
    expectOutcome(await call('POST', 'Patient', { body: patient(), auth: readOnly }), 403);
    expectOutcome(await call('GET', 'Observation/abc', { auth: readOnly }), 403);
  });

  it('400 for a malformed search value, 501 naming what search does not support', async () => {
    const bad = await call('GET', 'Patient?birthdate=1990-13-45');
    expectOutcome(bad, 400);
    expect(bad.json.issue[0].expression).toEqual(['birthdate']);
    const strict = await call('GET', 'Patient?shoe-size=12', { headers: { prefer: 'handling=strict' } });
    expectOutcome(strict, 400);
    const unsupported = await call('GET', 'Patient?_text=x');
    expectOutcome(unsupported, 501);
    expect(unsupported.json.issue[0].expression).toEqual(['_text']);
    const costly = await call('GET', 'Patient?name:contains=x');
    expectOutcome(costly, 400);
    expect(costly.json.issue[0].expression).toEqual(['name:contains']);
    const readOnly = await gw.token('system/Patient.r');
    expectOutcome(await call('GET', 'Patient?family=x', { auth: readOnly }), 403);
  });

  it('404 for an unknown type or id', async () => {
    expectOutcome(await call('GET', 'Pateint/abc'), 404);
    expectOutcome(await call('GET', 'Patient/does-not-exist'), 404);
  });

  it('405 for an interaction the endpoint does not support', async () => {
    const r = await call('POST', 'Patient/abc', { body: patient() });
    expectOutcome(r, 405);
    expect(r.headers.get('allow')).toContain('PUT');
  });

  it('409 when two entries of a transaction act on the same resource', async () => {
    const bundle = {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        {
          resource: { resourceType: 'Patient', id: 'dup', gender: 'male' },
          request: { method: 'PUT', url: 'Patient/dup' },
        },
        { request: { method: 'DELETE', url: 'Patient/dup' } },
      ],
    };
    expectOutcome(await call('POST', '', { body: JSON.stringify(bundle) }), 409);
  });

  it('410 after delete, 412 on a stale If-Match', async () => {
    const created = await call('POST', 'Patient', { body: patient() });
    expect(created.status).toBe(201);
    const id = created.json.id as string;
    expectOutcome(
      await call('PUT', `Patient/${id}`, { body: patient({ id }), headers: { 'if-match': 'W/"7"' } }),
      412,
    );
    expect((await call('DELETE', `Patient/${id}`)).status).toBe(200);
    expectOutcome(await call('GET', `Patient/${id}`), 410);
  });

  it('413 for a body over the configured limit', async () => {
    const big = patient({
      text: {
        status: 'generated',
        div: `<div xmlns="http://www.w3.org/1999/xhtml">${'x'.repeat(MAX_BODY)}</div>`,
      },
    });
    expectOutcome(await call('POST', 'Patient', { body: big }), 413);
  });

  it('415 for a body that is not FHIR JSON', async () => {
    expectOutcome(
      await call('POST', 'Patient', {
        body: '<Patient/>',
        headers: { 'content-type': 'application/fhir+xml' },
      }),
      415,
    );
  });

  it('422 naming the failing element for invalid resources and unknown elements', async () => {
    const r = await call('POST', 'Patient', {
      body: patient({ gender: 'sometimes', favouriteColour: 'blue' }),
    });
    expectOutcome(r, 422);
    const expressions = r.json.issue.flatMap((i: any) => i.expression ?? []);
    expect(expressions).toEqual(expect.arrayContaining(['Patient.gender', 'Patient.favouriteColour']));
  });

  it('a failed transaction writes nothing', async () => {
    const before = await countVersions();
    const bundle = {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        {
          fullUrl: 'urn:uuid:0c3b9f7e-5e3a-4c1e-9d2b-6b1f0e6c2a11',
          resource: { resourceType: 'Patient', name: [{ family: 'Kept?' }] },
          request: { method: 'POST', url: 'Patient' },
        },
        {
          resource: { resourceType: 'Organization', id: 'org-tx', name: 'Also kept?' },
          request: { method: 'PUT', url: 'Organization/org-tx' },
        },
        {
          resource: { resourceType: 'Observation', status: 'not-a-status', code: { text: 'x' } },
          request: { method: 'POST', url: 'Observation' },
        },
      ],
    };
    const r = await call('POST', '', { body: JSON.stringify(bundle) });
    expectOutcome(r, 422);
    expect(r.json.issue[0].diagnostics).toContain('entry 2');
    expect(await countVersions()).toBe(before);
    expectOutcome(await call('GET', 'Organization/org-tx'), 404);
  });
});
