import {
  evalFhirPathTyped,
  getElementDefinitionForPath,
  isPrimitiveType,
  isResourceType,
  parseFhirPath,
  toTypedValue,
  type FhirPathAtom,
  type TypedValue,
} from '@medplum/core';

/**
 * A search parameter's FHIRPath expression, evaluated as HL7's reference engine (fhirpath.js) evaluates it.
 * Medplum's evaluator does the work; this class corrects it where it differs in what a search can see
 * (test/support/fhirpath-equivalence.ts compares the two on every expression, and compares the index
 * tokens built from each):
 *
 * - X.where(resolve() is T) (FHIR R4 fhirpath.html#functions). Medplum makes a stub from the reference
 *   string cut at its first "/", so an absolute URL ("http://host/fhir/Patient/1") is no Patient, a
 *   contained reference ("#p1") resolves to nothing, and a Reference with only type + identifier passes as
 *   its type. Here a literal reference, relative or absolute, resolves to its type; "#id" resolves to the
 *   contained resource with that id; anything else (logical, urn:, conditional) does not resolve and "is
 *   ignored", as the function's definition says.
 * - X.ofType(uri) keeps the items of type uri "or a subclass thereof" (FHIRPath N1 §6.3). In R4, canonical,
 *   url, oid and uuid specialise uri; Medplum matches the type name exactly.
 * - A primitive with only an extension ("_birthDate": {...}, FHIR R4 json.html#primitive) has no value;
 *   Medplum returns its extension object as the value.
 *
 * Only expressions with one of the first two forms are evaluated branch by branch (each top-level "|"
 * operand apart, then their union without duplicates, N1 §6.5); the rest go to Medplum whole.
 */
export class ParamExpression {
  /** The whole expression parsed, as Medplum would evaluate it. */
  readonly atom: FhirPathAtom;
  private readonly branches: Branch[] | undefined;
  /** For a plain path of single-typed elements ("Patient.name.family"): its type and steps. */
  private path: PlainPath | null | undefined;

  constructor(
    readonly text: string,
    /** The parameter's type (SearchParameter.type), for what counts as a value (search-criteria.ts). */
    readonly type: string,
  ) {
    this.atom = parseFhirPath(text);
    const parts = splitUnion(text).map(branch);
    this.branches = parts.some((b) => b.resolveIs !== undefined || b.uriFamily) ? parts : undefined;
  }

  /** The values the expression yields on a resource (or, for composite components, on an element of it). */
  evaluate(input: unknown, resource: unknown = input): unknown[] {
    // Decided once: `null` (not a plain path) is a decision too, and must not send every call back here.
    if (this.path === undefined) this.path = plainPath(this.text);
    if (this.path) return walk(input, this.path);
    const focus = [toTypedValue(input)];
    const root = resource === input ? focus[0]! : toTypedValue(resource);
    // %resource is the resource that holds the node evaluated (FHIR R4 fhirpath.html#vars); composite
    // components such as MolecularSequence's %resource.referenceSeq.chromosome read it.
    const variables = { '%resource': root, '%rootResource': root };
    if (!this.branches) return values(evalFhirPathTyped(this.atom, focus, variables));
    const out: unknown[] = [];
    // Only a union removes duplicates (N1 §6.5); one branch keeps them, as a plain path does.
    const seen = this.branches.length > 1 ? new Set<string>() : undefined;
    for (const b of this.branches) {
      for (const t of evalFhirPathTyped(b.atom, focus, variables)) {
        if (b.uriFamily && !URI_TYPES.has(t.type)) continue;
        if (b.resolveIs !== undefined && resolvedType(t.value, resource) !== b.resolveIs) continue;
        if (!hasValue(t)) continue;
        if (seen) {
          const key = typeof t.value === 'object' ? JSON.stringify(t.value) : `${typeof t.value}:${t.value}`;
          if (seen.has(key)) continue;
          seen.add(key);
        }
        out.push(t.value);
      }
    }
    return out;
  }
}

/** A plain member path: the resource type it starts from and the element names after it. */
interface PlainPath {
  type: string;
  steps: string[];
  /** The last step is a primitive type: an object there is no value (hasValue). */
  primitive: boolean;
}

/**
 * A path of member names from a resource type, every element of one type and none a choice
 * ("Observation.value" is value[x]) or a step through a primitive (whose extensions live in "_name"): then
 * FHIRPath's member navigation (N1 §5.1, §5.2) is reading those JSON properties and flattening arrays, and
 * a primitive without a value is skipped as hasValue() skips it. This is the form of most search
 * parameters, and reading it directly is several times cheaper than building typed values for the
 * evaluator (the re-check of a page of 20 Patients was 9% of the gateway's CPU). The equivalence test
 * (test/support/fhirpath-equivalence.ts) compares this path with fhirpath.js like every other.
 * null: not such a path, evaluate normally. (The element definitions it reads are indexed with the search
 * parameters themselves, in loadR4Definitions, so they are there whenever an expression is.)
 */
