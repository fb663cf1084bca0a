import 'reflect-metadata';
import { Controller, Get, Global, Inject, Module, Param, Req } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import type { FastifyRequest } from 'fastify';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalKeyringProvider } from '#crypto';
import { freePort } from '../../../../test/support/net.js';
import { APP_CONFIG, DATABASE, KEY_PROVIDER } from '../app.tokens.js';
import { loadConfig, type AppConfig } from '../config/config.js';
import type { Database } from '../database/database.js';
import { FhirExceptionFilter } from '../http/exception.filter.js';
import { createLogger } from '../http/logger.js';
import { clientKey, freshDatabase, signAssertion, unsignedJwt, type TestClientKey } from './auth.fixtures.js';
import { AuthModule } from './auth.module.js';
import { AuthService } from './auth.service.js';
import { runCommand } from './cli/clients.commands.js';
import { requestDevToken } from './cli/dev-token.js';
import { ClientRepository } from './client.repository.js';
import { DEV_CLIENT_ID, devClientPath } from './dev-client.js';
import { JWT_BEARER } from './token.service.js';

/** Stands in for the lead's FHIR controller: authenticate, then check the scope for a read. */
@Controller('fhir')
class ProbeController {
  constructor(@Inject(AuthService) private readonly auth: AuthService) {}

  @Get(':type')
  async read(@Param('type') type: string, @Req() req: FastifyRequest): Promise<{ client: string }> {
    const who = await this.auth.authenticate(req.headers.authorization);
    who.scopes.assertAllows(type, 'r');
    return { client: who.clientId };
  }
}

let config: AppConfig;
let db: Database;
let app: NestFastifyApplication;
let rsa: TestClientKey;
let ec: TestClientKey;
let tokenUrl: string;
let dir: string | undefined;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'auth-http-'));
  config = loadConfig({ DATA_DIR: dir, LOG_LEVEL: 'silent', PORT: String(await freePort()) });
  tokenUrl = `${config.baseUrl}/auth/token`;
  db = await freshDatabase();

  @Global()
  @Module({
    providers: [
      { provide: APP_CONFIG, useValue: config },
      { provide: DATABASE, useValue: db },
      { provide: KEY_PROVIDER, useValue: LocalKeyringProvider.openOrCreate(join(dir, 'keyring.json')) },
    ],
    exports: [APP_CONFIG, DATABASE, KEY_PROVIDER],
  })
  class CoreModule {}

  @Module({ imports: [CoreModule, AuthModule], controllers: [ProbeController] })
  class TestAppModule {}

  app = await NestFactory.create<NestFastifyApplication>(TestAppModule, new FastifyAdapter(), {
    logger: false,
  });
  app.useGlobalFilters(new FhirExceptionFilter(createLogger({ logLevel: 'silent' })));
  await app.init();
  await app.getHttpAdapter().getInstance().ready();
  await app.listen({ host: config.host, port: config.port });

  rsa = await clientKey('RS384');
  ec = await clientKey('ES384');
  const out: string[] = [];
  const deps = { clients: new ClientRepository(db), out: (l: string) => out.push(l) };
  await runCommand(
    'register',
    {
      id: 'rsa-client',
      name: 'RSA system',
      jwks: JSON.stringify({ keys: [rsa.publicJwk] }),
      scope: 'system/*.cruds',
    },
    deps,
  );
  await runCommand(
    'register',
    {
      id: 'ec-client',
      name: 'EC system',
      jwks: JSON.stringify({ keys: [ec.publicJwk] }),
      scope: 'system/Patient.rs',
    },
    deps,
  );
  expect(out).toHaveLength(2);
});

