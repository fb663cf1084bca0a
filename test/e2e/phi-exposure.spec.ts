import { afterAll, beforeAll, expect, it } from 'vitest';
import { generatePatients } from '../support/patient-generator.js';
import { startTestGateway, type RunningGateway } from '../support/gateway.js';

/**
 * PHI never escapes into logs or error messages (ARCHITECTURE.md promise 1). Every log line of a run with
 * successes and failures, at debug level, is captured and searched for the PHI values sent.
 */
let gw: RunningGateway;
const logLines: string[] = [];

beforeAll(async () => {
  gw = await startTestGateway(
    { LOG_LEVEL: 'debug' },
    { logDestination: { write: (line: string) => void logLines.push(line) } },
  );
}, 60_000);
afterAll(async () => gw?.close());

it('keeps PHI out of logs and OperationOutcomes', async () => {
  const token = await gw.token('system/*.cruds');
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json' };
  const [p] = generatePatients(1, 1234);
  const phi = p!.phi;
  const bodies: string[] = [];
  const send = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${gw.fhirUrl}/${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    bodies.push(await res.text());
    return res;
  };
  const created = await send('POST', 'Patient', p!.patient);
  expect(created.status).toBe(201);
  // Failures that carry PHI in the request: a PHI value as an invalid code, in an unknown element, in the
  // wrong resource type, and as the id and a query value of a read. (Unknown element *names* are echoed:
  // naming the failing element is what an OperationOutcome is for.)
  expect((await send('POST', 'Patient', { ...p!.patient, gender: phi[0] })).status).toBe(422);
  expect((await send('POST', 'Patient', { ...p!.patient, favouriteColour: phi[1] })).status).toBe(422);
  expect((await send('POST', 'Observation', p!.patient)).status).toBe(400);
  expect(
    (await send('GET', `Patient/${encodeURIComponent(phi[2]!)}?name=${encodeURIComponent(phi[0]!)}`)).status,
  ).toBe(404);

  const errorBodies = bodies.slice(1).join('\n');
  const logs = logLines.join('\n');
  expect(logLines.length).toBeGreaterThan(4);
  expect(logs).toContain('"reqId"');
  for (const value of phi) {
    expect(logs).not.toContain(value);
    expect(errorBodies).not.toContain(value);
  }
});
