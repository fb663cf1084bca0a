import { createHmac } from 'node:crypto';
import { SignJWT, exportSPKI, importJWK } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Database } from '../database/database.js';
import { FhirError } from '../fhir/outcomes.js';
import { clientKey, freshDatabase, signAssertion, testKeyProvider, unsignedJwt } from './auth.fixtures.js';
import { AuthService } from './auth.service.js';
import { ClientAssertionService } from './client-assertion.service.js';
import { ClientRepository } from './client.repository.js';
import { SigningKeyRepository } from './signing-key.repository.js';
import { SigningKeyService } from './signing-key.service.js';
import { JWT_BEARER, TokenService } from './token.service.js';

const BASE = 'https://gw.example.org';
const TOKEN_URL = `${BASE}/auth/token`;
const settings = { issuer: BASE, audience: `${BASE}/fhir`, ttlSeconds: 300 };

let db: Database;
let clients: ClientRepository;
let keys: SigningKeyService;
let tokens: TokenService;
let auth: AuthService;
let now: number;
const clock = () => now;
const nowS = () => Math.floor(now / 1000);
let key: Awaited<ReturnType<typeof clientKey>>;

beforeAll(async () => {
  db = await freshDatabase();
  clients = new ClientRepository(db);
  keys = new SigningKeyService(new SigningKeyRepository(db), testKeyProvider(), clock);
  now = Date.now();
  await keys.ensureKey();
  tokens = new TokenService(
    new ClientAssertionService(clients, TOKEN_URL, clock),
    clients,
    keys,
    settings,
    clock,
  );
  key = await clientKey('ES384');
  await clients.insert({
    id: 'c1',
    name: 'c1',
    jwks: { keys: [key.publicJwk] },
    scopes: 'system/Patient.rs',
  });
});
afterAll(async () => db.close());

beforeEach(() => {
  now = Date.now();
  auth = new AuthService(keys, clients, settings, clock);
});

async function accessToken(scope = 'system/Patient.rs'): Promise<string> {
  const assertion = await signAssertion({ clientId: 'c1', aud: TOKEN_URL, key, nowS: nowS() });
  const res = await tokens.issue({
    grant_type: 'client_credentials',
    client_assertion_type: JWT_BEARER,
    client_assertion: assertion,
    scope,
  });
  return res.access_token;
}

async function unauthorized(header: string | undefined, message?: RegExp): Promise<FhirError> {
  const err = await auth.authenticate(header).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'expected authentication to fail').toBeInstanceOf(FhirError);
  const f = err as FhirError;
  expect(f.status).toBe(401);
  expect(f.outcome.resourceType).toBe('OperationOutcome');
  expect(f.headers['www-authenticate']).toMatch(/^Bearer realm="https:\/\/gw\.example\.org\/fhir"/);
  if (message) expect(f.message).toMatch(message);
  return f;
}

