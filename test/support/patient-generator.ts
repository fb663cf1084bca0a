/**
 * Realistic synthetic patients for leak tests and benchmarks, made here so no test needs ../shared.
 * Deterministic for a seed. Every PHI value is returned in `phi` so tests can search a dump for it; values
 * carry a random-looking suffix so they cannot occur in a dump by chance.
 */
export interface GeneratedPatient {
  patient: Record<string, unknown>;
  observations: Record<string, unknown>[];
  phi: string[];
}

const GIVEN = ['Amelia', 'Oliver', 'Isla', 'Arjun', 'Sofia', 'Mateo', 'Hannah', 'Kwame', 'Mei', 'Lucas'];
const FAMILY = ['Okonkwo', 'Lindqvist', 'Haddad', 'Fitzgerald', 'Nakamura', 'Petrova', 'Castillo', 'Brennan'];
const STREETS = ['Juniper Lane', 'Harbour Road', 'Beacon Street', 'Millbrook Avenue', 'Orchard Close'];
const CITIES = ['Springfield', 'Riverton', 'Lakewood', 'Fairview', 'Kingsbridge'];

export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function generatePatients(count: number, seed = 42): GeneratedPatient[] {
  const rnd = mulberry32(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const digits = (n: number) => Array.from({ length: n }, () => Math.floor(rnd() * 10)).join('');
  const tag = () =>
    Math.floor(rnd() * 36 ** 5)
      .toString(36)
      .padStart(5, 'q');
  const out: GeneratedPatient[] = [];
  for (let i = 0; i < count; i++) {
    const given = `${pick(GIVEN)}${tag()}`;
    const family = `${pick(FAMILY)}${tag()}`;
    const birthDate = `19${10 + Math.floor(rnd() * 89)}-0${1 + Math.floor(rnd() * 9)}-1${Math.floor(rnd() * 9)}`;
    const mrn = `MRN${digits(9)}`;
    const ssn = `${digits(3)}-${digits(2)}-${digits(4)}`;
    const line = `${10 + Math.floor(rnd() * 980)} ${pick(STREETS)} ${tag()}`;
    const city = `${pick(CITIES)}${tag()}`;
    const phone = `555-${digits(3)}-${digits(4)}`;
    const email = `${given.toLowerCase()}.${family.toLowerCase()}@example.org`;
    const note = `Patient ${given} ${family} reports chest pain since ${tag()}.`;
    const patient = {
      resourceType: 'Patient',
      text: {
        status: 'generated',
        div: `<div xmlns="http://www.w3.org/1999/xhtml">${given} ${family}, born ${birthDate}</div>`,
      },
      identifier: [
        { system: 'http://hospital.example.org/mrn', value: mrn },
        { system: 'http://hl7.org/fhir/sid/us-ssn', value: ssn },
      ],
      name: [{ use: 'official', family, given: [given] }],
      telecom: [
        { system: 'phone', value: phone, use: 'home' },
        { system: 'email', value: email },
      ],
      gender: rnd() < 0.5 ? 'female' : 'male',
      birthDate,
      address: [{ line: [line], city, postalCode: digits(5), country: 'US' }],
    };
    const observations = [
      {
        resourceType: 'Observation',
        status: 'final',
        code: { coding: [{ system: 'http://loinc.org', code: '8867-4', display: 'Heart rate' }] },
        valueQuantity: {
          value: 50 + Math.floor(rnd() * 60),
          unit: '/min',
          system: 'http://unitsofmeasure.org',
          code: '/min',
        },
        note: [{ text: note }],
      },
    ];
    out.push({
      patient,
      observations,
      phi: [given, family, birthDate, mrn, ssn, line, city, phone, email, note],
    });
  }
  return out;
}
