import type { Bundle } from '@medplum/fhirtypes';
import type { R4Definitions } from './definitions.js';
import { FhirError } from './outcomes.js';
import type { AnyResource } from './resource-json.js';

/** http://hl7.org/fhir/R4/search.html#summary: a subsetted resource is tagged so nobody stores it back. */
const SUBSETTED = { system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue', code: 'SUBSETTED' };

export type SummaryMode = 'true' | 'text' | 'data' | 'count' | 'false';

export interface SubsetRequest {
  summary?: SummaryMode;
  elements?: string[];
}

export function parseSubset(query: Record<string, string[]>): SubsetRequest {
  const out: SubsetRequest = {};
  const summary = query._summary?.[0];
  if (summary !== undefined) {
    if (!['true', 'text', 'data', 'count', 'false'].includes(summary)) {
      throw new FhirError('bad-request', `_summary must be one of true, text, data, count, false`, {
        expression: ['_summary'],
      });
    }
    out.summary = summary as SummaryMode;
  }
  const elements = query._elements
    ?.flatMap((v) => v.split(','))
    .map((e) => e.trim())
    .filter(Boolean);
  if (elements?.length) out.elements = elements;
  return out;
}

export function needsSubset(s: SubsetRequest): boolean {
  return (s.summary !== undefined && s.summary !== 'false') || s.elements !== undefined;
}

/** Applies _summary / _elements to a whole resource. Mandatory elements always stay (R4 search.html#elements). */
export function subsetResource(defs: R4Definitions, resource: AnyResource, s: SubsetRequest): AnyResource {
  const type = resource.resourceType;
  const mandatory = defs.mandatoryElements.get(type) ?? new Set<string>(['id', 'meta']);
  let keep: ((key: string) => boolean) | undefined;
  if (s.elements) {
    const wanted = new Set(s.elements.map((e) => (e.startsWith(`${type}.`) ? e.slice(type.length + 1) : e)));
    keep = (k) => wanted.has(k) || mandatory.has(k);
  } else if (s.summary === 'true') {
    const summary = defs.summaryElements.get(type) ?? new Set<string>();
    keep = (k) => summary.has(k) || mandatory.has(k);
  } else if (s.summary === 'text') {
    keep = (k) => k === 'text' || mandatory.has(k);
  } else if (s.summary === 'data') {
    keep = (k) => k !== 'text';
  }
  if (!keep) return resource;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(resource)) {
    // Choice elements are stored as valueQuantity etc.; match them by their base name too.
    if (k === 'resourceType' || keep(k) || keep(choiceBase(k))) out[k] = v;
  }
  const meta = (out.meta ?? {}) as { tag?: unknown[] };
  out.meta = { ...meta, tag: [...(meta.tag ?? []), SUBSETTED] };
  return out as AnyResource;
}

/**
 * _summary and _elements on a searchset (R4 search.html#summary, #elements). _elements names elements of the
 * searched type, so it subsets the matches and leaves included resources whole (as HAPI does); _summary
 * subsets every resource of the page. Outcome entries stay as they are.
 */
export function subsetSearchset(defs: R4Definitions, bundle: Bundle, s: SubsetRequest): Bundle {
  if (!needsSubset(s) || s.summary === 'count' || !bundle.entry) return bundle;
  const forIncludes: SubsetRequest = s.summary !== undefined ? { summary: s.summary } : {};
  bundle.entry = bundle.entry.map((e) => {
    const mode = e.search?.mode;
    const apply = mode === 'match' ? s : mode === 'include' ? forIncludes : undefined;
    if (!e.resource || !apply || !needsSubset(apply)) return e;
    return { ...e, resource: subsetResource(defs, e.resource as AnyResource, apply) };
  });
  return bundle;
}

function choiceBase(key: string): string {
  const m = /^([a-z][A-Za-z]*?)[A-Z][A-Za-z]*$/.exec(key);
  return m ? m[1]! : key;
}
