import { getSearchParameters } from '@medplum/core';
import { ParamExpression, splitUnion } from './param-expression.js';

/** Every R4 search parameter type is indexed except "special" (near, _filter: each needs its own engine). */
export type IndexedType =
  'token' | 'string' | 'reference' | 'date' | 'uri' | 'number' | 'quantity' | 'composite';
const INDEXED = new Set<string>([
  'token',
  'string',
  'reference',
  'date',
  'uri',
  'number',
  'quantity',
  'composite',
]);

export interface CompositeComponent {
  /** Canonical URL of the component's own SearchParameter. */
  definition: string;
  /** The component's expression, relative to an element the composite's expression yields. */
  expr: ParamExpression;
}

export interface IndexedParam {
  code: string;
  type: IndexedType;
  expression: string;
  /** Canonical URL of the official SearchParameter. */
  url: string;
  /**
   * The expression (only this type's branches, see forType) parsed once, so writes and re-checks do not
   * parse it again; it evaluates as HL7's engine does (param-expression.ts).
   */
  expr: ParamExpression;
  /** Resource types a reference parameter may point at (SearchParameter.target). */
  targets: string[];
  /** Composite parameters only (R4 search.html#composite). */
  components?: CompositeComponent[];
}

/**
 * Parameters whose R4 definition needs more than the value itself: phonetic matching (an algorithm the
 * definition leaves open). Medplum's bundle also adds parameters of its own (_compartment, _project) that
 * R4 does not define. Searching any of these is refused rather than answered wrongly.
 */
const NOT_INDEXED = new Set(['phonetic', '_compartment', '_project']);

/**
 * Resource-level parameters handled by the planner itself (_id, _lastUpdated) or not at all; the others
 * (_tag, _profile, _security, _source) are indexed like any parameter.
 */
const SPECIAL_RESOURCE_PARAMS = new Set([
  '_id',
  '_lastUpdated',
  '_text',
  '_content',
  '_list',
  '_query',
  '_filter',
  '_has',
  '_type',
]);

const cache = new Map<string, Map<string, IndexedParam>>();

/** The R4 SearchParameters of a type that are indexed, by code (from the official definitions). */
export function indexedParams(resourceType: string): Map<string, IndexedParam> {
  let params = cache.get(resourceType);
  if (!params) {
    params = new Map();
    for (const sp of Object.values(getSearchParameters(resourceType) ?? {})) {
      if (
        !sp.expression ||
        !INDEXED.has(sp.type) ||
        SPECIAL_RESOURCE_PARAMS.has(sp.code) ||
        NOT_INDEXED.has(sp.code)
      )
        continue;
      params.set(sp.code, {
        code: sp.code,
        type: sp.type as IndexedType,
        expression: sp.expression,
        url: sp.url,
        expr: new ParamExpression(forType(sp.expression, resourceType), sp.type),
        targets: [...(sp.target ?? [])],
        ...(sp.type === 'composite'
          ? {
              components: (sp.component ?? []).map((c) => ({
                definition: c.definition ?? '',
                expr: new ParamExpression(c.expression ?? '', 'composite-component'),
              })),
            }
          : {}),
      });
    }
    cache.set(resourceType, params);
  }
  return params;
}

/** The indexed parameter of a type with this canonical URL (composite components name theirs by URL). */
export function paramByUrl(resourceType: string, url: string): IndexedParam | undefined {
  for (const p of indexedParams(resourceType).values()) if (p.url === url) return p;
  return undefined;
}

/** Every search parameter the type has, indexed or not (to tell "unsupported" from "unknown"). */
export function knownParamCodes(resourceType: string): ReadonlySet<string> {
  // Built once per type: every search plans through it, and Observation alone defines some 50 codes.
  let codes = knownCodes.get(resourceType);
  if (!codes) {
    codes = new Set(Object.keys(getSearchParameters(resourceType) ?? {}).filter((c) => !MEDPLUM_ONLY.has(c)));
    knownCodes.set(resourceType, codes);
  }
  return codes;
}

const knownCodes = new Map<string, ReadonlySet<string>>();

/** Parameters Medplum's bundle adds that R4 does not define: unknown here, like any other. */
const MEDPLUM_ONLY = new Set(['_compartment', '_project']);

/**
 * Shared R4 definitions join the expressions of many types with "|" ("Patient.address | Person.address |
 * ..."). Only the branches of this type can yield values for it, so evaluate just those.
 */
export function forType(expression: string, resourceType: string): string {
  const branches = splitUnion(expression);
  const own = branches.filter(
    (b) => b.replace(/^\(+/, '').startsWith(`${resourceType}.`) || b.replace(/^\(+/, '') === resourceType,
  );
  return own.length > 0 && own.length < branches.length ? own.join(' | ') : expression;
}
