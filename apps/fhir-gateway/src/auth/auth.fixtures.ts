import { randomBytes, randomUUID } from 'node:crypto';
import { EnvKeyProvider } from '#crypto';
import {
  SignJWT,
  calculateJwkThumbprint,
  exportJWK,
  generateKeyPair,
  importJWK,
  type CryptoKey,
  type JWK,
  type JWTHeaderParameters,
} from 'jose';
import { openTestDatabase } from '../../../../test/support/storage.js';
import type { Database } from '../database/database.js';
import { publicPart, type PublicJwk, type SigningAlg } from './jwks.js';

/**
 * Test support only: fresh migrated databases, client key pairs and signed client assertions.
 *
 * In-memory PGlite by default; with TEST_DATABASE_URL (set by .ci/run and `npm run test:pg`) a fresh
 * database of its own on that Postgres server, dropped again by close().
 */
export async function freshDatabase(): Promise<Database> {
  return openTestDatabase();
}

export function testKeyProvider(): EnvKeyProvider {
  return new EnvKeyProvider(`test-1:${randomBytes(32).toString('base64')}`);
}

export interface TestClientKey {
  alg: SigningAlg;
  kid: string;
  privateKey: CryptoKey;
  privateJwk: JWK;
  publicJwk: PublicJwk;
}

export async function clientKey(alg: SigningAlg, kid?: string): Promise<TestClientKey> {
  const pair = await generateKeyPair(alg, { extractable: true });
  const pub = await exportJWK(pair.publicKey);
  const id = kid ?? (await calculateJwkThumbprint(pub));
  return {
    alg,
    kid: id,
    privateKey: pair.privateKey,
    privateJwk: await exportJWK(pair.privateKey),
    publicJwk: publicPart(pub, id, alg),
  };
}

export interface AssertionOptions {
  clientId: string;
  aud: string;
  key: TestClientKey;
  /** Seconds from now; default 240. */
  expIn?: number;
  jti?: string;
  header?: Record<string, unknown>;
  claims?: Record<string, unknown>;
  nowS?: number;
}

export async function signAssertion(o: AssertionOptions): Promise<string> {
  const now = o.nowS ?? Math.floor(Date.now() / 1000);
  // Built by hand so that a test can override or drop (undefined) any standard claim or header field.
  const claims = dropUndefined({
    iss: o.clientId,
    sub: o.clientId,
    aud: o.aud,
    iat: now,
    exp: now + (o.expIn ?? 240),
    jti: o.jti ?? randomUUID(),
    ...o.claims,
  });
  const header = dropUndefined({ alg: o.key.alg, kid: o.key.kid, typ: 'JWT', ...o.header });
  const key =
    o.key.alg === (header.alg as string)
      ? o.key.privateKey
      : await importJWK(o.key.privateJwk, header.alg as string);
  return new SignJWT(claims).setProtectedHeader(header as JWTHeaderParameters).sign(key);
}

function dropUndefined(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

/** An unsigned ("alg: none") JWT, built by hand since jose refuses to make one. */
export function unsignedJwt(header: Record<string, unknown>, claims: Record<string, unknown>): string {
  const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${enc(header)}.${enc(claims)}.`;
}
