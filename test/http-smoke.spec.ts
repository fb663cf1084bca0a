import { Module } from '@nestjs/common';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ACCESS_VERIFIER } from '../apps/fhir-gateway/src/app.providers.js';
import { createGateway, type Gateway } from '../apps/fhir-gateway/src/app.factory.js';
import { loadConfig } from '../apps/fhir-gateway/src/config/config.js';
import { allowAll } from './support/test-context.js';

@Module({
  providers: [
    {
      provide: ACCESS_VERIFIER,
      useValue: { authenticate: async () => ({ clientId: 'x', scopes: allowAll() }) },
    },
  ],
  exports: [ACCESS_VERIFIER],
})
class OpenAuth {}

let gw: Gateway;
beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'smoke-'));
  gw = await createGateway(loadConfig({ DATA_DIR: dir, LOG_LEVEL: 'silent' }), () => OpenAuth);
});
afterAll(async () => gw?.close());

it('serves FHIR over HTTP', async () => {
  const f = gw.app.getHttpAdapter().getInstance();
  const c = await f.inject({
    method: 'POST',
    url: '/fhir/Patient',
    headers: { 'content-type': 'application/fhir+json' },
    payload: JSON.stringify({ resourceType: 'Patient', gender: 'female' }),
  });
  console.log(c.statusCode, c.headers, c.body);
  expect(c.statusCode).toBe(201);
  const bad = await f.inject({
    method: 'POST',
    url: '/fhir/Patient',
    headers: { 'content-type': 'application/fhir+json' },
    payload: '{"resourceType": ',
  });
  console.log(bad.statusCode, bad.body);
  const xml = await f.inject({
    method: 'POST',
    url: '/fhir/Patient',
    headers: { 'content-type': 'application/xml' },
    payload: '<x/>',
  });
  console.log(xml.statusCode, xml.body);
  const nf = await f.inject({ method: 'GET', url: '/nothing' });
  console.log(nf.statusCode, nf.body);
  const meta = await f.inject({ method: 'GET', url: '/fhir/metadata' });
  console.log(meta.statusCode, meta.body.slice(0, 200));
  const hz = await f.inject({ method: 'GET', url: '/readyz' });
  console.log(hz.statusCode, hz.body);
});
