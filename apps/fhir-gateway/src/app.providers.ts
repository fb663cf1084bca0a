import type { ScopeChecker } from './fhir/request-context.js';

/** Injection tokens of the gateway's own services (auth has its own in app.tokens.ts). */
export const STORAGE = Symbol('STORAGE');
export const FHIR_ENGINE = Symbol('FHIR_ENGINE');
export const LOGGER = Symbol('LOGGER');
/** Verifies a bearer token; bound to the SMART AuthService. */
export const ACCESS_VERIFIER = Symbol('ACCESS_VERIFIER');

export interface VerifiedAccess {
  clientId: string;
  scopes: ScopeChecker;
}

export interface AccessVerifier {
  authenticate(authorizationHeader: string | undefined): Promise<VerifiedAccess>;
}
