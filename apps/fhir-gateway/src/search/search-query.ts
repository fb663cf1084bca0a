import { normalizeSearchString } from '#crypto';
import { parseDateRange, sqlInstant } from '../fhir/fhir-date.js';
import { parseCount } from '../fhir/history.service.js';
import { FhirError } from '../fhir/outcomes.js';
import { ID_PATTERN, parseReference } from '../fhir/resource-json.js';
import { coverTokens } from './date-tokens.js';
import { numberCover } from './number-tokens.js';
import {
  approximateNumber,
  approximateWindow,
  type Criterion,
  type ParsedValue,
  type Prefix,
} from './search-criteria.js';
import { indexedParams, knownParamCodes, paramByUrl, type IndexedParam } from './search-params.js';
import { indexedPrefix, PRESENT, TEXT_PREFIX_LENGTHS } from './search-tokens.js';

/** Tokens of one parameter; a resource satisfies the term when it has at least one of them. */
export interface TokenTerm {
  param: string;
  tokens: string[];
}

/**
 * One AND-ed index condition: a candidate satisfies some term (usually one; a compartment has one per
 * membership parameter). A negated condition keeps the candidates that satisfy none (:not, :missing=true).
 */
export interface TokenCondition {
  terms: TokenTerm[];
  negate?: boolean;
}

/** `subject:Patient.name=x` (R4 search.html#chaining), resolved to reference ids before the search runs. */
export interface ChainSpec {
  key: string;
  /** The reference parameter of the searched type. */
  param: string;
  /** Target types to search, each with the inner query (one key: the rest of the chain). */
  targets: { type: string; query: Record<string, string[]> }[];
}

/** `_has:Observation:patient:code=x` (R4 search.html#has), resolved to ids of the searched type. */
export interface HasSpec {
  key: string;
  type: string;
  param: string;
  query: Record<string, string[]>;
}

/** `_sort=-date,name` (R4 search.html#sort). */
export interface SortKey {
  code: string;
  descending: boolean;
  /** Absent for _id and _lastUpdated. */
  param?: IndexedParam;
}

export interface SearchPlan {
  resourceType: string;
  /** Narrow candidates through the blind index (a superset of the matches). */
  conditions: TokenCondition[];
  /** Decide exactly, on decrypted candidates. */
  criteria: Criterion[];
  ids?: string[];
  lastUpdated: { op: '>=' | '<' | 'not-in'; start: string; end?: string }[];
  chains: ChainSpec[];
  has: HasSpec[];
  sort: SortKey[];
  /** How deep inside chains or _has this plan is (0 for the search itself). */
  depth: number;
  count: number;
  cursor?: string;
  total: 'none' | 'accurate';
  summaryCount: boolean;
  /** The query that self and next links repeat (recognised parameters only). */
  echo: URLSearchParams;
  include: IncludeSpec[];
  revinclude: IncludeSpec[];
}

/** `_include=Source:param[:Target]`, `*` and `:iterate` (R4 search.html#include). */
export interface IncludeSpec {
  source: string;
  /** A reference parameter code, or "*" for all of the source type's reference parameters. */
  param: string;
  target?: string;
  iterate: boolean;
}

/** Chains and _has nest; deeper than this is refused (HAPI and Medplum bound it too). */
export const MAX_CHAIN_DEPTH = 4;

const CONTROL = new Set(['_count', '_cursor', '_total', '_summary', '_format', '_elements', '_pretty']);
/** Meaningful at the system level only (SearchService.searchSystem); on a type it narrows nothing. */
const SYSTEM_ONLY = new Set(['_type']);
const NOT_SUPPORTED = new Set(['_text', '_content', '_list', '_query', '_filter']);
const PREFIXES = new Set<string>(['eq', 'ne', 'gt', 'lt', 'ge', 'le', 'sa', 'eb', 'ap']);

/** Splits a parameter value on commas that are not escaped (R4 search.html#escaping). */
export function splitValues(value: string): string[] {
  return value.split(/(?<!\\),/).map(unescape);
}

function unescape(v: string): string {
  return v.replace(/\\([,$|\\])/g, '$1');
}

