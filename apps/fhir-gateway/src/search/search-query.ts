import { normalizeSearchString } from '#crypto';
import { parseDateRange } from '../fhir/fhir-date.js';
import { parseCount } from '../fhir/history.service.js';
import { FhirError } from '../fhir/outcomes.js';
import { parseReference } from '../fhir/resource-json.js';
import { coverTokens } from './date-tokens.js';
import type { Criterion, DatePrefix, ParsedValue } from './search-criteria.js';
import { indexedParams, knownParamCodes, type IndexedParam } from './search-params.js';
import { indexedPrefix } from './search-tokens.js';

/** One AND-ed index condition: a candidate has at least one of the tokens for the parameter. */
export interface TokenCondition {
  param: string;
  tokens: string[];
}

export interface SearchPlan {
  resourceType: string;
  /** Narrow candidates through the blind index (a superset of the matches). */
  conditions: TokenCondition[];
  /** Decide exactly, on decrypted candidates. */
  criteria: Criterion[];
  ids?: string[];
  lastUpdated: { op: '>=' | '<' | 'not-in'; start: string; end?: string }[];
  count: number;
  cursor?: string;
  total: 'none' | 'accurate';
  summaryCount: boolean;
  /** The query that self and next links repeat (recognised parameters only). */
  echo: URLSearchParams;
  include: IncludeSpec[];
  revinclude: IncludeSpec[];
}

/** `_include=Source:param[:Target]` and `_revinclude=Source:param[:Target]` (R4 search.html#include). */
export interface IncludeSpec {
  source: string;
  param: string;
  target?: string;
}

const CONTROL = new Set(['_count', '_cursor', '_total', '_summary', '_format', '_elements', '_pretty']);
const NOT_YET = new Set([
  '_sort',

  '_has',
  '_type',
  '_text',
  '_content',
  '_list',
  '_query',
  '_filter',
  '_tag',
  '_profile',
  '_security',
  '_source',
]);
const PREFIXES = new Set(['eq', 'ne', 'gt', 'lt', 'ge', 'le', 'sa', 'eb', 'ap']);

/** Splits a parameter value on commas that are not escaped (R4 search.html#escaping). */
export function splitValues(value: string): string[] {
  return value.split(/(?<!\\),/).map((v) => v.replace(/\\([,$|\\])/g, '$1'));
}

/**
 * Parses a search into index conditions and exact criteria (R4 search.html). Anything not supported yet is
 * refused with a 501 naming it, never silently ignored; an unknown parameter is ignored (lenient) or a
 * 400 (Prefer: handling=strict).
 */
export function planSearch(
  resourceType: string,
  query: Record<string, string[]>,
  strict: boolean,
): SearchPlan {
  const plan: SearchPlan = {
    resourceType,
    conditions: [],
    criteria: [],
    lastUpdated: [],
    count: parseCount(query._count?.[0] ?? '20'),
    total: 'none',
    summaryCount: false,
    echo: new URLSearchParams(),
    include: [],
    revinclude: [],
  };
  const params = indexedParams(resourceType);
  const known = knownParamCodes(resourceType);
  for (const [key, values] of Object.entries(query)) {
    const [code, modifier] = splitKey(key);
    if (CONTROL.has(code)) continue;
    if (NOT_YET.has(code) || code.includes('.')) {
      throw new FhirError('not-implemented', `search parameter ${code} is not supported yet`, {
        expression: [key],
      });
    }
    for (const raw of values) {
      if (code === '_include' || code === '_revinclude') {
        if (modifier !== undefined) {
          throw new FhirError('not-implemented', `${key} is not supported yet`, { expression: [key] });
        }
        plan[code === '_include' ? 'include' : 'revinclude'].push(parseInclude(key, raw));
      } else if (code === '_id') {
        const ids = splitValues(raw);
        plan.ids = plan.ids ? plan.ids.filter((i) => ids.includes(i)) : ids;
      } else if (code === '_lastUpdated') {
        plan.lastUpdated.push(lastUpdatedCondition(raw));
      } else {
        const p = params.get(code);
        if (!p) {
          if (known.has(code)) {
            throw new FhirError('not-implemented', `search parameter ${code} is not supported yet`, {
              expression: [key],
            });
          }
          if (strict)
            throw new FhirError('bad-request', `unknown search parameter ${code}`, { expression: [key] });
          continue; // lenient: ignored, and left out of the self link (R4 search.html#errors)
        }
        const parsed = splitValues(raw).map((v) => parseValue(p, key, modifier, v));
        plan.criteria.push({ code, expression: p.atom, values: parsed });
        const tokens = parsed.map(indexTokens);
        // A value the index cannot narrow (a date "ne") leaves the whole OR to the re-check.
        if (tokens.every((t) => t !== undefined))
          plan.conditions.push({ param: code, tokens: tokens.flat() });
      }
      plan.echo.append(key, raw);
    }
  }
  const total = query._total?.[0];
  if (total === 'accurate' || total === 'estimate') plan.total = 'accurate';
  if (query._summary?.[0] === 'count') plan.summaryCount = true;
  if (query._cursor?.[0]) plan.cursor = query._cursor[0];
  for (const k of ['_count', '_total', '_summary', '_elements'])
    for (const v of query[k] ?? []) plan.echo.append(k, v);
  const foreign = plan.include.find((i) => i.source !== resourceType);
  if (foreign) {
    throw new FhirError('bad-request', `_include must name the searched type ${resourceType}`, {
      expression: ['_include'],
    });
  }
  return plan;
}

