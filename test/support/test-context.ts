import type {
  Interaction,
  RequestContext,
  ScopeChecker,
} from '../../apps/fhir-gateway/src/fhir/request-context.js';
import { FhirError } from '../../apps/fhir-gateway/src/fhir/outcomes.js';

/** For engine unit tests only; the e2e suites go through real SMART tokens. */
export function allowAll(): ScopeChecker {
  return { allows: () => true, assertAllows: () => undefined };
}

export function allowOnly(grants: Record<string, Interaction[]>): ScopeChecker {
  const allows = (type: string, i: Interaction) => (grants[type] ?? grants['*'] ?? []).includes(i);
  return {
    allows,
    assertAllows: (type, i) => {
      if (!allows(type, i)) throw new FhirError('forbidden', 'scope does not allow this');
    },
  };
}

export function testContext(scopes: ScopeChecker = allowAll()): RequestContext {
  return { requestId: 'test', clientId: 'test-client', scopes };
}