/** Splits on a separator not escaped by a backslash, keeping escapes for a later unescape. */
function splitUnescaped(v: string, sep: '|' | '$'): string[] {
  return v.split(sep === '|' ? /(?<!\\)\|/ : /(?<!\\)\$/);
}

/**
 * Parses a search into index conditions, exact criteria and joins (R4 search.html). Anything not supported
 * is refused with an outcome naming the parameter, never silently ignored; an unknown parameter is ignored
 * (lenient) or a 400 (Prefer: handling=strict).
 */
export function planSearch(
  resourceType: string,
  query: Record<string, string[]>,
  strict: boolean,
  depth = 0,
): SearchPlan {
  const plan: SearchPlan = {
    resourceType,
    conditions: [],
    criteria: [],
    lastUpdated: [],
    chains: [],
    has: [],
    sort: [],
    depth,
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
    if (key.startsWith('_has:')) {
      for (const raw of values) {
        plan.has.push(parseHas(resourceType, key, raw, depth));
        plan.echo.append(key, raw);
      }
      continue;
    }
    const dot = key.indexOf('.');
    if (dot >= 0) {
      for (const raw of values) {
        plan.chains.push(parseChain(resourceType, key, dot, raw, depth));
        plan.echo.append(key, raw);
      }
      continue;
    }
    const [code, modifier] = splitKey(key);
    if (CONTROL.has(code)) continue;
    if (SYSTEM_ONLY.has(code))
      throw new FhirError('bad-request', `${code} applies to a system-level search only`, {
        expression: [key],
      });
    if (NOT_SUPPORTED.has(code)) {
      throw new FhirError('not-implemented', `search parameter ${code} is not supported`, {
        expression: [key],
      });
    }
    for (const raw of values) {
      if (code === '_include' || code === '_revinclude') {
        plan[code === '_include' ? 'include' : 'revinclude'].push(includeOf(key, code, modifier, raw));
      } else if (code === '_sort') {
        if (modifier !== undefined || plan.sort.length > 0)
          throw new FhirError('bad-request', '_sort takes no modifier and appears once', {
            expression: [key],
          });
        plan.sort = parseSort(resourceType, raw);
      } else if (code === '_id') {
        if (modifier !== undefined)
          throw new FhirError('bad-request', `_id does not take :${modifier}`, { expression: [key] });
        // A value that is no valid id matches nothing (and never reaches SQL: a NUL would fail there).
        const ids = splitValues(raw).filter((i) => ID_PATTERN.test(i));
        plan.ids = plan.ids ? plan.ids.filter((i) => ids.includes(i)) : ids;
      } else if (code === '_lastUpdated') {
        if (modifier !== undefined)
          throw new FhirError('bad-request', `_lastUpdated does not take :${modifier}`, {
            expression: [key],
          });
        plan.lastUpdated.push(lastUpdatedCondition(raw));
      } else {
        const p = params.get(code);
        if (!p) {
          if (known.has(code)) {
            throw new FhirError('not-implemented', `search parameter ${code} is not supported`, {
              expression: [key],
            });
          }
          if (strict)
            throw new FhirError('bad-request', `unknown search parameter ${code}`, { expression: [key] });
          continue; // lenient: ignored, and left out of the self link (R4 search.html#errors)
        }
        addParameter(plan, p, key, modifier, raw);
      }
      plan.echo.append(key, raw);
    }
  }
  const total = query._total?.[0];
  if (total !== undefined && !['none', 'estimate', 'accurate'].includes(total))
    throw new FhirError('bad-request', '_total takes one of the values R4 search.html#total lists', {
      expression: ['_total'],
    });
  if (total === 'accurate' || total === 'estimate') plan.total = 'accurate';
  const summary = query._summary?.[0];
  if (summary === 'count') plan.summaryCount = true;
  if (query._cursor?.[0]) plan.cursor = query._cursor[0];
  for (const k of ['_count', '_total', '_summary', '_elements'])
    for (const v of query[k] ?? []) plan.echo.append(k, v);
  const foreign = plan.include.find((i) => !i.iterate && i.source !== resourceType && i.source !== '*');
  if (foreign) {
    throw new FhirError('bad-request', `_include must name the searched type ${resourceType}`, {
      expression: ['_include'],
    });
  }
  refuseRevincludeAll(plan.revinclude);
  return plan;
}