function parseInclude(key: string, raw: string): IncludeSpec {
  const [source, param, target, extra] = raw.split(':');
  if (raw === '*' || param === '*')
    throw new FhirError('not-implemented', `${key}=* is not supported yet`, { expression: [key] });
  if (!source || !param || extra !== undefined) {
    throw new FhirError('bad-request', `${key} must be SourceType:parameter[:TargetType]`, {
      expression: [key],
    });
  }
  const p = indexedParams(source).get(param);
  if (p?.type !== 'reference') {
    throw new FhirError('bad-request', `${source}:${param} is not a reference search parameter`, {
      expression: [key],
    });
  }
  if (target !== undefined && !/^[A-Z][A-Za-z]+$/.test(target)) {
    throw new FhirError('bad-request', `${key} has an invalid target type`, { expression: [key] });
  }
  return { source, param, ...(target ? { target } : {}) };
}

function splitKey(key: string): [string, string | undefined] {
  const i = key.indexOf(':');
  return i < 0 ? [key, undefined] : [key.slice(0, i), key.slice(i + 1)];
}

function parseValue(p: IndexedParam, key: string, modifier: string | undefined, v: string): ParsedValue {
  const unsupported = () =>
    new FhirError('not-implemented', `modifier :${modifier} is not supported yet on ${p.code}`, {
      expression: [key],
    });
  switch (p.type) {
    case 'string': {
      if (modifier !== undefined && modifier !== 'exact') throw unsupported();
      const norm = normalizeSearchString(v);
      if (!norm) throw new FhirError('bad-request', `empty value for ${p.code}`, { expression: [key] });
      return { kind: 'string', norm, raw: v, exact: modifier === 'exact' };
    }
    case 'token': {
      if (modifier !== undefined) throw unsupported();
      const bar = v.indexOf('|');
      if (bar < 0) return { kind: 'token', code: v };
      const system = v.slice(0, bar);
      const code = v.slice(bar + 1);
      return { kind: 'token', system, ...(code === '' ? {} : { code }) };
    }
    case 'reference': {
      if (modifier !== undefined && !/^[A-Z][A-Za-z]+$/.test(modifier)) throw unsupported();
      const local = parseReference(v);
      if (local) return { kind: 'reference', ...local };
      if (/^[A-Za-z0-9\-.]{1,64}$/.test(v))
        return { kind: 'reference', id: v, ...(modifier ? { type: modifier } : {}) };
      return { kind: 'reference', url: v };
    }
    case 'uri':
      if (modifier !== undefined) throw unsupported();
      return { kind: 'uri', uri: v };
    case 'date': {
      if (modifier !== undefined) throw unsupported();
      const { prefix, range } = parsePrefixed(key, v);
      if (prefix === 'ap')
        throw new FhirError('not-implemented', 'prefix ap is not supported yet', { expression: [key] });
      return {
        kind: 'date',
        prefix: prefix as DatePrefix,
        start: Date.parse(range.start),
        end: Date.parse(range.end),
      };
    }
  }
}

/** The plaintext index tokens one parsed value needs (spellings as in search-tokens.ts). */
function indexTokens(q: ParsedValue): string[] | undefined {
  switch (q.kind) {
    case 'string':
      return [q.exact ? `x|${q.raw}` : `p|${indexedPrefix(q.norm)}`];
    case 'token':
      if (q.system === undefined) return [`c|${q.code}`];
      if (q.system === '') return [`n|${q.code}`];
      return [q.code === undefined ? `s|${q.system}|` : `s|${q.system}|${q.code}`];
    case 'reference':
      if (q.url !== undefined) return [`u|${q.url}`];
      return [q.type ? `r|${q.type}/${q.id}` : `i|${q.id}`];
    case 'uri':
      return [`u|${q.uri}`];
    case 'date':
      // Where some endpoint of a matching value must lie (see dateMatches in search-criteria.ts).
      switch (q.prefix) {
        case 'eq':
          return coverTokens(q.start, q.end);
        case 'gt':
        case 'sa':
          return coverTokens(q.end, undefined);
        case 'ge':
          return coverTokens(q.start, undefined);
        case 'lt':
        case 'eb':
          return coverTokens(undefined, q.start);
        case 'le':
          return coverTokens(undefined, q.end);
        case 'ne':
          return undefined;
      }
  }
}

function parsePrefixed(key: string, v: string): { prefix: string; range: { start: string; end: string } } {
  const hasPrefix = PREFIXES.has(v.slice(0, 2));
  return { prefix: hasPrefix ? v.slice(0, 2) : 'eq', range: parseDateRange(hasPrefix ? v.slice(2) : v, key) };
}

function lastUpdatedCondition(raw: string): SearchPlan['lastUpdated'][number] {
  const { prefix, range } = parsePrefixed('_lastUpdated', raw);
  switch (prefix) {
    case 'eq':
      return { op: '>=', start: range.start, end: range.end };
    case 'gt':
    case 'sa':
      return { op: '>=', start: range.end };
    case 'ge':
      return { op: '>=', start: range.start };
    case 'lt':
    case 'eb':
      return { op: '<', start: range.start };
    case 'le':
      return { op: '<', start: range.end };
    case 'ne':
      return { op: 'not-in', start: range.start, end: range.end };
    default:
      throw new FhirError('not-implemented', `prefix ${prefix} is not supported yet`, {
        expression: ['_lastUpdated'],
      });
  }
}