afterAll(async () => {
  try {
    await app?.close();
    await db?.close();
  } finally {
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
});

async function postToken(body: Record<string, string>, contentType = 'application/x-www-form-urlencoded') {
  const res = await fetch(tokenUrl, {
    method: 'POST',
    headers: { 'content-type': contentType },
    body: contentType.includes('json') ? JSON.stringify(body) : new URLSearchParams(body),
  });
  return { status: res.status, headers: res.headers, json: (await res.json()) as Record<string, unknown> };
}

function tokenForm(assertion: string, scope = 'system/*.rs'): Record<string, string> {
  return {
    grant_type: 'client_credentials',
    client_assertion_type: JWT_BEARER,
    client_assertion: assertion,
    scope,
  };
}

async function fhirRead(type: string, token?: string) {
  const res = await fetch(`${config.baseUrl}/fhir/${type}`, {
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
  });
  return { status: res.status, headers: res.headers, json: (await res.json()) as Record<string, unknown> };
}

const nowS = () => Math.floor(Date.now() / 1000);

describe('discovery', () => {
  it('publishes /.well-known/smart-configuration', async () => {
    const res = await fetch(`${config.baseUrl}/.well-known/smart-configuration`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({
      token_endpoint: tokenUrl,
      jwks_uri: `${config.baseUrl}/.well-known/jwks.json`,
      token_endpoint_auth_methods_supported: ['private_key_jwt'],
      token_endpoint_auth_signing_alg_values_supported: ['RS384', 'ES384'],
      grant_types_supported: ['client_credentials'],
      capabilities: ['client-confidential-asymmetric', 'permission-v2'],
    });
    expect(body.scopes_supported).toContain('system/*.cruds');
  });

  it('publishes the public signing keys only', async () => {
    const res = await fetch(`${config.baseUrl}/.well-known/jwks.json`);
    const jwks = (await res.json()) as { keys: Record<string, unknown>[] };
    expect(jwks.keys.length).toBeGreaterThan(0);
    for (const k of jwks.keys) {
      expect(k.kid).toBeTypeOf('string');
      expect(k.use).toBe('sig');
      for (const priv of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k']) expect(k).not.toHaveProperty(priv);
    }
  });
});

describe('full flow', () => {
  it.each([
    ['RS384', 'rsa-client', 'system/*.rs'],
    ['ES384', 'ec-client', 'system/Patient.rs'],
  ])('%s client gets a token and reads with it', async (_alg, clientId, scope) => {
    const key = clientId === 'rsa-client' ? rsa : ec;
    const res = await postToken(tokenForm(await signAssertion({ clientId, aud: tokenUrl, key })));
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.json).toMatchObject({ token_type: 'bearer', scope });
    expect(Object.keys(res.json).sort()).toEqual(['access_token', 'expires_in', 'scope', 'token_type']);
    expect(res.json.expires_in).toBeLessThanOrEqual(300);
    const read = await fhirRead('Patient', res.json.access_token as string);
    expect(read.status).toBe(200);
    expect(read.json).toEqual({ client: clientId });
  });

  it('a scope that does not cover the interaction gets a 403 OperationOutcome', async () => {
    const res = await postToken(
      tokenForm(await signAssertion({ clientId: 'ec-client', aud: tokenUrl, key: ec })),
    );
    const read = await fhirRead('Observation', res.json.access_token as string);
    expect(read.status).toBe(403);
    expect(read.json).toMatchObject({ resourceType: 'OperationOutcome', issue: [{ code: 'forbidden' }] });
  });

  it('the dev client on the embedded default: key file 0600 and `npm run token` flow', async () => {
    const path = devClientPath(config);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(await new ClientRepository(db).findById(DEV_CLIENT_ID)).toMatchObject({
      enabled: true,
      scopes: 'system/*.cruds',
    });
    const token = await requestDevToken({ config });
    expect((await fhirRead('Encounter', token)).status).toBe(200);
  });
});

describe('token endpoint rejections (RFC 6749 §5.2 JSON)', () => {
  const cases: [string, () => Promise<Record<string, string>>, number, string][] = [
    [
      'alg none',
      async () =>
        tokenForm(
          unsignedJwt(
            { alg: 'none', kid: rsa.kid },
            { iss: 'rsa-client', sub: 'rsa-client', aud: tokenUrl, exp: nowS() + 60, jti: randomUUID() },
          ),
        ),
      401,
      'invalid_client',
    ],
    [
      'HS256 with the public key as secret',
      async () => {
        const { createHmac } = await import('node:crypto');
        const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
        const input = `${enc({ alg: 'HS256', kid: rsa.kid })}.${enc({ iss: 'rsa-client', sub: 'rsa-client', aud: tokenUrl, exp: nowS() + 60, jti: randomUUID() })}`;
        return tokenForm(
          `${input}.${createHmac('sha256', JSON.stringify(rsa.publicJwk)).update(input).digest('base64url')}`,
        );
      },
      401,
      'invalid_client',
    ],
    [
      'expired',
      async () =>
        tokenForm(
          await signAssertion({
            clientId: 'rsa-client',
            aud: tokenUrl,
            key: rsa,
            nowS: nowS() - 400,
            expIn: 60,
          }),
        ),
      401,
      'invalid_client',
    ],
    [
      'exp too far ahead',
      async () =>
        tokenForm(await signAssertion({ clientId: 'rsa-client', aud: tokenUrl, key: rsa, expIn: 3600 })),
      401,
      'invalid_client',
    ],
    [
      'wrong aud',
      async () =>
        tokenForm(await signAssertion({ clientId: 'rsa-client', aud: `${config.baseUrl}/fhir`, key: rsa })),
      401,
      'invalid_client',
    ],
    [
      'unknown client',
      async () => tokenForm(await signAssertion({ clientId: 'ghost', aud: tokenUrl, key: rsa })),
      401,
      'invalid_client',
    ],
    [
      'kid matching no key',
      async () =>
        tokenForm(
          await signAssertion({ clientId: 'rsa-client', aud: tokenUrl, key: { ...rsa, kid: 'other' } }),
        ),
      401,
      'invalid_client',
    ],
    [
      'wrong signature',
      async () =>
        tokenForm(
          await signAssertion({
            clientId: 'rsa-client',
            aud: tokenUrl,
            key: await clientKey('RS384', rsa.kid),
          }),
        ),
      401,
      'invalid_client',
    ],
    [
      'unsupported grant type',
      async () => ({ ...tokenForm('x'), grant_type: 'password' }),
      400,
      'unsupported_grant_type',
    ],
    [
      'scope not allowed',
      async () =>
        tokenForm(
          await signAssertion({ clientId: 'ec-client', aud: tokenUrl, key: ec }),
          'system/Observation.rs',
        ),
      400,
      'invalid_scope',
    ],
  ];

  it.each(cases)('%s', async (_name, build, status, error) => {
    const res = await postToken(await build());
    expect(res.status).toBe(status);
    expect(res.json.error).toBe(error);
    expect(res.json.error_description).toBeTypeOf('string');
    expect(res.json).not.toHaveProperty('resourceType');
  });

  it('a replayed assertion', async () => {
    const a = await signAssertion({ clientId: 'rsa-client', aud: tokenUrl, key: rsa });
    expect((await postToken(tokenForm(a))).status).toBe(200);
    const again = await postToken(tokenForm(a));
    expect(again.status).toBe(401);
    expect(again.json).toMatchObject({
      error: 'invalid_client',
      error_description: expect.stringMatching(/already used/),
    });
  });

  it('a JSON body', async () => {
    const res = await postToken(tokenForm('x'), 'application/json');
    expect(res.status).toBe(400);
    expect(res.json.error).toBe('invalid_request');
  });

  it('a disabled client', async () => {
    const deps = { clients: new ClientRepository(db), out: () => undefined };
    await runCommand('disable', { id: 'ec-client' }, deps);
    const res = await postToken(
      tokenForm(await signAssertion({ clientId: 'ec-client', aud: tokenUrl, key: ec })),
    );
    expect(res.status).toBe(401);
    expect(res.json.error).toBe('invalid_client');
    await runCommand('enable', { id: 'ec-client' }, deps);
  });
});

describe('bearer token rejections on /fhir (401 OperationOutcome)', () => {
  it.each([
    ['no token', undefined],
    ['garbage', 'abc.def.ghi'],
    [
      'alg none',
      unsignedJwt(
        { alg: 'none', typ: 'at+jwt' },
        { iss: 'x', aud: 'y', sub: 'rsa-client', scope: 'system/*.cruds', exp: 9999999999, jti: 'j', iat: 1 },
      ),
    ],
  ])('%s', async (_name, token) => {
    const res = await fhirRead('Patient', token);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer realm=/);
    expect(res.json).toMatchObject({ resourceType: 'OperationOutcome', issue: [{ code: 'login' }] });
  });

  it('a tampered token', async () => {
    const res = await postToken(
      tokenForm(await signAssertion({ clientId: 'ec-client', aud: tokenUrl, key: ec })),
    );
    const [h, p, s] = (res.json.access_token as string).split('.');
    const claims = JSON.parse(Buffer.from(p!, 'base64url').toString()) as Record<string, unknown>;
    const forged = `${h}.${Buffer.from(JSON.stringify({ ...claims, scope: 'system/*.cruds' })).toString('base64url')}.${s}`;
    const read = await fhirRead('Observation', forged);
    expect(read.status).toBe(401);
    expect(read.headers.get('www-authenticate')).toContain('error="invalid_token"');
  });
});