/**
 * The _include and _revinclude of a query alone, with their echo: a system search parses them once for
 * all its types (an include applies to the page's resources of its source type, R4 search.html#include).
 */
export function planIncludes(
  query: Record<string, string[]>,
): Pick<SearchPlan, 'include' | 'revinclude' | 'echo'> {
  const out: Pick<SearchPlan, 'include' | 'revinclude' | 'echo'> = {
    include: [],
    revinclude: [],
    echo: new URLSearchParams(),
  };
  for (const [key, values] of Object.entries(query)) {
    const [code, modifier] = splitKey(key);
    if (code !== '_include' && code !== '_revinclude') continue;
    for (const raw of values) {
      out[code === '_include' ? 'include' : 'revinclude'].push(includeOf(key, code, modifier, raw));
      out.echo.append(key, raw);
    }
  }
  refuseRevincludeAll(out.revinclude);
  return out;
}

function includeOf(key: string, code: string, modifier: string | undefined, raw: string): IncludeSpec {
  if (modifier !== undefined && modifier !== 'iterate') {
    throw new FhirError('bad-request', `${code} allows only the :iterate modifier`, {
      expression: [key],
    });
  }
  return parseInclude(key, raw, modifier === 'iterate');
}

function refuseRevincludeAll(revinclude: IncludeSpec[]): void {
  if (revinclude.some((r) => r.source === '*'))
    throw new FhirError('too-costly', '_revinclude=* is not supported: name the source type', {
      expression: ['_revinclude'],
    });
}

function addParameter(
  plan: SearchPlan,
  p: IndexedParam,
  key: string,
  modifier: string | undefined,
  raw: string,
) {
  if (modifier === 'missing') {
    if (raw !== 'true' && raw !== 'false')
      throw new FhirError('bad-request', `${key} must be true or false`, { expression: [key] });
    const missing = raw === 'true';
    plan.criteria.push({ code: p.code, expression: p.expr, values: [], missing });
    if (p.type !== 'composite')
      plan.conditions.push({ terms: [{ param: p.code, tokens: [PRESENT] }], negate: missing });
    return;
  }
  if (p.type === 'composite') {
    if (modifier !== undefined) throw unsupportedModifier(p, key, modifier);
    addComposite(plan, p, key, raw);
    return;
  }
  const negate = modifier === 'not';
  if (negate && p.type !== 'token')
    throw new FhirError('bad-request', `:not applies to token parameters only`, { expression: [key] });
  const parsed = splitValues(raw).map((v) => parseValue(p, key, negate ? undefined : modifier, v));
  plan.criteria.push({ code: p.code, expression: p.expr, values: parsed, ...(negate ? { negate } : {}) });
  const tokens = parsed.map(indexTokens);
  // A value the index cannot narrow (a "ne", a :contains) leaves the whole OR to the re-check.
  if (tokens.every((t) => t !== undefined))
    plan.conditions.push({
      terms: [{ param: p.code, tokens: tokens.flat() }],
      ...(negate ? { negate } : {}),
    });
}

/**
 * Composite values are "a$b" with one part per component (R4 search.html#composite). Each component is
 * narrowed through its own parameter's index; the re-check then demands both on one element.
 */
function addComposite(plan: SearchPlan, p: IndexedParam, key: string, raw: string) {
  const components = (p.components ?? []).map((c) => paramByUrl(plan.resourceType, c.definition));
  if (components.length < 2 || components.some((c) => c === undefined))
    throw new FhirError('not-implemented', `composite parameter ${p.code} is not supported`, {
      expression: [key],
    });
  const values: ParsedValue[] = [];
  const partTokens: (string[] | undefined)[][] = components.map(() => []);
  for (const v of raw.split(/(?<!\\),/)) {
    const parts = splitUnescaped(v, '$').map(unescape);
    if (parts.length !== components.length) {
      throw new FhirError('bad-request', `${p.code} needs ${components.length} parts separated by $`, {
        expression: [key],
      });
    }
    const parsed = parts.map((part, i) => parseValue(components[i]!, key, undefined, part));
    values.push({ kind: 'composite', parts: parsed });
    parsed.forEach((q, i) => partTokens[i]!.push(indexTokens(q)));
  }
  plan.criteria.push({
    code: p.code,
    expression: p.expr,
    values,
    components: p.components!.map((c) => c.expr),
  });
  components.forEach((c, i) => {
    const tokens = partTokens[i]!;
    if (tokens.every((t): t is string[] => t !== undefined))
      plan.conditions.push({ terms: [{ param: c!.code, tokens: tokens.flat() }] });
  });
}

