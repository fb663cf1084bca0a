import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';

/**
 * A SMART backend-services client as an EHR would run one: its own ES384 key pair, a client assertion
 * (private_key_jwt) per token request, client_credentials grant. Tests get their tokens only this way.
 */
export interface TestClient {
  clientId: string;
  kid: string;
  privateKey: CryptoKey;
  publicJwks: { keys: Record<string, unknown>[] };
}

export async function makeTestClient(clientId = `test-${randomUUID()}`): Promise<TestClient> {
  const { publicKey, privateKey } = await generateKeyPair('ES384', { extractable: true });
  const kid = randomUUID();
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'ES384', use: 'sig' };
  return { clientId, kid, privateKey, publicJwks: { keys: [jwk] } };
}

export async function clientAssertion(client: TestClient, tokenUrl: string): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: 'ES384', kid: client.kid, typ: 'JWT' })
    .setIssuer(client.clientId)
    .setSubject(client.clientId)
    .setAudience(tokenUrl)
    .setJti(randomUUID())
    .setIssuedAt()
    .setExpirationTime('4m')
    .sign(client.privateKey);
}

export async function requestToken(
  serverBaseUrl: string,
  client: TestClient,
  scope: string,
): Promise<string> {
  const tokenUrl = `${serverBaseUrl}/auth/token`;
  const res = await fetch(tokenUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: await clientAssertion(client, tokenUrl),
      scope,
    }),
  });
  const body = (await res.json()) as { access_token?: string; error?: string };
  if (!res.ok || !body.access_token)
    throw new Error(`token request failed: ${res.status} ${body.error ?? ''}`);
  return body.access_token;
}
