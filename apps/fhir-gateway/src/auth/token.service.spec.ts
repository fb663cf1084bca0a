import { createHmac, randomUUID } from 'node:crypto';
import { createLocalJWKSet, decodeProtectedHeader, exportSPKI, importJWK, jwtVerify } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Database } from '../database/database.js';
import {
  clientKey,
  freshDatabase,
  signAssertion,
  testKeyProvider,
  unsignedJwt,
  type TestClientKey,
} from './auth.fixtures.js';
import { ClientAssertionService } from './client-assertion.service.js';
import { ClientRepository } from './client.repository.js';
import { OAuthError } from './oauth-error.js';
import { SigningKeyRepository } from './signing-key.repository.js';
import { SigningKeyService } from './signing-key.service.js';
import { JWT_BEARER, TokenService } from './token.service.js';

const BASE = 'https://gw.example.org';
const TOKEN_URL = `${BASE}/auth/token`;

let db: Database;
let clients: ClientRepository;
let keys: SigningKeyService;
let tokens: TokenService;
let now: number;
let rsa: TestClientKey;
let ec: TestClientKey;

beforeAll(async () => {
  db = await freshDatabase();
  const clock = () => now;
  clients = new ClientRepository(db);
  keys = new SigningKeyService(new SigningKeyRepository(db), testKeyProvider(), clock);
  await keys.ensureKey();
  tokens = new TokenService(
    new ClientAssertionService(clients, TOKEN_URL, clock),
    clients,
    keys,
    { issuer: BASE, audience: `${BASE}/fhir`, ttlSeconds: 300 },
    clock,
  );
  rsa = await clientKey('RS384');
  ec = await clientKey('ES384');
});

afterAll(async () => db.close());

// One database and one set of keys for the file (RSA key generation is slow); clients and the replay
// store are reset before each test.
beforeEach(async () => {
  now = Date.now();
  await db.exec('DELETE FROM auth_client; DELETE FROM auth_assertion_jti;');
  await clients.insert({
    id: 'rsa-client',
    name: 'RSA',
    jwks: { keys: [rsa.publicJwk] },
    scopes: 'system/*.cruds',
  });
  await clients.insert({
    id: 'ec-client',
    name: 'EC',
    jwks: { keys: [ec.publicJwk] },
    scopes: 'system/Patient.rs',
  });
});

function form(assertion: string, scope = 'system/*.rs'): Record<string, string> {
  return {
    grant_type: 'client_credentials',
    client_assertion_type: JWT_BEARER,
    client_assertion: assertion,
    scope,
  };
}

async function rejects(body: unknown, error: string, description?: RegExp): Promise<OAuthError> {
  const err = await tokens.issue(body).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'expected the token request to fail').toBeInstanceOf(OAuthError);
  const o = err as OAuthError;
  expect(o.error).toBe(error);
  if (description) expect(o.description).toMatch(description);
  return o;
}

const nowS = () => Math.floor(now / 1000);