function parseChain(resourceType: string, key: string, dot: number, raw: string, depth: number): ChainSpec {
  if (depth + 1 > MAX_CHAIN_DEPTH)
    throw new FhirError('bad-request', `${key} chains deeper than ${MAX_CHAIN_DEPTH} levels`, {
      expression: [key],
    });
  const [code, typeModifier] = splitKey(key.slice(0, dot));
  const rest = key.slice(dot + 1);
  const p = indexedParams(resourceType).get(code);
  if (p?.type !== 'reference')
    throw new FhirError(
      'bad-request',
      `${code} is not a reference parameter of ${resourceType}, so it cannot be chained`,
      {
        expression: [key],
      },
    );
  if (typeModifier !== undefined && !p.targets.includes(typeModifier))
    throw new FhirError('bad-request', `${code} cannot refer to a ${typeModifier}`, { expression: [key] });
  const restCode = rest.split(/[.:]/)[0]!;
  const candidates = typeModifier ? [typeModifier] : p.targets;
  const targets = candidates
    .filter((t) => restCode.startsWith('_') || knownParamCodes(t).has(restCode))
    .map((type) => ({ type, query: { [rest]: [raw] } }));
  if (targets.length === 0) {
    throw new FhirError('bad-request', `no type ${code} refers to has a search parameter ${restCode}`, {
      expression: [key],
    });
  }
  // Plan the inner searches now, so a bad inner parameter or value is a 400 before anything runs.
  for (const t of targets) planInner(key, t.type, t.query, depth);
  return { key, param: code, targets };
}

function parseHas(resourceType: string, key: string, raw: string, depth: number): HasSpec {
  if (depth + 1 > MAX_CHAIN_DEPTH)
    throw new FhirError('bad-request', `${key} nests deeper than ${MAX_CHAIN_DEPTH} levels`, {
      expression: [key],
    });
  const [, type, param, ...restParts] = key.split(':');
  const rest = restParts.join(':');
  if (!type || !param || !rest)
    throw new FhirError('bad-request', '_has must be _has:Type:reference:parameter', { expression: [key] });
  const p = /^[A-Z][A-Za-z]+$/.test(type) ? indexedParams(type).get(param) : undefined;
  if (p?.type !== 'reference')
    throw new FhirError('bad-request', `${type}:${param} is not a reference search parameter`, {
      expression: [key],
    });
  if (!p.targets.includes(resourceType))
    throw new FhirError('bad-request', `${type}:${param} cannot refer to a ${resourceType}`, {
      expression: [key],
    });
  const query = { [rest]: [raw] };
  planInner(key, type, query, depth);
  return { key, type, param, query };
}

/** Plans a chain's or _has's inner search; its errors name the parameter the client sent. */
function planInner(key: string, type: string, query: Record<string, string[]>, depth: number): void {
  try {
    planSearch(type, query, true, depth + 1);
  } catch (err) {
    if (!(err instanceof FhirError)) throw err;
    throw new FhirError(err.kind, err.message, { expression: [key] });
  }
}

function parseInclude(key: string, raw: string, iterate: boolean): IncludeSpec {
  if (raw === '*') return { source: '*', param: '*', iterate };
  const [source, param, target, extra] = raw.split(':');
  if (!source || !param || extra !== undefined) {
    throw new FhirError('bad-request', `${key} must be SourceType:parameter[:TargetType] or *`, {
      expression: [key],
    });
  }
  if (!/^[A-Z][A-Za-z]+$/.test(source))
    throw new FhirError('bad-request', `${key} names an invalid source type`, { expression: [key] });
  if (param !== '*') {
    const p = indexedParams(source).get(param);
    if (p?.type !== 'reference') {
      throw new FhirError('bad-request', `${key} does not name a reference search parameter`, {
        expression: [key],
      });
    }
  }
  if (target !== undefined && !/^[A-Z][A-Za-z]+$/.test(target)) {
    throw new FhirError('bad-request', `${key} has an invalid target type`, { expression: [key] });
  }
  return { source, param, ...(target ? { target } : {}), iterate };
}

