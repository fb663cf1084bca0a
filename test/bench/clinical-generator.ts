/**
 * Synthetic clinical records for the search benchmark (issue #3): patients from test/support with, each, a
 * few Observations (LOINC vital signs and labs over ten years), Conditions (SNOMED CT) and Encounters, all
 * pointing at the patient with `subject`. Deterministic for a seed, ids included, so the full gateway and
 * the plaintext baseline hold exactly the same resources under the same ids.
 */
import { generatePatients, mulberry32 } from '../support/patient-generator.js';

export type Resource = Record<string, unknown> & { resourceType: string; id: string };

export interface PatientRecord {
  patient: Resource;
  /** "system|value" of the patient's MRN. */
  mrn: string;
  family: string;
  others: Resource[];
}

/** Common surnames; "Smith" and "Smithers" make `family=smi` select about 3% of patients. */
export const SURNAMES = [
  'Smith', 'Smithers', 'Johnson', 'Williams', 'Brown', 'Jones', 'Garcia', 'Miller', 'Davis', 'Rodriguez',
  'Martinez', 'Hernandez', 'Lopez', 'Gonzalez', 'Wilson', 'Anderson', 'Thomas', 'Taylor', 'Moore', 'Jackson',
  'Martin', 'Lee', 'Perez', 'Thompson', 'White', 'Harris', 'Sanchez', 'Clark', 'Ramirez', 'Lewis', 'Robinson',
  'Walker', 'Young', 'Allen', 'King', 'Wright', 'Scott', 'Torres', 'Nguyen', 'Hill', 'Flores', 'Green',
  'Adams', 'Nelson', 'Baker', 'Hall', 'Rivera', 'Campbell', 'Mitchell', 'Carter', 'Roberts', 'Okonkwo',
  'Lindqvist', 'Haddad', 'Fitzgerald', 'Nakamura', 'Petrova', 'Castillo', 'Brennan', 'Müller', 'Søndergaard',
  'Kowalski', 'Dubois', 'Rossi',
]; // prettier-ignore

export const LOINC = 'http://loinc.org';
/** [code, display, unit, min, max]: a handful of common vital signs and labs. */
export const OBSERVATION_CODES: [string, string, string, number, number][] = [
  ['8867-4', 'Heart rate', '/min', 45, 120],
  ['8480-6', 'Systolic blood pressure', 'mm[Hg]', 95, 180],
  ['8462-4', 'Diastolic blood pressure', 'mm[Hg]', 55, 110],
  ['29463-7', 'Body weight', 'kg', 45, 130],
  ['8302-2', 'Body height', 'cm', 150, 200],
  ['8310-5', 'Body temperature', 'Cel', 36, 39],
  ['2339-0', 'Glucose [Mass/volume] in Blood', 'mg/dL', 70, 200],
  ['4548-4', 'Hemoglobin A1c/Hemoglobin.total in Blood', '%', 4, 11],
];
const VITALS = new Set(['8867-4', '8480-6', '8462-4', '29463-7', '8302-2', '8310-5']);

export const SNOMED = 'http://snomed.info/sct';
const CONDITIONS: [string, string][] = [
  ['44054006', 'Diabetes mellitus type 2'],
  ['38341003', 'Hypertensive disorder'],
  ['195967001', 'Asthma'],
  ['55822004', 'Hyperlipidemia'],
  ['35489007', 'Depressive disorder'],
  ['40055000', 'Chronic sinusitis'],
  ['239873007', 'Osteoarthritis of knee'],
  ['73211009', 'Diabetes mellitus'],
];
const ENCOUNTER_TYPES: [string, string][] = [
  ['185349003', 'Encounter for check up'],
  ['270427003', 'Patient-initiated encounter'],
  ['50849002', 'Emergency room admission'],
  ['183452005', 'Emergency hospital admission'],
];

/** Observation dates span these years (UTC). */
export const FIRST_YEAR = 2015;
export const LAST_YEAR = 2024;

/**
 * Patient records until `total` resources are reached (about 10 resources per patient: 3-9 observations,
 * 0-3 conditions, 0-3 encounters). Yields in order, so a loader can stream them.
 */
