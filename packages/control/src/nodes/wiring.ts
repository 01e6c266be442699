import type { Clock, SecretBox } from "@vpnpanel/common";
import type { Coordinator } from "@vpnpanel/coord";
import type { Database } from "@vpnpanel/db";
import type { ControlConfig } from "../config";
import { createDesiredStateReader } from "../desired-state/desired-users";
import { createCaStore } from "../enrollment/ca-store";
import { createEnrollmentService } from "../enrollment/enrollment-service";
import { createIngestor } from "../ingest/ingest";
import { createPartitionKeeper } from "../ingest/partitions";
import { guardPostgresPool } from "../ingest/pool-guard";
import { createTrafficMaintenance } from "../traffic/maintenance";
import { createTrafficService } from "../traffic/traffic-service";
import { createNodeBus } from "./node-bus";
import { createNodesService } from "./nodes-service";

/** The node control plane's services (CA, enrollment, nodes, desired state, ingest, traffic). */
export function createNodeControlPlane(
  config: ControlConfig,
  database: Database,
  box: SecretBox,
  clock: Clock,
  coord: Coordinator,
) {
  guardPostgresPool(database);
  const db = database.db;
  const host = config.COLLECTOR_PUBLIC_HOST.includes(":")
    ? `[${config.COLLECTOR_PUBLIC_HOST}]`
    : config.COLLECTOR_PUBLIC_HOST;
  const nodeBus = createNodeBus(coord.pubsub);
  const ca = createCaStore(db, box);
  const ingestor = createIngestor({
    db,
    clock,
    partitions: createPartitionKeeper(db),
    rawRetentionDays: config.TRAFFIC_RAW_RETENTION_DAYS,
  });
  return {
    nodeBus,
    ca,
    enrollment: createEnrollmentService({
      db,
      ca,
      clock,
      bus: nodeBus,
      settings: {
        certValidityDays: config.NODE_CERT_VALIDITY_DAYS,
        tokenTtlSeconds: config.ENROLLMENT_TOKEN_TTL_SECONDS,
        collectorAddress: `${host}:${config.COLLECTOR_PORT}`,
        enrollAddress: `${host}:${config.ENROLL_PORT}`,
      },
    }),
    nodes: createNodesService({
      db,
      box,
      clock,
      bus: nodeBus,
      degradedAfterSeconds: config.NODE_DEGRADED_AFTER_SECONDS,
    }),
    desired: createDesiredStateReader({
      db,
      box,
      wgReservedHosts: (config as { WG_POOL_RESERVED_HOSTS?: number }).WG_POOL_RESERVED_HOSTS ?? 1,
    }),
    ingestor,
    traffic: createTrafficService({ db, ingestor, bus: nodeBus }),
    trafficMaintenance: createTrafficMaintenance({
      db,
      clock,
      settings: {
        rawRetentionDays: config.TRAFFIC_RAW_RETENTION_DAYS,
        rollupRetentionMonths: config.TRAFFIC_ROLLUP_RETENTION_MONTHS,
      },
    }),
  };
}

export type NodeControlServices = ReturnType<typeof createNodeControlPlane>;