const SORTABLE = new Set(['string', 'token', 'date', 'number', 'quantity', 'uri', 'reference']);

function parseSort(resourceType: string, raw: string): SortKey[] {
  return raw.split(',').map((item) => {
    const descending = item.startsWith('-');
    const code = descending ? item.slice(1) : item;
    if (code === '_id' || code === '_lastUpdated') return { code, descending };
    const p = indexedParams(resourceType).get(code);
    if (!p || !SORTABLE.has(p.type))
      throw new FhirError('bad-request', `_sort names a parameter ${resourceType} cannot be sorted by`, {
        expression: ['_sort'],
      });
    return { code, descending, param: p };
  });
}

function splitKey(key: string): [string, string | undefined] {
  const i = key.indexOf(':');
  return i < 0 ? [key, undefined] : [key.slice(0, i), key.slice(i + 1)];
}

function unsupportedModifier(p: IndexedParam, key: string, modifier: string): FhirError {
  return new FhirError('bad-request', `modifier :${modifier} is not valid on ${p.type} parameter ${p.code}`, {
    expression: [key],
  });
}

function parseValue(p: IndexedParam, key: string, modifier: string | undefined, v: string): ParsedValue {
  const bad = () => unsupportedModifier(p, key, modifier!);
  const empty = () => new FhirError('bad-request', `empty value for ${p.code}`, { expression: [key] });
  switch (p.type) {
    case 'string': {
      if (modifier !== undefined && modifier !== 'exact' && modifier !== 'contains') throw bad();
      const norm = normalizeSearchString(v);
      if (!norm) throw empty();
      return {
        kind: 'string',
        norm,
        raw: v,
        mode: modifier === 'exact' ? 'exact' : modifier === 'contains' ? 'contains' : 'prefix',
      };
    }
    case 'token': {
      if (modifier === 'text') {
        const norm = normalizeSearchString(v);
        if (!norm) throw empty();
        return { kind: 'text', norm };
      }
      if (modifier === 'of-type') {
        const parts = splitUnescaped(v, '|').map(unescape);
        if (parts.length !== 3 || parts.some((x) => x === ''))
          throw new FhirError('bad-request', `${key} must be system|code|value`, { expression: [key] });
        return { kind: 'of-type', system: parts[0]!, code: parts[1]!, value: parts[2]! };
      }
      if (modifier === 'above' || modifier === 'below' || modifier === 'in' || modifier === 'not-in')
        throw new FhirError(
          'not-implemented',
          `:${modifier} needs terminology services, which this server does not have`,
          {
            expression: [key],
          },
        );
      if (modifier !== undefined) throw bad();
      const [system, code, extra] = splitUnescaped(v, '|');
      if (extra !== undefined)
        throw new FhirError('bad-request', `${key} has more than one |`, { expression: [key] });
      if (code === undefined) {
        if (!system) throw empty();
        return { kind: 'token', code: unescape(system) };
      }
      if (system === '' && code === '') throw empty();
      return { kind: 'token', system: unescape(system!), ...(code === '' ? {} : { code: unescape(code) }) };
    }
    case 'reference': {
      if (modifier === 'identifier') {
        const [system, value, extra] = splitUnescaped(v, '|').map(unescape);
        if (extra !== undefined || (value === undefined ? !system : !value))
          throw new FhirError('bad-request', `${key} must be [system|]value`, { expression: [key] });
        return value === undefined
          ? { kind: 'ref-identifier', value: system }
          : { kind: 'ref-identifier', system, value };
      }
      if (modifier !== undefined && !(/^[A-Z][A-Za-z]+$/.test(modifier) && p.targets.includes(modifier))) {
        if (modifier === 'above' || modifier === 'below')
          throw new FhirError('not-implemented', `:${modifier} on references is not supported`, {
            expression: [key],
          });
        throw bad();
      }
      if (!v) throw empty();
      const local = parseReference(v);
      if (local) {
        if (modifier && modifier !== local.type)
          throw new FhirError('bad-request', `${key} names a type the reference value does not have`, {
            expression: [key],
          });
        return { kind: 'reference', ...local };
      }
      if (/^[A-Za-z0-9\-.]{1,64}$/.test(v))
        return { kind: 'reference', id: v, ...(modifier ? { type: modifier } : {}) };
      return { kind: 'reference', url: v };
    }
    case 'uri':
      if (modifier !== undefined && modifier !== 'above' && modifier !== 'below') throw bad();
      if (!v) throw empty();
      return {
        kind: 'uri',
        uri: v,
        mode: modifier === 'above' ? 'above' : modifier === 'below' ? 'below' : 'eq',
      };
    case 'date': {
      if (modifier !== undefined) throw bad();
      const { prefix, rest } = splitPrefix(v);
      const range = parseDateRange(rest, key);
      return {
        kind: 'date',
        prefix,
        start: Date.parse(range.start),
        end: Date.parse(range.end),
        ...(prefix === 'ap' ? { now: Date.now() } : {}),
      };
    }
    case 'number': {
      if (modifier !== undefined) throw bad();
      const { prefix, rest } = splitPrefix(v);
      return { kind: 'number', prefix, ...parseDecimal(rest, key) };
    }
    case 'quantity': {
      if (modifier !== undefined) throw bad();
      const [num, system, code, extra] = splitUnescaped(v, '|').map(unescape);
      if (extra !== undefined || num === undefined)
        throw new FhirError('bad-request', `${key} must be [prefix]number[|system|code]`, {
          expression: [key],
        });
      const { prefix, rest } = splitPrefix(num);
      if (system !== undefined && code === undefined)
        throw new FhirError('bad-request', `${key} must be [prefix]number[|system|code]`, {
          expression: [key],
        });
      return {
        kind: 'quantity',
        prefix,
        ...parseDecimal(rest, key),
        ...(system ? { system } : {}),
        ...(code ? { code } : {}),
      };
    }
    case 'composite':
      throw new FhirError('bad-request', `a composite cannot be a component of ${p.code}`, {
        expression: [key],
      });
  }
}

