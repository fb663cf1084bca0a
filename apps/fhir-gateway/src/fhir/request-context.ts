/**
 * Who is asking, carried through the engine (ARCHITECTURE.md, "A request, end to end"). The engine never
 * sees HTTP; the edge builds this from the request and the verified access token.
 */
export type Interaction = 'c' | 'r' | 'u' | 'd' | 's';

export interface ScopeChecker {
  /** Throws FhirError('forbidden') when the granted scopes do not cover the interaction on the type. */
  assertAllows(resourceType: string, interaction: Interaction): void;
  allows(resourceType: string, interaction: Interaction): boolean;
}

export interface RequestContext {
  requestId: string;
  clientId: string;
  scopes: ScopeChecker;
  sourceAddress?: string;
}
