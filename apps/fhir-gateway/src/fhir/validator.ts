import { OperationOutcomeError, validateResource } from '@medplum/core';
import type { OperationOutcomeIssue } from '@medplum/fhirtypes';
import type { R4Definitions } from './definitions.js';
import { FhirError } from './outcomes.js';
import { ID_PATTERN, type AnyResource } from './resource-json.js';

/**
 * Validates against the R4 StructureDefinitions with Medplum's validator: cardinality, types, value sets
 * with required binding, invariants, and unknown elements (rejected). Returns the issues (empty = valid).
 */
export function validationIssues(defs: R4Definitions, resource: unknown): OperationOutcomeIssue[] {
  if (resource === null || typeof resource !== 'object' || Array.isArray(resource)) {
    return [issue('structure', 'the body is not a JSON object', undefined)];
  }
  const type = (resource as { resourceType?: unknown }).resourceType;
  if (typeof type !== 'string' || !defs.resourceTypes.has(type)) {
    return [issue('structure', 'resourceType is missing or not an R4 resource type', 'resourceType')];
  }
  const id = (resource as AnyResource).id;
  if (id !== undefined && (typeof id !== 'string' || !ID_PATTERN.test(id))) {
    return [issue('value', 'id must match [A-Za-z0-9\\-.]{1,64}', `${type}.id`)];
  }
  const bindingIssues = defs.requiredBindings.check(resource as AnyResource);
  try {
    const structural = validateResource(resource as AnyResource).filter(
      (i) => i.severity === 'error' || i.severity === 'fatal',
    );
    return [...structural, ...bindingIssues];
  } catch (err) {
    if (err instanceof OperationOutcomeError) {
      const structural = (err.outcome.issue ?? []).filter(
        (i) => i.severity === 'error' || i.severity === 'fatal',
      );
      return [...structural, ...bindingIssues];
    }
    throw err;
  }
}

export function assertValid(defs: R4Definitions, resource: unknown): void {
  const issues = validationIssues(defs, resource);
  if (issues.length > 0) {
    throw new FhirError('unprocessable', 'the resource is not valid FHIR R4', {
      issues: issues.map(safeIssue),
    });
  }
}

/**
 * Medplum's messages may quote the offending value (e.g. an invalid code). Values can be PHI, and the
 * outcome is logged, so keep only the element path and a value-free message.
 */
function safeIssue(i: OperationOutcomeIssue): OperationOutcomeIssue {
  const text = i.details?.text ?? i.diagnostics ?? 'invalid';
  return {
    severity: 'error',
    code: i.code ?? 'invalid',
    // Property names are schema words and stay; any other quoted text may be a value and goes.
    diagnostics: text.replace(/(property )?"[^"]*"/g, (m, prop?: string) => (prop ? m : '"…"')),
    ...(i.expression ? { expression: i.expression } : {}),
  };
}

function issue(
  code: OperationOutcomeIssue['code'],
  diagnostics: string,
  expression?: string,
): OperationOutcomeIssue {
  return { severity: 'error', code, diagnostics, ...(expression ? { expression: [expression] } : {}) };
}