describe('token endpoint: accepted assertions', () => {
  it.each([['RS384'], ['ES384']])(
    'issues a %s-authenticated access token verifiable with the JWKS',
    async (alg) => {
      const [clientId, key] = alg === 'RS384' ? ['rsa-client', rsa] : ['ec-client', ec];
      const res = await tokens.issue(
        form(await signAssertion({ clientId, aud: TOKEN_URL, key, nowS: nowS() })),
      );
      expect(res.token_type).toBe('bearer');
      expect(res.expires_in).toBeLessThanOrEqual(300);
      expect(res.scope).toBe(alg === 'RS384' ? 'system/*.rs' : 'system/Patient.rs');
      const { payload, protectedHeader } = await jwtVerify(
        res.access_token,
        createLocalJWKSet(await keys.jwks()),
        {
          issuer: BASE,
          audience: `${BASE}/fhir`,
          currentDate: new Date(now),
        },
      );
      expect(protectedHeader.typ).toBe('at+jwt');
      expect(payload.sub).toBe(clientId);
      expect(payload.client_id).toBe(clientId);
      expect(payload.exp! - payload.iat!).toBeLessThanOrEqual(300);
      expect(typeof payload.jti).toBe('string');
    },
  );

  it('grants the intersection of requested and registered scopes', async () => {
    const a = await signAssertion({ clientId: 'ec-client', aud: TOKEN_URL, key: ec, nowS: nowS() });
    const res = await tokens.issue(form(a, 'system/*.cruds system/Observation.rs'));
    expect(res.scope).toBe('system/Patient.cruds'.replace('cruds', 'rs'));
  });

  it('accepts a matching client_id parameter and v1 scopes', async () => {
    const a = await signAssertion({ clientId: 'rsa-client', aud: TOKEN_URL, key: rsa, nowS: nowS() });
    const res = await tokens.issue({ ...form(a, 'system/Patient.read'), client_id: 'rsa-client' });
    expect(res.scope).toBe('system/Patient.rs');
  });

  it('accepts exp exactly five minutes ahead', async () => {
    const a = await signAssertion({
      clientId: 'rsa-client',
      aud: TOKEN_URL,
      key: rsa,
      nowS: nowS(),
      expIn: 300,
    });
    await expect(tokens.issue(form(a))).resolves.toHaveProperty('token_type', 'bearer');
  });

  it('picks the one key whose kid matches among several', async () => {
    const other = await clientKey('RS384');
    await clients.update({
      id: 'rsa-client',
      name: 'RSA',
      jwks: { keys: [other.publicJwk, rsa.publicJwk] },
      scopes: 'system/*.cruds',
    });
    const a = await signAssertion({ clientId: 'rsa-client', aud: TOKEN_URL, key: rsa, nowS: nowS() });
    await expect(tokens.issue(form(a))).resolves.toHaveProperty('access_token');
  });
});