export function* generateRecords(total: number, seed = 3): Generator<PatientRecord> {
  const rnd = mulberry32(seed);
  const uuid = () => {
    const h = Array.from({ length: 32 }, () => Math.floor(rnd() * 16).toString(16));
    h[12] = '4';
    h[16] = '89ab'[Math.floor(rnd() * 4)]!;
    const s = h.join('');
    return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20)}`;
  };
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
  const span = Date.UTC(LAST_YEAR + 1, 0, 1) - Date.UTC(FIRST_YEAR, 0, 1);
  const instant = () =>
    new Date(Date.UTC(FIRST_YEAR, 0, 1) + Math.floor(rnd() * span)).toISOString().replace('.000Z', 'Z');
  const base = generatePatients(Math.ceil(total / 9) + 10, seed + 1000);
  let made = 0;
  for (let i = 0; made < total; i++) {
    const g = base[i % base.length]!;
    const pid = uuid();
    const family = pick(SURNAMES);
    const identifier = (g.patient.identifier as { system: string; value: string }[]).map((x, k) =>
      k === 0 ? { ...x, value: `${x.value}${i}` } : x,
    );
    const names = g.patient.name as { use: string; family: string; given: string[] }[];
    const patient: Resource = {
      ...g.patient,
      resourceType: 'Patient',
      id: pid,
      identifier,
      name: names.map((n) => ({ ...n, family })),
      text: {
        status: 'generated',
        div: `<div xmlns="http://www.w3.org/1999/xhtml">${names[0]!.given[0]} ${family}</div>`,
      },
    };
    const subject = { reference: `Patient/${pid}` };
    const others: Resource[] = [];
    const encounters: string[] = [];
    for (let k = int(0, 3); k > 0; k--) {
      const id = uuid();
      encounters.push(id);
      const start = instant();
      const [code, display] = pick(ENCOUNTER_TYPES);
      others.push({
        resourceType: 'Encounter',
        id,
        status: 'finished',
        class: {
          system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode',
          code: 'AMB',
          display: 'ambulatory',
        },
        type: [{ coding: [{ system: SNOMED, code, display }] }],
        subject,
        period: {
          start,
          end: new Date(Date.parse(start) + int(15, 240) * 60_000).toISOString().replace('.000Z', 'Z'),
        },
      });
    }
    for (let k = int(3, 9); k > 0; k--) {
      const [code, display, unit, lo, hi] = pick(OBSERVATION_CODES);
      const category = VITALS.has(code) ? 'vital-signs' : 'laboratory';
      const obs: Resource = {
        resourceType: 'Observation',
        id: uuid(),
        status: 'final',
        category: [
          {
            coding: [
              { system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: category },
            ],
          },
        ],
        code: { coding: [{ system: LOINC, code, display }], text: display },
        subject,
        effectiveDateTime: instant(),
        valueQuantity: {
          value: Math.round((lo + rnd() * (hi - lo)) * 10) / 10,
          unit,
          system: 'http://unitsofmeasure.org',
          code: unit,
        },
      };
      if (encounters.length > 0 && rnd() < 0.5)
        obs.encounter = { reference: `Encounter/${pick(encounters)}` };
      others.push(obs);
    }
    for (let k = int(0, 3); k > 0; k--) {
      const [code, display] = pick(CONDITIONS);
      const onset = instant();
      others.push({
        resourceType: 'Condition',
        id: uuid(),
        clinicalStatus: {
          coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }],
        },
        verificationStatus: {
          coding: [
            { system: 'http://terminology.hl7.org/CodeSystem/condition-ver-status', code: 'confirmed' },
          ],
        },
        code: { coding: [{ system: SNOMED, code, display }], text: display },
        subject,
        onsetDateTime: onset,
        recordedDate: onset,
      });
    }
    const all = [patient, ...others].slice(0, total - made);
    made += all.length;
    yield {
      patient,
      mrn: `${identifier[0]!.system}|${identifier[0]!.value}`,
      family,
      others: all.slice(1),
    };
  }
}
