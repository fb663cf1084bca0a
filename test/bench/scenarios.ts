import type { GeneratedPatient } from '../support/patient-generator.js';
import type { Target } from './harness.js';
import type { ServerInfo } from './run.js';

export interface Scenario {
  name: string;
  full: Target;
  baseline: Target;
}

/** Issue 2's scenarios: read, create, a 10-entry transaction. Later issues append theirs. */
export function gatewayScenarios(info: ServerInfo, patients: GeneratedPatient[]): Scenario[] {
  const auth = { authorization: `Bearer ${info.token}` };
  const fhirJson = { 'content-type': 'application/fhir+json' };
  let i = 0;
  const nextId = () => info.ids[i++ % info.ids.length]!;
  const nextIdentifier = () => info.identifiers[i++ % info.identifiers.length]!;
  const nextPatient = () => JSON.stringify(patients[i++ % patients.length]!.patient);
  const bundle = () =>
    JSON.stringify({
      resourceType: 'Bundle',
      type: 'transaction',
      entry: Array.from({ length: 10 }, () => ({
        resource: patients[i++ % patients.length]!.patient,
        request: { method: 'POST', url: 'Patient' },
      })),
    });
  const fhirPath = new URL(info.fhirUrl).pathname;
  return [
    {
      name: 'read Patient by id',
      full: {
        url: `${info.fhirUrl}/Patient/x`,
        headers: auth,
        next: () => ({ path: `${fhirPath}/Patient/${nextId()}` }),
      },
      baseline: {
        url: `${info.baselineUrl}/plain/Patient/x`,
        next: () => ({ path: `/plain/Patient/${nextId()}` }),
      },
    },
    {
      name: 'search Patient by identifier',
      full: {
        url: `${info.fhirUrl}/Patient`,
        headers: auth,
        next: () => ({ path: `${fhirPath}/Patient?identifier=${encodeURIComponent(nextIdentifier())}` }),
      },
      baseline: {
        url: `${info.baselineUrl}/plain/Patient`,
        next: () => ({ path: `/plain/Patient?identifier=${encodeURIComponent(nextIdentifier())}` }),
      },
    },
    {
      name: 'create Patient',
      full: {
        url: `${info.fhirUrl}/Patient`,
        method: 'POST',
        headers: { ...auth, ...fhirJson },
        next: () => ({ path: `${fhirPath}/Patient`, body: nextPatient() }),
      },
      baseline: {
        url: `${info.baselineUrl}/plain/Patient`,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        next: () => ({ path: '/plain/Patient', body: nextPatient() }),
      },
    },
    {
      name: 'transaction of 10 creates',
      full: {
        url: info.fhirUrl,
        method: 'POST',
        headers: { ...auth, ...fhirJson },
        next: () => ({ path: fhirPath, body: bundle() }),
      },
      baseline: {
        url: `${info.baselineUrl}/plain/transaction`,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        next: () => ({ path: '/plain/transaction', body: bundle() }),
      },
    },
  ];
}
