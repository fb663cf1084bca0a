import { evalFhirPath } from '@medplum/core';
import type { Resource } from '@medplum/fhirtypes';
import type { R4Definitions } from './definitions.js';

export type AnyResource = Resource & { id?: string; [key: string]: unknown };

/** FHIR id: https://hl7.org/fhir/R4/datatypes.html#id */
export const ID_PATTERN = /^[A-Za-z0-9\-.]{1,64}$/;

/**
 * The bytes that are stored and later served unchanged. meta.versionId and meta.lastUpdated are the
 * server's; resourceType, id and meta lead so the bytes read naturally.
 */
export function withServerMeta(
  resource: AnyResource,
  id: string,
  versionId: number,
  lastUpdated: string,
): AnyResource {
  const { resourceType, id: _ignored, meta, ...rest } = resource;
  const { versionId: _v, lastUpdated: _l, ...clientMeta } = meta ?? {};
  return {
    resourceType,
    id,
    meta: { ...clientMeta, versionId: String(versionId), lastUpdated },
    ...rest,
  } as AnyResource;
}

/**
 * A literal relative reference "Type/id", optionally versioned (R4 references.html#literal). Absolute URLs
 * point at other servers and are not local resources; the search index keeps them as plain URLs.
 */
export function parseReference(ref: string): { type: string; id: string } | undefined {
  const m = /^([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/[A-Za-z0-9\-.]{1,64})?$/.exec(ref);
  return m ? { type: m[1]!, id: m[2]! } : undefined;
}

/** Every literal reference "Type/id" in the resource (contained and absolute URLs ignored). */
export function collectReferences(resource: unknown): { type: string; id: string }[] {
  const found = new Map<string, { type: string; id: string }>();
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) {
      for (const n of node) visit(n);
    } else if (node !== null && typeof node === 'object') {
      for (const [key, value] of Object.entries(node)) {
        if (key === 'reference' && typeof value === 'string') {
          const ref = parseReference(value);
          if (ref) found.set(`${ref.type}/${ref.id}`, ref);
        } else if (key !== 'contained') {
          visit(value);
        }
      }
    }
  };
  visit(resource);
  return [...found.values()];
}

/**
 * Patient compartments the resource belongs to, per the R4 Patient CompartmentDefinition
 * (https://hl7.org/fhir/R4/compartmentdefinition-patient.html).
 */
export function patientCompartments(defs: R4Definitions, resource: AnyResource, id: string): string[] {
  if (resource.resourceType === 'Patient') return [id];
  const exprs = defs.patientCompartment.get(resource.resourceType);
  if (!exprs) return [];
  const ids = new Set<string>();
  for (const expr of exprs) {
    for (const value of evalFhirPath(expr, resource)) {
      const ref = (value as { reference?: unknown } | undefined)?.reference;
      // The same reading of a reference as search's (parseReference): a versioned reference names the
      // patient, an absolute URL is another server's.
      const local = typeof ref === 'string' ? parseReference(ref) : undefined;
      if (local?.type === 'Patient') ids.add(local.id);
    }
  }
  return [...ids];
}

/** One data key per patient; resources shared by several patients or none use the shared key. */
export function keyScopeFor(compartments: readonly string[]): string {
  return compartments.length === 1 ? `patient:${compartments[0]}` : 'shared';
}
