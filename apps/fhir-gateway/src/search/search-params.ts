import { getSearchParameters } from '@medplum/core';

/** The parameter types this first increment indexes; the rest are rejected with a clear outcome. */
export type IndexedType = 'token' | 'string' | 'reference' | 'date' | 'uri';
const INDEXED = new Set<string>(['token', 'string', 'reference', 'date', 'uri']);

export interface IndexedParam {
  code: string;
  type: IndexedType;
  expression: string;
  /** Canonical URL of the official SearchParameter. */
  url: string;
}

const cache = new Map<string, Map<string, IndexedParam>>();

/** The R4 SearchParameters of a type that are indexed, by code (from the official definitions). */
export function indexedParams(resourceType: string): Map<string, IndexedParam> {
  let params = cache.get(resourceType);
  if (!params) {
    params = new Map();
    for (const sp of Object.values(getSearchParameters(resourceType) ?? {})) {
      if (!sp.expression || !INDEXED.has(sp.type) || sp.code.startsWith('_')) continue;
      params.set(sp.code, {
        code: sp.code,
        type: sp.type as IndexedType,
        expression: sp.expression,
        url: sp.url,
      });
    }
    cache.set(resourceType, params);
  }
  return params;
}

/** Every search parameter the type has, indexed or not (to tell "unsupported" from "unknown"). */
export function knownParamCodes(resourceType: string): Set<string> {
  return new Set(Object.keys(getSearchParameters(resourceType) ?? {}));
}
