import type { ResourceStore } from '../store/resource.store.js';
import { BundleService } from './bundle.service.js';
import { CapabilityService } from './capability.service.js';
import { ConditionalService } from './conditional.service.js';
import { loadR4Definitions } from './definitions.js';
import { FhirEngine } from './fhir-engine.js';
import { HistoryService } from './history.service.js';
import { ResourceService } from './resource.service.js';
import { keyScopeFor, patientCompartments } from './resource-json.js';
import { SearchIndex } from '../search/search-index.js';
import { SearchService } from '../search/search.service.js';

/** Wires the transport-free engine; the Nest module and the tests both use it. */
export function createFhirEngine(store: ResourceStore, serverBaseUrl: string, version = '0.1.0'): FhirEngine {
  const defs = loadR4Definitions();
  const fhirBase = `${serverBaseUrl}/fhir`;
  const searchIndex = new SearchIndex(store.keys);
  const resources = new ResourceService(defs, store, searchIndex);
  const searches = new SearchService(store, searchIndex, fhirBase);
  const conditionals = new ConditionalService(resources, searches, searchIndex);
  const bundles = new BundleService(
    store,
    (resource, id) => keyScopeFor(patientCompartments(defs, resource, id)),
    () => searchIndex.ready(),
    conditionals,
  );
  const engine = new FhirEngine(
    defs,
    resources,
    searches,
    new HistoryService(store, fhirBase),
    bundles,
    new CapabilityService(defs, serverBaseUrl, version),
    fhirBase,
    conditionals,
  );
  bundles.attach(engine);
  return engine;
}