function plainPath(text: string): PlainPath | null {
  const m = /^([A-Z][A-Za-z]+)((?:\.[a-z][A-Za-z0-9]*)+)$/.exec(text.trim());
  if (!m || !isResourceType(m[1]!)) return null;
  const steps = m[2]!.slice(1).split('.');
  let primitive = false;
  for (let i = 1; i <= steps.length; i++) {
    let el;
    try {
      el = getElementDefinitionForPath(m[1], steps.slice(0, i).join('.'));
    } catch {
      return null; // several types: a choice element
    }
    const code = el?.type.length === 1 ? el.type[0]!.code : undefined;
    if (!el || !code || el.path.endsWith('[x]')) return null;
    primitive = isPrimitiveType(code);
    if (i < steps.length && primitive) return null;
  }
  return { type: m[1], steps, primitive };
}

function walk(input: unknown, path: PlainPath): unknown[] {
  if ((input as { resourceType?: unknown } | null)?.resourceType !== path.type) return [];
  let items: unknown[] = [input];
  for (const step of path.steps) {
    const next: unknown[] = [];
    for (const item of items) {
      const v = (item as Record<string, unknown>)[step];
      if (Array.isArray(v)) {
        for (const x of v) if (x !== null && x !== undefined) next.push(x);
      } else if (v !== null && v !== undefined) next.push(v);
    }
    if (next.length === 0) return next;
    items = next;
  }
  return path.primitive ? items.filter((x) => typeof x !== 'object') : items;
}

/** uri and its specialisations in the R4 datatypes (each StructureDefinition's baseDefinition is uri). */
const URI_TYPES = new Set(['uri', 'url', 'canonical', 'oid', 'uuid']);

interface Branch {
  atom: FhirPathAtom;
  /** Branch "X.where(resolve() is T)": evaluate X, keep the items that resolve to a T. */
  resolveIs?: string;
  /** Branch "X.ofType(uri)": evaluate X, keep uri and its specialisations. */
  uriFamily?: boolean;
}

function branch(text: string): Branch {
  const inner = unwrap(text);
  const resolve = /^(.+)\.where\(\s*resolve\(\)\s+is\s+([A-Za-z]+)\s*\)$/.exec(inner);
  if (resolve) return { atom: parseFhirPath(resolve[1]!), resolveIs: resolve[2]! };
  const uri = /^(.+)\.ofType\(\s*uri\s*\)$/.exec(inner);
  if (uri) return { atom: parseFhirPath(uri[1]!), uriFamily: true };
  return { atom: parseFhirPath(text) };
}

/** "(a.b)" → "a.b" when the outer parentheses enclose the whole text. */
function unwrap(text: string): string {
  let t = text.trim();
  while (t.startsWith('(') && t.endsWith(')') && closingParen(t, 0) === t.length - 1)
    t = t.slice(1, -1).trim();
  return t;
}

function closingParen(text: string, open: number): number {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    if (text[i] === '(') depth++;
    else if (text[i] === ')' && --depth === 0) return i;
  }
  return -1;
}

/** The operands of the top-level "|" operators (string literals and parentheses respected). */
export function splitUnion(expression: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let start = 0;
  let quote = false;
  for (let i = 0; i < expression.length; i++) {
    const ch = expression[i];
    if (quote) {
      if (ch === '\\') i++;
      else if (ch === "'") quote = false;
    } else if (ch === "'") quote = true;
    else if (ch === '(') depth++;
    else if (ch === ')') depth--;
    else if (ch === '|' && depth === 0) {
      out.push(expression.slice(start, i).trim());
      start = i + 1;
    }
  }
  out.push(expression.slice(start).trim());
  return out;
}

function values(typed: TypedValue[]): unknown[] {
  const out: unknown[] = [];
  for (const t of typed) if (hasValue(t)) out.push(t.value);
  return out;
}

/** False for a primitive that carries only an extension or an id (no value, FHIR R4 json.html#primitive). */
function hasValue(t: TypedValue): boolean {
  return !(isPrimitiveType(t.type) && (t.value === null || typeof t.value === 'object'));
}

/**
 * The resource type a reference resolves to without fetching anything (FHIR R4 references.html): the type
 * a literal reference names, relative or absolute; for "#id", the contained resource's type.
 */
function resolvedType(value: unknown, resource: unknown): string | undefined {
  const ref = typeof value === 'string' ? value : (value as { reference?: unknown } | null)?.reference;
  if (typeof ref !== 'string') return undefined;
  if (ref.startsWith('#')) {
    const contained = (resource as { contained?: unknown } | null)?.contained;
    if (!Array.isArray(contained) || ref.length === 1) return undefined;
    const target = contained.find((c) => (c as { id?: unknown } | null)?.id === ref.slice(1)) as
      { resourceType?: unknown } | undefined;
    return typeof target?.resourceType === 'string' ? target.resourceType : undefined;
  }
  const m = LITERAL.exec(ref);
  return m && isResourceType(m[1]!) ? m[1] : undefined;
}

/** [http(s)://base/]Type/id[/_history/version] (FHIR R4 references.html#literal). */
const LITERAL =
  /^(?:https?:\/\/[^?#]*\/)?([A-Z][A-Za-z]+)\/[A-Za-z0-9\-.]{1,64}(?:\/_history\/[A-Za-z0-9\-.]{1,64})?$/;