function splitPrefix(v: string): { prefix: Prefix; rest: string } {
  const p = v.slice(0, 2);
  return PREFIXES.has(p) ? { prefix: p as Prefix, rest: v.slice(2) } : { prefix: 'eq', rest: v };
}

/**
 * A decimal with its implicit range: half a unit of its last significant digit either side (R4
 * search.html#number: "100" is [99.5, 100.5), "100.00" is [99.995, 100.005), "1e2" is [50, 150)).
 */
export function parseDecimal(s: string, key: string): { value: number; lo: number; hi: number } {
  const m = /^([+-]?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(s);
  if (!m || s.length > 40)
    throw new FhirError('bad-request', `${key} has an invalid number`, { expression: [key] });
  const value = Number(s);
  const exponent = Number(m[4] ?? 0) - (m[3]?.length ?? 0);
  const half = 0.5 * 10 ** exponent;
  if (!Number.isFinite(value) || !Number.isFinite(half))
    throw new FhirError('bad-request', `${key} has an invalid number`, { expression: [key] });
  return { value, lo: value - half, hi: value + half };
}

/** The plaintext index tokens one parsed value needs (spellings as in search-tokens.ts). */
function indexTokens(q: ParsedValue): string[] | undefined {
  switch (q.kind) {
    case 'string':
      if (q.mode === 'contains') return undefined;
      return [q.mode === 'exact' ? `x|${q.raw}` : `p|${indexedPrefix(q.norm)}`];
    case 'token':
      if (q.system === undefined) return [`c|${q.code}`];
      if (q.system === '') return [`n|${q.code}`];
      return [q.code === undefined ? `s|${q.system}|` : `s|${q.system}|${q.code}`];
    case 'text':
      return [`t|${indexedPrefix(q.norm, TEXT_PREFIX_LENGTHS)}`];
    case 'of-type':
      return [`o|${q.system}|${q.code}|${q.value}`];
    case 'reference':
      if (q.url !== undefined) return [`u|${q.url}`];
      return [q.type ? `r|${q.type}/${q.id}` : `i|${q.id}`];
    case 'ref-identifier':
      if (q.system === undefined) return [`dc|${q.value}`];
      if (q.system === '') return [`dn|${q.value}`];
      return [`ds|${q.system}|${q.value}`];
    case 'uri':
      if (q.mode === 'eq') return [`u|${q.uri}`];
      if (q.mode === 'below') return [`b|${q.uri.replace(/\/+$/, '')}`];
      return aboveTokens(q.uri);
    case 'date':
      return dateIndexTokens(q);
    case 'number':
      return numberIndexTokens(q)?.map((b) => `#|${b}`);
    case 'quantity': {
      const buckets = numberIndexTokens(q);
      if (!buckets) return undefined;
      if (q.code === undefined) return buckets.map((b) => `#|${b}`);
      return buckets.map((b) => (q.system ? `s|${q.system}|${q.code}|${b}` : `c|${q.code}|${b}`));
    }
    case 'composite':
      return undefined;
  }
}

/** :above on a uri: the stored uri is the value or one of its path-segment prefixes. */
function aboveTokens(uri: string): string[] {
  const out = [`u|${uri}`];
  const from = uri.indexOf('://') >= 0 ? uri.indexOf('://') + 3 : 0;
  for (let i = uri.indexOf('/', from); i > 0; i = uri.indexOf('/', i + 1)) {
    out.push(`u|${uri.slice(0, i)}`, `u|${uri.slice(0, i + 1)}`);
  }
  return out;
}

/** Where some endpoint of a matching value must lie (see dateMatches in search-criteria.ts). */
function dateIndexTokens(q: Extract<ParsedValue, { kind: 'date' }>): string[] | undefined {
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
    case 'ap': {
      // A target overlapping the window ends after its start.
      const [ws] = approximateWindow(q.start, q.end, q.now ?? Date.now());
      return coverTokens(ws, undefined);
    }
    case 'ne':
      return undefined;
  }
}

