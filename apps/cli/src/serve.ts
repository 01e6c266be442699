import { buildApi } from "@vpnpanel/api";
import { startCollector } from "@vpnpanel/collector";
import { createMetricsRegistry, VERSION } from "@vpnpanel/common";
import { type ControlConfig, createControlPlane, trafficJobs } from "@vpnpanel/control";
import { createSchedulerRole } from "@vpnpanel/scheduler";
import { bootstrapFirstStart } from "./bootstrap";

const knownRoles = ["api", "collector", "scheduler"] as const;
type RoleName = (typeof knownRoles)[number];

export function parseRoles(list: string[]): RoleName[] {
  const out: RoleName[] = [];
  for (const r of list) {
    if (!(knownRoles as readonly string[]).includes(r)) {
      throw new Error(`unknown role "${r}" (expected ${knownRoles.join(", ")})`);
    }
    out.push(r as RoleName);
  }
  if (out.length === 0) throw new Error("at least one role is required");
  return out;
}

export async function serve(config: ControlConfig, roles: RoleName[]) {
  if (!config.DATABASE_URL && roles.length < knownRoles.length) {
    // PGlite is one connection inside one process: splitting roles needs a server database.
    throw new Error(
      "running a subset of roles needs DATABASE_URL (and REDIS_URL); the embedded database is single-process",
    );
  }
  const cp = await createControlPlane(config);
  const log = cp.log;
  const registry = createMetricsRegistry({ service: "vpnpanel", version: VERSION, roles });
  const stops: Array<() => Promise<void>> = [];

  // Signals are handled from here on, not only once every role is up: a SIGTERM during start-up (a
  // supervisor giving up, a test stopping early) waits for the roles being started, then stops them.
  let markStarted!: () => void;
  const started = new Promise<void>((resolve) => {
    markStarted = resolve;
  });
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "shutting down");
    const timer = setTimeout(
      () => {
        log.error("graceful shutdown timed out; exiting");
        process.exit(1);
      },
      config.SHUTDOWN_GRACE_SECONDS * 1000 + 1000,
    );
    timer.unref();
    await started;
    for (const stop of stops.reverse())
      await stop().catch((err) => log.error({ err }, "error while stopping"));
    await cp.close();
    process.exit(0);
  };
  process.on("SIGINT", () => void shutdown("SIGINT"));
  process.on("SIGTERM", () => void shutdown("SIGTERM"));

  const first = await bootstrapFirstStart(cp);

  if (roles.includes("api")) {
    const { app } = await buildApi(cp, { registry });
    await app.listen({ host: config.HOST, port: config.PORT });
    const addr = app.server.address();
    const port = typeof addr === "object" && addr ? addr.port : config.PORT;
    const base = `http://${config.HOST.includes(":") ? `[${config.HOST}]` : config.HOST}:${port}`;
    stops.push(() => app.close());
    process.stdout.write(
      `\nvpnpanel ${VERSION} is up (roles: ${roles.join(", ")})\n  API docs: ${base}/docs\n  OpenAPI:  ${base}/openapi.json\n`,
    );
  }
  if (roles.includes("collector")) {
    // Node sessions (mTLS), enrollment, usage ingest and the nodes outbox consumer. Its stop drains:
    // in-flight batches commit and are acked, then every stream is closed with DRAINING.
    const collector = await startCollector(cp, { registry });
    stops.push(() => collector.stop());
    process.stdout.write(`  Collector: ${collector.address} (mTLS), enrollment ${collector.enrollAddress}\n`);
  }
  if (roles.includes("scheduler")) {
    // Other features pass their periodic jobs here (`jobs`), e.g. traffic partitions and rollups.
    const jobs = trafficJobs(cp.trafficMaintenance, (nodeIds) =>
      cp.nodeBus.publish({ type: "changed", nodeIds }),
    );
    const scheduler = createSchedulerRole(cp, { registry, jobs });
    scheduler.start();
    stops.push(() => scheduler.stop());
  }

  if (first) {
    process.stdout.write(
      `\nFirst start: created the platform owner (shown once, change it after signing in)\n  email:    ${first.email}\n  password: ${first.password}\n\n`,
    );
  }

  markStarted();
}