describe('token endpoint: rejected assertions (invalid_client)', () => {
  it('alg none', async () => {
    const a = unsignedJwt(
      { alg: 'none', typ: 'JWT', kid: rsa.kid },
      { iss: 'rsa-client', sub: 'rsa-client', aud: TOKEN_URL, exp: nowS() + 60, jti: randomUUID() },
    );
    await rejects(form(a), 'invalid_client', /RS384 or ES384/);
  });

  it('HS256 signed with the registered public key as the HMAC secret (key confusion)', async () => {
    const pem = await exportSPKI(await importJWK(rsa.publicJwk, 'RS384', { extractable: true }));
    for (const secret of [pem, JSON.stringify(rsa.publicJwk)]) {
      const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
      const input = `${enc({ alg: 'HS256', typ: 'JWT', kid: rsa.kid })}.${enc({
        iss: 'rsa-client',
        sub: 'rsa-client',
        aud: TOKEN_URL,
        exp: nowS() + 60,
        jti: randomUUID(),
      })}`;
      const sig = createHmac('sha256', secret).update(input).digest('base64url');
      await rejects(form(`${input}.${sig}`), 'invalid_client', /RS384 or ES384/);
    }
  });

  it('an allowed key with a weaker algorithm (RS256)', async () => {
    const a = await signAssertion({
      clientId: 'rsa-client',
      aud: TOKEN_URL,
      key: rsa,
      nowS: nowS(),
      header: { alg: 'RS256' },
    });
    await rejects(form(a), 'invalid_client', /RS384 or ES384/);
  });

  it('expired', async () => {
    const a = await signAssertion({
      clientId: 'rsa-client',
      aud: TOKEN_URL,
      key: rsa,
      nowS: nowS() - 600,
      expIn: 60,
    });
    await rejects(form(a), 'invalid_client', /expired/);
  });

  it('exp more than five minutes ahead', async () => {
    const a = await signAssertion({
      clientId: 'rsa-client',
      aud: TOKEN_URL,
      key: rsa,
      nowS: nowS(),
      expIn: 600,
    });
    await rejects(form(a), 'invalid_client', /five minutes/);
  });

  it('exp missing', async () => {
    const a = await signAssertion({
      clientId: 'rsa-client',
      aud: TOKEN_URL,
      key: rsa,
      nowS: nowS(),
      claims: { exp: undefined },
    });
    await rejects(form(a), 'invalid_client', /exp/);
  });

  it('jti missing', async () => {
    const a = await signAssertion({
      clientId: 'rsa-client',
      aud: TOKEN_URL,
      key: rsa,
      nowS: nowS(),
      claims: { jti: undefined },
    });
    await rejects(form(a), 'invalid_client', /jti/);
  });

  it('wrong aud', async () => {
    for (const aud of [`${BASE}/fhir`, 'https://other.example.org/auth/token', `${TOKEN_URL}/`]) {
      const a = await signAssertion({ clientId: 'rsa-client', aud, key: rsa, nowS: nowS() });
      await rejects(form(a), 'invalid_client', /aud/);
    }
  });

  it('unknown client', async () => {
    const a = await signAssertion({ clientId: 'nobody', aud: TOKEN_URL, key: rsa, nowS: nowS() });
    await rejects(form(a), 'invalid_client', /unknown or disabled/);
  });

  it('disabled client', async () => {
    await clients.setEnabled('rsa-client', false);
    const a = await signAssertion({ clientId: 'rsa-client', aud: TOKEN_URL, key: rsa, nowS: nowS() });
    await rejects(form(a), 'invalid_client', /unknown or disabled/);
  });

  it('replayed jti', async () => {
    const a = await signAssertion({ clientId: 'rsa-client', aud: TOKEN_URL, key: rsa, nowS: nowS() });
    await tokens.issue(form(a));
    await rejects(form(a), 'invalid_client', /already used/);
    // The same jti in a fresh assertion is a replay too.
    const jti = randomUUID();
    await tokens.issue(
      form(await signAssertion({ clientId: 'rsa-client', aud: TOKEN_URL, key: rsa, nowS: nowS(), jti })),
    );
    const again = await signAssertion({
      clientId: 'rsa-client',
      aud: TOKEN_URL,
      key: rsa,
      nowS: nowS() + 1,
      jti,
    });
    await rejects(form(again), 'invalid_client', /already used/);
  });

  it('the same assertion sent concurrently is accepted once', async () => {
    const a = await signAssertion({ clientId: 'rsa-client', aud: TOKEN_URL, key: rsa, nowS: nowS() });
    const results = await Promise.allSettled(Array.from({ length: 8 }, () => tokens.issue(form(a))));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results.filter((x) => x.status === 'rejected')) {
      expect(r.reason).toMatchObject({ error: 'invalid_client' });
    }
  });

  it('kid matching no registered key', async () => {
    const a = await signAssertion({
      clientId: 'rsa-client',
      aud: TOKEN_URL,
      key: { ...rsa, kid: 'nope' },
      nowS: nowS(),
    });
    await rejects(form(a), 'invalid_client', /kid matches no/);
  });

  it('kid missing, with one key and with several keys', async () => {
    const other = await clientKey('RS384');
    for (const jwks of [{ keys: [rsa.publicJwk] }, { keys: [rsa.publicJwk, other.publicJwk] }]) {
      await clients.update({ id: 'rsa-client', name: 'RSA', jwks, scopes: 'system/*.cruds' });
      const a = await signAssertion({
        clientId: 'rsa-client',
        aud: TOKEN_URL,
        key: rsa,
        nowS: nowS(),
        header: { kid: undefined },
      });
      expect(decodeProtectedHeader(a).kid).toBeUndefined();
      await rejects(form(a), 'invalid_client', /kid/);
    }
  });

  it('kid naming a key of another type than alg', async () => {
    const a = await signAssertion({
      clientId: 'ec-client',
      aud: TOKEN_URL,
      key: { ...ec, kid: ec.kid },
      nowS: nowS(),
    });
    await clients.update({
      id: 'ec-client',
      name: 'EC',
      jwks: { keys: [{ ...rsa.publicJwk, kid: ec.kid }] },
      scopes: 'system/*.rs',
    });
    await rejects(form(a), 'invalid_client', /kid matches no/);
  });

  it('wrong signature: signed by another key under the registered kid', async () => {
    const attacker = await clientKey('RS384', rsa.kid);
    const a = await signAssertion({ clientId: 'rsa-client', aud: TOKEN_URL, key: attacker, nowS: nowS() });
    await rejects(form(a), 'invalid_client', /signature/);
  });

  it('tampered payload', async () => {
    const a = await signAssertion({ clientId: 'ec-client', aud: TOKEN_URL, key: ec, nowS: nowS() });
    const [h, p, s] = a.split('.');
    const claims = JSON.parse(Buffer.from(p!, 'base64url').toString()) as Record<string, unknown>;
    const forged = `${h}.${Buffer.from(JSON.stringify({ ...claims, exp: nowS() + 290 })).toString('base64url')}.${s}`;
    await rejects(form(forged), 'invalid_client', /signature/);
  });

  it('iss differing from sub, or client_id differing from iss', async () => {
    const a = await signAssertion({
      clientId: 'rsa-client',
      aud: TOKEN_URL,
      key: rsa,
      nowS: nowS(),
      claims: { sub: 'ec-client' },
    });
    await rejects(form(a), 'invalid_client', /iss and sub/);
    const b = await signAssertion({ clientId: 'rsa-client', aud: TOKEN_URL, key: rsa, nowS: nowS() });
    await rejects({ ...form(b), client_id: 'ec-client' }, 'invalid_client', /client_id/);
  });

  it('garbage', async () => {
    await rejects(form('not.a.jwt'), 'invalid_client', /well-formed/);
    await rejects(form('x'.repeat(20_000)), 'invalid_client', /too large/);
  });
});

