import type { StoredVersion } from '../store/resource.repository.js';
import type { R4Definitions } from './definitions.js';
import type { FhirResponse } from './fhir-types.js';
import { informational } from './outcomes.js';
import { etagOf, type WriteResult } from './resource.service.js';
import type { AnyResource } from './resource-json.js';
import { needsSubset, subsetResource, type SubsetRequest } from './subset.js';

export function versionHeaders(v: Pick<StoredVersion, 'versionId' | 'lastUpdated'>): Record<string, string> {
  return { ETag: etagOf(v.versionId), 'Last-Modified': new Date(v.lastUpdated).toUTCString() };
}

/** A read: the stored bytes go out unchanged unless _summary/_elements ask for a subset. */
export function readResponse(defs: R4Definitions, v: StoredVersion, subset: SubsetRequest): FhirResponse {
  const headers = versionHeaders(v);
  if (!v.json) return { status: 200, headers };
  if (!needsSubset(subset)) return { status: 200, headers, body: v.json };
  const resource = JSON.parse(v.json.toString('utf8')) as AnyResource;
  return { status: 200, headers, body: subsetResource(defs, resource, subset) };
}

export type PreferReturn = 'minimal' | 'representation' | 'OperationOutcome';

/** RFC 7240 Prefer, with FHIR's return values (R4 http.html#ops). */
export function preferReturn(prefer: string | undefined): PreferReturn {
  const m = /(?:^|[,;\s])return\s*=\s*"?(minimal|representation|OperationOutcome)"?/.exec(prefer ?? '');
  return (m?.[1] as PreferReturn | undefined) ?? 'representation';
}

export function writeResponse(baseUrl: string, w: WriteResult, prefer: PreferReturn): FhirResponse {
  const v = w.version;
  const headers: Record<string, string> = {
    ...versionHeaders(v),
    Location: `${baseUrl}/${v.resourceType}/${v.id}/_history/${v.versionId}`,
  };
  if (prefer === 'minimal') return { status: w.status, headers, lastUpdated: v.lastUpdated };
  if (prefer === 'OperationOutcome') {
    return {
      status: w.status,
      headers,
      lastUpdated: v.lastUpdated,
      body: informational(`${w.status === 201 ? 'created' : 'updated'} ${v.resourceType}/${v.id}`),
    };
  }
  return { status: w.status, headers, body: v.json ?? {}, resource: w.resource, lastUpdated: v.lastUpdated };
}
