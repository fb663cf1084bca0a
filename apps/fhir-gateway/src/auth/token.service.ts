import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import type { ClientAssertionService } from './client-assertion.service.js';
import type { ClientRepository } from './client.repository.js';
import { OAuthError } from './oauth-error.js';
import { ScopeSet } from './scope-set.js';
import type { SigningKeyService } from './signing-key.service.js';

export const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
/** RFC 9068: the media type of a JWT access token, so it cannot be mistaken for an ID token or assertion. */
export const ACCESS_TOKEN_TYP = 'at+jwt';

/** https://hl7.org/fhir/smart-app-launch/backend-services.html#response-1 */
export interface TokenResponse {
  access_token: string;
  token_type: 'bearer';
  expires_in: number;
  scope: string;
}

export interface TokenSettings {
  /** The access token issuer: the server's base URL. */
  issuer: string;
  /** The access token audience: the FHIR base URL. */
  audience: string;
  ttlSeconds: number;
}

/** The `client_credentials` grant with a `private_key_jwt` client assertion (SMART backend services). */
export class TokenService {
  private lastPurge = 0;

  constructor(
    private readonly assertions: ClientAssertionService,
    private readonly clients: ClientRepository,
    private readonly keys: SigningKeyService,
    private readonly settings: TokenSettings,
    private readonly now: () => number = Date.now,
  ) {}

  /** form is the parsed application/x-www-form-urlencoded body. */
  async issue(form: unknown): Promise<TokenResponse & { client_id: string }> {
    const grantType = param(form, 'grant_type');
    if (grantType === undefined) throw new OAuthError('invalid_request', 'grant_type is required');
    if (grantType !== 'client_credentials') {
      throw new OAuthError('unsupported_grant_type', 'only client_credentials is supported');
    }
    const assertionType = param(form, 'client_assertion_type');
    const assertion = param(form, 'client_assertion');
    if (assertionType === undefined || assertion === undefined) {
      throw new OAuthError('invalid_request', 'client_assertion_type and client_assertion are required');
    }
    if (assertionType !== JWT_BEARER)
      throw new OAuthError('invalid_client', `client_assertion_type must be ${JWT_BEARER}`);
    const scope = param(form, 'scope');
    if (scope === undefined) throw new OAuthError('invalid_request', 'scope is required');

    await this.purgeJtisNowAndThen();
    const client = await this.assertions.verify(assertion, param(form, 'client_id'));

    const requested = ScopeSet.parse(scope);
    if (requested.isEmpty()) throw new OAuthError('invalid_scope', 'request at least one system/ scope');
    const granted = requested.intersect(ScopeSet.parse(client.scopes));
    if (granted.isEmpty())
      throw new OAuthError('invalid_scope', 'none of the requested scopes is allowed for this client');

    const signer = await this.keys.signer();
    const iat = Math.floor(this.now() / 1000);
    const ttl = Math.min(this.settings.ttlSeconds, 300);
    const grantedScope = granted.toString();
    const accessToken = await new SignJWT({ scope: grantedScope, client_id: client.id })
      .setProtectedHeader({ alg: signer.alg, kid: signer.kid, typ: ACCESS_TOKEN_TYP })
      .setIssuer(this.settings.issuer)
      .setAudience(this.settings.audience)
      .setSubject(client.id)
      .setJti(randomUUID())
      .setIssuedAt(iat)
      .setExpirationTime(iat + ttl)
      .sign(signer.key);
    return {
      access_token: accessToken,
      token_type: 'bearer',
      expires_in: ttl,
      scope: grantedScope,
      client_id: client.id,
    };
  }

  private async purgeJtisNowAndThen(): Promise<void> {
    const now = this.now();
    if (now - this.lastPurge < 60_000) return;
    this.lastPurge = now;
    await this.clients.purgeExpiredJtis(new Date(now - 60_000));
  }
}

/** RFC 6749 §3.2: parameters must not be repeated; a repeated one is a malformed request. */
function param(form: unknown, name: string): string | undefined {
  if (form === null || typeof form !== 'object') return undefined;
  const v = (form as Record<string, unknown>)[name];
  if (v === undefined || v === '') return undefined;
  if (typeof v !== 'string')
    throw new OAuthError('invalid_request', `${name} must be given once, as a string`);
  return v;
}
