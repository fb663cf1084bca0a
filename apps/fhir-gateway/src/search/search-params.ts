import { getSearchParameters, parseFhirPath, type FhirPathAtom } from '@medplum/core';

/** The parameter types this first increment indexes; the rest are rejected with a clear outcome. */
export type IndexedType = 'token' | 'string' | 'reference' | 'date' | 'uri';
const INDEXED = new Set<string>(['token', 'string', 'reference', 'date', 'uri']);

export interface IndexedParam {
  code: string;
  type: IndexedType;
  expression: string;
  /** Canonical URL of the official SearchParameter. */
  url: string;
  /** The expression parsed once, so writes and re-checks do not parse it again. */
  atom: FhirPathAtom;
}

/**
 * Parameters whose R4 definition needs more than the value itself: phonetic matching (an algorithm the
 * definition leaves open). Searching them is refused as not supported rather than answered wrongly.
 */
const NOT_INDEXED = new Set(['phonetic']);

const cache = new Map<string, Map<string, IndexedParam>>();

/** The R4 SearchParameters of a type that are indexed, by code (from the official definitions). */
export function indexedParams(resourceType: string): Map<string, IndexedParam> {
  let params = cache.get(resourceType);
  if (!params) {
    params = new Map();
    for (const sp of Object.values(getSearchParameters(resourceType) ?? {})) {
      if (!sp.expression || !INDEXED.has(sp.type) || sp.code.startsWith('_') || NOT_INDEXED.has(sp.code))
        continue;
      params.set(sp.code, {
        code: sp.code,
        type: sp.type as IndexedType,
        expression: sp.expression,
        url: sp.url,
        atom: parseFhirPath(forType(sp.expression, resourceType)),
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

/**
 * Shared R4 definitions join the expressions of many types with "|" ("Patient.address | Person.address |
 * ..."). Only the branches of this type can yield values for it, so evaluate just those.
 */
export function forType(expression: string, resourceType: string): string {
  const branches: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < expression.length; i++) {
    const ch = expression[i];
    if (ch === '(') depth++;
    else if (ch === ')') depth--;
    else if (ch === '|' && depth === 0) {
      branches.push(expression.slice(start, i).trim());
      start = i + 1;
    }
  }
  branches.push(expression.slice(start).trim());
  const own = branches.filter(
    (b) => b.replace(/^\(+/, '').startsWith(`${resourceType}.`) || b.replace(/^\(+/, '') === resourceType,
  );
  return own.length > 0 && own.length < branches.length ? own.join(' | ') : expression;
}