describe('token endpoint: malformed requests', () => {
  it('wrong or missing grant type', async () => {
    await rejects({}, 'invalid_request', /grant_type/);
    await rejects({ ...form('x'), grant_type: 'authorization_code' }, 'unsupported_grant_type');
  });

  it('missing or wrong assertion type, repeated parameters, missing scope', async () => {
    await rejects(
      { grant_type: 'client_credentials', scope: 'system/*.rs' },
      'invalid_request',
      /client_assertion/,
    );
    await rejects(
      { ...form('x'), client_assertion_type: 'urn:other' },
      'invalid_client',
      /client_assertion_type/,
    );
    await rejects({ ...form('x'), scope: ['system/*.rs', 'system/*.c'] }, 'invalid_request', /once/);
    const a = await signAssertion({ clientId: 'rsa-client', aud: TOKEN_URL, key: rsa, nowS: nowS() });
    await rejects({ ...form(a), scope: undefined }, 'invalid_request', /scope/);
  });

  it('scopes the client is not registered for', async () => {
    const a = await signAssertion({ clientId: 'ec-client', aud: TOKEN_URL, key: ec, nowS: nowS() });
    await rejects(form(a, 'system/Observation.rs'), 'invalid_scope');
    const b = await signAssertion({ clientId: 'ec-client', aud: TOKEN_URL, key: ec, nowS: nowS() });
    await rejects(form(b, 'openid patient/*.rs'), 'invalid_scope');
  });
});

describe('replay store', () => {
  it('drops jtis whose assertions expired, but keeps live ones', async () => {
    await clients.recordJti('rsa-client', 'old', new Date(now - 120_000));
    await clients.recordJti('rsa-client', 'live', new Date(now + 120_000));
    expect(await clients.purgeExpiredJtis(new Date(now - 60_000))).toBe(1);
    expect(await clients.recordJti('rsa-client', 'live', new Date(now + 120_000))).toBe(false);
    expect(await clients.recordJti('rsa-client', 'old', new Date(now + 120_000))).toBe(true);
  });
});
