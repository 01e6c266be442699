// The collector role (ARCHITECTURE.md §3, §5): node sessions over mTLS, enrollment, usage ingest with
// group commit, desired-state sync and instant enforcement. `startCollector` is its composition root.
export { type Collector, type CollectorOptions, startCollector } from "./collector";
export type { IngestHooks } from "./ingest-queue";
export type { SessionSettings } from "./session";
