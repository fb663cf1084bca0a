import { FhirError } from '../fhir/outcomes.js';
import type { Interaction, ScopeChecker } from '../fhir/request-context.js';

/**
 * SMART v2 system scopes (https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html):
 * `system/<ResourceType|*>.<permissions>[?<search query>]`, permissions a non-empty subset of `cruds` in
 * that order. SMART v1 suffixes are read as their v2 equivalents (`read` = `rs`, `write` = `cud`,
 * `*` = `cruds`), as the v2 specification's equivalence table says.
 *
 * Query-restricted scopes (`system/Observation.rs?category=laboratory`) are parsed and kept, but they
 * never satisfy `allows()`: the restriction applies to individual resources, which a type-level check
 * cannot see, so such a scope grants nothing broader than an unrestricted scope would. The engine can
 * later enforce them as search filters through `restrictionsFor()`. Only `system/` scopes grant anything
 * here: this server implements backend services, where there is no patient or user context.
 */
export const INTERACTIONS = ['c', 'r', 'u', 'd', 's'] as const satisfies readonly Interaction[];

export interface SmartScope {
  /** A FHIR resource type, or `*` for every type. */
  readonly resourceType: string;
  /** Permissions in canonical `cruds` order, never empty. */
  readonly permissions: string;
  /** The search restriction after `?`, undefined when the scope is unrestricted. */
  readonly query?: string;
}

const NAMES: Record<Interaction, string> = { c: 'create', r: 'read', u: 'update', d: 'delete', s: 'search' };
const V1: Record<string, string> = { read: 'rs', write: 'cud', '*': 'cruds' };
const SCOPE = /^system\/(\*|[A-Z][A-Za-z]{0,63})\.([a-z*]+)(?:\?(.+))?$/;
const V2_PERMISSIONS = /^c?r?u?d?s?$/;
/** A query restriction is a plain search string: name=value pairs, no spaces (scopes are space-separated). */
const QUERY = /^[A-Za-z0-9_\-.:]+=[^\s&]*(?:&[A-Za-z0-9_\-.:]+=[^\s&]*)*$/;

export class ScopeError extends Error {
  constructor(readonly token: string) {
    super(`not a SMART system scope: ${JSON.stringify(token.slice(0, 100))}`);
    this.name = 'ScopeError';
  }
}

export function parseScope(token: string): SmartScope | undefined {
  const m = SCOPE.exec(token);
  if (!m) return undefined;
  const [, resourceType, suffix, query] = m as unknown as [string, string, string, string | undefined];
  const permissions = V1[suffix] ?? suffix;
  if (permissions.length === 0 || !V2_PERMISSIONS.test(permissions)) return undefined;
  if (query !== undefined && !QUERY.test(query)) return undefined;
  return query === undefined ? { resourceType, permissions } : { resourceType, permissions, query };
}

export function formatScope(s: SmartScope): string {
  return `system/${s.resourceType}.${s.permissions}${s.query === undefined ? '' : `?${s.query}`}`;
}

export class ScopeSet implements ScopeChecker {
  private constructor(
    readonly scopes: readonly SmartScope[],
    /** Tokens that are not SMART system scopes (e.g. `openid`, `patient/*.rs`); they grant nothing. */
    readonly ignored: readonly string[],
  ) {}

  static empty(): ScopeSet {
    return new ScopeSet([], []);
  }

  /** Lenient: tokens that are not system scopes are kept in `ignored` and grant nothing. */
  static parse(scope: string | undefined): ScopeSet {
    const scopes: SmartScope[] = [];
    const ignored: string[] = [];
    for (const token of (scope ?? '').split(/\s+/).filter(Boolean)) {
      const parsed = parseScope(token);
      if (parsed) scopes.push(parsed);
      else ignored.push(token);
    }
    return new ScopeSet(dedupe(scopes), ignored);
  }

  /** Strict: for registration, where a typo must not silently grant less than intended. */
  static parseStrict(scope: string): ScopeSet {
    const set = ScopeSet.parse(scope);
    if (set.ignored.length > 0) throw new ScopeError(set.ignored[0]!);
    if (set.scopes.length === 0) throw new ScopeError(scope);
    return set;
  }

  isEmpty(): boolean {
    return this.scopes.length === 0;
  }

  allows(resourceType: string, interaction: Interaction): boolean {
    return this.scopes.some(
      (s) =>
        s.query === undefined &&
        (s.resourceType === '*' || s.resourceType === resourceType) &&
        s.permissions.includes(interaction),
    );
  }

  assertAllows(resourceType: string, interaction: Interaction): void {
    if (!this.allows(resourceType, interaction)) {
      throw new FhirError(
        'forbidden',
        `the access token's scopes do not permit ${NAMES[interaction]} on ${safeType(resourceType)}`,
      );
    }
  }

  /**
   * The search restrictions of query-restricted scopes that would permit the interaction; empty when none.
   * When `allows()` is true these do not matter (an unrestricted scope already permits it).
   */
  restrictionsFor(resourceType: string, interaction: Interaction): string[] {
    return this.scopes
      .filter(
        (s) =>
          s.query !== undefined &&
          (s.resourceType === '*' || s.resourceType === resourceType) &&
          s.permissions.includes(interaction),
      )
      .map((s) => s.query!);
  }

  /**
   * What a client gets when it asks for `this` and is registered for `allowed`: every (type, permission,
   * restriction) that both cover. `system/*.cruds` asked of a client allowed `system/Patient.rs` yields
   * `system/Patient.rs`; a restriction on either side carries over; two different restrictions yield
   * nothing (their conjunction is not expressible as one SMART scope, so we stay on the safe side).
   */
  intersect(allowed: ScopeSet): ScopeSet {
    const out: SmartScope[] = [];
    for (const want of this.scopes) {
      for (const have of allowed.scopes) {
        const type = meetType(want.resourceType, have.resourceType);
        if (type === undefined) continue;
        const permissions = [...want.permissions].filter((p) => have.permissions.includes(p)).join('');
        if (permissions === '') continue;
        if (want.query !== undefined && have.query !== undefined && want.query !== have.query) continue;
        const query = want.query ?? have.query;
        out.push(
          query === undefined
            ? { resourceType: type, permissions }
            : { resourceType: type, permissions, query },
        );
      }
    }
    return new ScopeSet(dedupe(out), []);
  }

  toString(): string {
    return this.scopes.map(formatScope).join(' ');
  }
}

function meetType(a: string, b: string): string | undefined {
  if (a === '*') return b;
  if (b === '*' || a === b) return a;
  return undefined;
}

/** Merges scopes on the same type and restriction into one, with the union of their permissions. */
function dedupe(scopes: readonly SmartScope[]): SmartScope[] {
  const byKey = new Map<string, SmartScope>();
  for (const s of scopes) {
    const key = `${s.resourceType}?${s.query ?? ''}`;
    const prev = byKey.get(key);
    const permissions = INTERACTIONS.filter(
      (i) => s.permissions.includes(i) || (prev?.permissions.includes(i) ?? false),
    ).join('');
    byKey.set(
      key,
      s.query === undefined ? { resourceType: s.resourceType, permissions } : { ...s, permissions },
    );
  }
  return [...byKey.values()];
}

/** Resource types come from the URL; only echo one that looks like a type name. */
function safeType(t: string): string {
  return /^[A-Za-z]{1,64}$/.test(t) ? t : 'this resource type';
}