/** Buckets that hold every number the prefix can match (see numberMatches in search-criteria.ts). */
function numberIndexTokens(q: {
  prefix: Prefix;
  value: number;
  lo: number;
  hi: number;
}): string[] | undefined {
  switch (q.prefix) {
    case 'eq':
      return numberCover(q.lo, q.hi);
    case 'gt':
    case 'sa':
    case 'ge':
      return numberCover(q.value, Infinity);
    case 'lt':
    case 'eb':
    case 'le':
      return numberCover(-Infinity, q.value);
    case 'ap': {
      const [lo, hi] = approximateNumber(q);
      return numberCover(lo, hi);
    }
    case 'ne':
      return undefined;
  }
}

function lastUpdatedCondition(raw: string): SearchPlan['lastUpdated'][number] {
  const { prefix, rest } = splitPrefix(raw);
  const range = parseDateRange(rest, '_lastUpdated');
  switch (prefix) {
    case 'eq':
      return { op: '>=', start: sqlInstant(range.start), end: sqlInstant(range.end) };
    case 'gt':
    case 'sa':
      return { op: '>=', start: sqlInstant(range.end) };
    case 'ge':
      return { op: '>=', start: sqlInstant(range.start) };
    case 'lt':
    case 'eb':
      return { op: '<', start: sqlInstant(range.start) };
    case 'le':
      return { op: '<', start: sqlInstant(range.end) };
    case 'ne':
      return { op: 'not-in', start: sqlInstant(range.start), end: sqlInstant(range.end) };
    case 'ap': {
      const [ws, we] = approximateWindow(Date.parse(range.start), Date.parse(range.end), Date.now());
      return { op: '>=', start: sqlInstant(isoOf(ws)), end: sqlInstant(isoOf(we)) };
    }
  }
}

function isoOf(ms: number): string {
  return Number.isFinite(ms) && Math.abs(ms) < 8.64e15
    ? new Date(ms).toISOString()
    : ms < 0
      ? '-infinity'
      : 'infinity';
}
