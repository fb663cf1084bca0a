/**
 * Errors of the token endpoint, answered as RFC 6749 §5.2 JSON (`{"error", "error_description"}`), which
 * is what OAuth clients parse there, not as FHIR OperationOutcomes. Descriptions must be safe to show the
 * caller: they name the failed check, never a secret or a token.
 */
export type OAuthErrorCode =
  | 'invalid_request'
  | 'invalid_client'
  | 'invalid_grant'
  | 'unauthorized_client'
  | 'unsupported_grant_type'
  | 'invalid_scope';

export class OAuthError extends Error {
  readonly status: number;

  constructor(
    readonly error: OAuthErrorCode,
    readonly description: string,
  ) {
    super(description);
    this.name = 'OAuthError';
    // SMART backend services answers every failed client authentication with invalid_client; 401 tells
    // the client that its credentials, not the request shape, were refused.
    this.status = error === 'invalid_client' ? 401 : 400;
  }

  toJSON(): { error: OAuthErrorCode; error_description: string } {
    return { error: this.error, error_description: this.description };
  }
}