describe('AuthService.authenticate', () => {
  it('returns the client, its scopes and the token id', async () => {
    const token = await accessToken();
    const who = await auth.authenticate(`Bearer ${token}`);
    expect(who.clientId).toBe('c1');
    expect(who.scopes.allows('Patient', 'r')).toBe(true);
    expect(who.scopes.allows('Patient', 'c')).toBe(false);
    expect(who.tokenId).toMatch(/^[0-9a-f-]{36}$/);
    // Case-insensitive scheme, and cached the second time.
    expect((await auth.authenticate(`bearer ${token}`)).tokenId).toBe(who.tokenId);
  });

  it('missing or malformed header', async () => {
    const f = await unauthorized(undefined, /required/);
    expect(f.headers['www-authenticate']).not.toContain('error=');
    await unauthorized('Basic dXNlcjpwYXNz', /malformed/);
    await unauthorized('Bearer', /malformed/);
    await unauthorized('Bearer a b', /malformed/);
    await unauthorized('Bearer not-a-jwt', /invalid access token/);
  });

  it('expired', async () => {
    const token = await accessToken();
    await auth.authenticate(`Bearer ${token}`);
    now += 301_000;
    const f = await unauthorized(`Bearer ${token}`, /expired/);
    expect(f.headers['www-authenticate']).toContain('error="invalid_token"');
  });

  it('wrong audience or issuer, even when signed by the server key', async () => {
    const signer = await keys.signer();
    for (const [iss, aud] of [
      [BASE, `${BASE}/other`],
      [BASE, TOKEN_URL],
      ['https://evil.example.org', `${BASE}/fhir`],
    ]) {
      const t = await new SignJWT({ scope: 'system/*.cruds', client_id: 'c1' })
        .setProtectedHeader({ alg: signer.alg, kid: signer.kid, typ: 'at+jwt' })
        .setIssuer(iss!)
        .setAudience(aud!)
        .setSubject('c1')
        .setJti('x')
        .setIssuedAt(nowS())
        .setExpirationTime(nowS() + 60)
        .sign(signer.key);
      await unauthorized(`Bearer ${t}`, /invalid access token/);
    }
  });

  it('a client assertion is not an access token (typ)', async () => {
    const signer = await keys.signer();
    const t = await new SignJWT({ scope: 'system/*.cruds', client_id: 'c1' })
      .setProtectedHeader({ alg: signer.alg, kid: signer.kid, typ: 'JWT' })
      .setIssuer(BASE)
      .setAudience(`${BASE}/fhir`)
      .setSubject('c1')
      .setJti('x')
      .setIssuedAt(nowS())
      .setExpirationTime(nowS() + 60)
      .sign(signer.key);
    await unauthorized(`Bearer ${t}`);
  });

  it('tampered payload (scope widened)', async () => {
    const [h, p, s] = (await accessToken()).split('.');
    const claims = JSON.parse(Buffer.from(p!, 'base64url').toString()) as Record<string, unknown>;
    const forged = `${h}.${Buffer.from(JSON.stringify({ ...claims, scope: 'system/*.cruds' })).toString('base64url')}.${s}`;
    await unauthorized(`Bearer ${forged}`, /invalid access token/);
  });

  it('alg none', async () => {
    const { kid } = await keys.signer();
    const t = unsignedJwt(
      { alg: 'none', kid, typ: 'at+jwt' },
      {
        iss: BASE,
        aud: `${BASE}/fhir`,
        sub: 'c1',
        client_id: 'c1',
        scope: 'system/*.cruds',
        jti: 'x',
        iat: nowS(),
        exp: nowS() + 60,
      },
    );
    await unauthorized(`Bearer ${t}`);
  });

  it('HS384 signed with the server public key as HMAC secret (key confusion)', async () => {
    const { kid } = await keys.signer();
    const pub = (await keys.jwks()).keys[0]!;
    const pem = await exportSPKI(await importJWK(pub, pub.alg, { extractable: true }));
    const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
    for (const secret of [pem, JSON.stringify(pub)]) {
      const input = `${enc({ alg: 'HS384', kid, typ: 'at+jwt' })}.${enc({
        iss: BASE,
        aud: `${BASE}/fhir`,
        sub: 'c1',
        client_id: 'c1',
        scope: 'system/*.cruds',
        jti: 'x',
        iat: nowS(),
        exp: nowS() + 60,
      })}`;
      await unauthorized(`Bearer ${input}.${createHmac('sha384', secret).update(input).digest('base64url')}`);
    }
  });

  it('a token of another server (other keys, same kid) fails', async () => {
    const other = await clientKey('RS384', (await keys.signer()).kid);
    const t = await new SignJWT({ scope: 'system/*.cruds', client_id: 'c1' })
      .setProtectedHeader({ alg: 'RS384', kid: other.kid, typ: 'at+jwt' })
      .setIssuer(BASE)
      .setAudience(`${BASE}/fhir`)
      .setSubject('c1')
      .setJti('x')
      .setIssuedAt(nowS())
      .setExpirationTime(nowS() + 60)
      .sign(other.privateKey);
    await unauthorized(`Bearer ${t}`);
  });

  it('a disabled client loses access within seconds', async () => {
    const token = await accessToken();
    await auth.authenticate(`Bearer ${token}`);
    await clients.setEnabled('c1', false);
    now += 6_000;
    await unauthorized(`Bearer ${token}`);
    await clients.setEnabled('c1', true);
  });
});

describe('signing key rotation', () => {
  it('old tokens verify after a rotation; new ones use the new key; retiring the old key ends them', async () => {
    const before = await accessToken();
    const oldKid = (await keys.signer()).kid;
    const newKid = await keys.rotate('ES384');
    expect(newKid).not.toBe(oldKid);
    expect((await keys.jwks()).keys.map((k) => k.kid)).toEqual([newKid, oldKid]);
    const after = await accessToken();
    expect(JSON.parse(Buffer.from(after.split('.')[0]!, 'base64url').toString()).kid).toBe(newKid);
    await expect(auth.authenticate(`Bearer ${before}`)).resolves.toHaveProperty('clientId', 'c1');
    await expect(auth.authenticate(`Bearer ${after}`)).resolves.toHaveProperty('clientId', 'c1');
    await keys.retire(oldKid);
    const fresh = new AuthService(keys, clients, settings, clock);
    await expect(fresh.authenticate(`Bearer ${before}`)).rejects.toBeInstanceOf(FhirError);
    await expect(fresh.authenticate(`Bearer ${after}`)).resolves.toHaveProperty('clientId', 'c1');
    await expect(keys.retire(newKid)).rejects.toThrow(/only signing key/);
  });

  it('the sealed private key is useless without its KEK', async () => {
    const peer = new SigningKeyService(new SigningKeyRepository(db), testKeyProvider(), clock);
    // A different KEK cannot unseal the private key: the sealed key is useless without the key provider.
    await expect(peer.signer()).rejects.toThrow();
  });
});
