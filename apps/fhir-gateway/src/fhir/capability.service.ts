import type { CapabilityStatement, CapabilityStatementRestResource } from '@medplum/fhirtypes';
import type { R4Definitions } from './definitions.js';
import { isPatientScoped } from '../search/patient-scope.js';
import { indexedParams } from '../search/search-params.js';

/**
 * /metadata, generated from what the engine implements (https://hl7.org/fhir/R4/capabilitystatement.html).
 * When an interaction is added to FhirEngine it is added here, and the e2e suite checks the two agree.
 */
export const RESOURCE_INTERACTIONS = [
  'read',
  'vread',
  'update',
  'patch',
  'delete',
  'history-instance',
  'history-type',
  'create',
  'search-type',
] as const;
export const SYSTEM_INTERACTIONS = ['transaction', 'batch', 'history-system', 'search-system'] as const;

export class CapabilityService {
  private cached?: CapabilityStatement;

  constructor(
    private readonly defs: R4Definitions,
    private readonly serverBaseUrl: string,
    private readonly version: string,
  ) {}

  statement(): CapabilityStatement {
    this.cached ??= this.build();
    return this.cached;
  }

  private build(): CapabilityStatement {
    const fhirBase = `${this.serverBaseUrl}/fhir`;
    return {
      resourceType: 'CapabilityStatement',
      status: 'active',
      date: new Date().toISOString(),
      kind: 'instance',
      software: { name: 'fhir-consent-gateway', version: this.version },
      implementation: { description: 'FHIR R4 consent gateway', url: fhirBase },
      fhirVersion: '4.0.1',
      format: ['application/fhir+json', 'json'],
      patchFormat: ['application/json-patch+json', 'application/fhir+json'],
      rest: [
        {
          mode: 'server',
          security: {
            cors: false,
            service: [
              {
                coding: [
                  {
                    system: 'http://terminology.hl7.org/CodeSystem/restful-security-service',
                    code: 'SMART-on-FHIR',
                  },
                ],
              },
            ],
            // SMART App Launch: the oauth-uris extension points clients at the token endpoint.
            extension: [
              {
                url: 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris',
                extension: [{ url: 'token', valueUri: `${this.serverBaseUrl}/auth/token` }],
              },
            ],
          },
          resource: [...this.defs.resourceTypes].sort().map((type) => ({
            type: type as CapabilityStatementRestResource['type'],
            interaction: RESOURCE_INTERACTIONS.map((code) => ({ code })),
            versioning: 'versioned-update',
            readHistory: true,
            updateCreate: true,
            // Conditional interactions: fhir/conditional.service.ts; a delete that matches several is a 412.
            conditionalCreate: true,
            conditionalRead: 'modified-since',
            conditionalUpdate: true,
            conditionalDelete: 'single',
            operation: [
              { name: 'validate', definition: 'http://hl7.org/fhir/OperationDefinition/Resource-validate' },
            ],
            // Exactly the parameters the search engine indexes (search/search-params.ts).
            searchParam: [
              { name: '_id', type: 'token' as const },
              { name: '_lastUpdated', type: 'date' as const },
              ...[...indexedParams(type).values()].map((p) => ({
                name: p.code,
                type: p.type,
                definition: p.url,
                ...(isPatientScoped(type, p.code)
                  ? {
                      documentation:
                        'Indexed per patient: a search must name the patient (docs/ENCRYPTION.md).',
                    }
                  : {}),
              })),
            ],
            // _include and _revinclude (search/search.service.ts), with * and :iterate.
            searchInclude: ['*', ...referenceParams(type).map((p) => `${type}:${p}`)],
            searchRevInclude: this.revIncludes().get(type) ?? [],
          })),
          interaction: SYSTEM_INTERACTIONS.map((code) => ({ code })),
        },
      ],
    };
  }

  private revs?: Map<string, string[]>;

  /** For each type, the "Source:param" pairs whose reference parameter may point at it. */
  private revIncludes(): Map<string, string[]> {
    if (!this.revs) {
      this.revs = new Map();
      for (const source of [...this.defs.resourceTypes].sort()) {
        for (const p of indexedParams(source).values()) {
          if (p.type !== 'reference') continue;
          for (const target of p.targets) {
            if (!this.revs.has(target)) this.revs.set(target, []);
            this.revs.get(target)!.push(`${source}:${p.code}`);
          }
        }
      }
    }
    return this.revs;
  }
}

function referenceParams(type: string): string[] {
  return [...indexedParams(type).values()].filter((p) => p.type === 'reference').map((p) => p.code);
}
