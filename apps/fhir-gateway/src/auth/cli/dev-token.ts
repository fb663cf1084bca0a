import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import type { AppConfig } from '../../config/config.js';
import { DEV_CLIENT_SCOPE, devClientPath, readDevClientFile } from '../dev-client.js';
import { importAsymmetric } from '../jwks.js';
import { JWT_BEARER } from '../token.service.js';

export class DevTokenError extends Error {}

/**
 * Gets an access token for the dev client the real way (SMART backend services): discovery, a signed
 * client assertion, the token endpoint. Used by `npm run token`; nothing is minted locally.
 */
export async function requestDevToken(opts: {
  config: Pick<AppConfig, 'dataDir' | 'baseUrl'>;
  scope?: string;
  fetchFn?: typeof fetch;
}): Promise<string> {
  const fetchFn = opts.fetchFn ?? fetch;
  const path = devClientPath(opts.config);
  const file = readDevClientFile(path);
  if (!file) {
    throw new DevTokenError(
      `no dev client key at ${path}. Start the gateway once on the embedded default (npm start, without ` +
        'DATABASE_URL) and it will create one; with a real Postgres, register a client with npm run clients.',
    );
  }
  const base = opts.config.baseUrl;
  const discovery = await call(fetchFn, `${base}/.well-known/smart-configuration`, { method: 'GET' }, base);
  const tokenEndpoint = (discovery as { token_endpoint?: unknown }).token_endpoint;
  if (typeof tokenEndpoint !== 'string')
    throw new DevTokenError('the SMART configuration has no token_endpoint');

  const now = Math.floor(Date.now() / 1000);
  const assertion = await new SignJWT({})
    .setProtectedHeader({ alg: file.alg, kid: file.kid, typ: 'JWT' })
    .setIssuer(file.client_id)
    .setSubject(file.client_id)
    .setAudience(tokenEndpoint)
    .setIssuedAt(now)
    .setExpirationTime(now + 60)
    .setJti(randomUUID())
    .sign(await importAsymmetric(file.private_jwk, file.alg));
  const body = new URLSearchParams({
    grant_type: 'client_credentials',
    client_assertion_type: JWT_BEARER,
    client_assertion: assertion,
    scope: opts.scope ?? DEV_CLIENT_SCOPE,
  });
  const res = await call(
    fetchFn,
    tokenEndpoint,
    { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body },
    base,
  );
  const token = (res as { access_token?: unknown }).access_token;
  if (typeof token !== 'string')
    throw new DevTokenError('the token endpoint answered without an access_token');
  return token;
}

async function call(fetchFn: typeof fetch, url: string, init: RequestInit, base: string): Promise<unknown> {
  let res: Response;
  try {
    res = await fetchFn(url, { ...init, signal: AbortSignal.timeout(10_000) });
  } catch {
    throw new DevTokenError(
      `cannot reach the gateway at ${base}; is it running (npm start)? Set BASE_URL if elsewhere.`,
    );
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    const e = json as { error?: unknown; error_description?: unknown } | undefined;
    const detail =
      typeof e?.error === 'string'
        ? `${e.error}: ${typeof e.error_description === 'string' ? e.error_description : ''}`
        : `HTTP ${res.status}`;
    throw new DevTokenError(`${new URL(url).pathname} failed (${detail})`);
  }
  if (json === undefined) throw new DevTokenError(`${new URL(url).pathname} did not answer JSON`);
  return json;
}
