// The daemon's composition root (`vpnpanel agent`): reads the validated config once, builds the real
// engine slots, the agent, its local HTTP endpoint and signal handling.

import { readFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { createLogger, VERSION } from "@vpnpanel/common";
import { type Agent, createAgent } from "./agent";
import type { AgentConfig } from "./config";
import { createWireguardSlot, createXraySlot, type EngineSlot } from "./engine-slots";
import { type AgentHttpServer, startAgentHttpServer } from "./reporting/http-server";

export interface RunningAgent {
  agent: Agent;
  http: AgentHttpServer | null;
  stop(): Promise<void>;
}

async function readCaPem(config: AgentConfig): Promise<string | undefined> {
  if (config.AGENT_CA_PEM) return config.AGENT_CA_PEM.replace(/\\n/g, "\n");
  if (config.AGENT_CA_PEM_FILE) return readFile(config.AGENT_CA_PEM_FILE, "utf8");
  return undefined;
}

export function buildEngineSlots(config: AgentConfig, logger: ReturnType<typeof createLogger>): EngineSlot[] {
  const slots: EngineSlot[] = [];
  if (config.AGENT_ENGINES.includes("xray")) {
    slots.push(
      createXraySlot({
        flavor: config.AGENT_XRAY_FLAVOR,
        ...(config.AGENT_XRAY_BINARY ? { binary: config.AGENT_XRAY_BINARY } : {}),
        stateDir: join(config.AGENT_STATE_DIR, "xray"),
        local: { apiPort: config.AGENT_XRAY_API_PORT, logLevel: config.AGENT_XRAY_LOG_LEVEL },
        concurrency: config.AGENT_XRAY_CONCURRENCY,
        logger,
      }),
    );
  }
  if (config.AGENT_ENGINES.includes("wireguard")) {
    slots.push(
      createWireguardSlot({
        stateDir: join(config.AGENT_STATE_DIR, "wireguard"),
        local: {
          interfacePrefix: config.AGENT_WG_INTERFACE_PREFIX,
          listenPort: config.AGENT_WG_LISTEN_PORT,
          peersPerInterface: config.AGENT_WG_PEERS_PER_INTERFACE,
        },
        mode: config.AGENT_WG_MODE,
        ...(config.AGENT_WG_NETNS ? { netns: config.AGENT_WG_NETNS } : {}),
        downOnExit: config.AGENT_WG_DOWN_ON_EXIT,
        logger,
      }),
    );
  }
  return slots;
}

export async function runAgent(
  config: AgentConfig,
  opts: { handleSignals?: boolean } = {},
): Promise<RunningAgent> {
  const logger = createLogger({
    service: "vpnpanel-agent",
    level: config.LOG_LEVEL,
    pretty: config.LOG_PRETTY,
  });
  const caPem = await readCaPem(config);
  const agent = createAgent({
    stateDir: config.AGENT_STATE_DIR,
    addresses: config.AGENT_COLLECTOR_ADDRESSES,
    enrollment: {
      ...(config.AGENT_ENROLL_ADDRESS ? { address: config.AGENT_ENROLL_ADDRESS } : {}),
      ...(config.AGENT_ENROLL_TOKEN ? { token: config.AGENT_ENROLL_TOKEN } : {}),
      ...(caPem ? { caPem } : {}),
      hostname: config.AGENT_HOSTNAME ?? hostname(),
    },
    ...(config.AGENT_TLS_SERVER_NAME ? { tlsServerName: config.AGENT_TLS_SERVER_NAME } : {}),
    slots: buildEngineSlots(config, logger),
    logger,
    intervals: {
      usageSeconds: config.AGENT_USAGE_INTERVAL_SECONDS,
      healthSeconds: config.AGENT_HEALTH_INTERVAL_SECONDS,
      maintenanceSeconds: config.AGENT_MAINTENANCE_INTERVAL_SECONDS,
    },
    backoff: { baseMs: config.AGENT_RECONNECT_BASE_MS, maxMs: config.AGENT_RECONNECT_MAX_MS },
    renewAtFraction: config.AGENT_CERT_RENEW_AT_PERCENT / 100,
    queue: { maxBatches: config.AGENT_QUEUE_MAX_BATCHES, maxBytes: config.AGENT_QUEUE_MAX_BYTES },
    autoTick: true,
    shutdownGraceMs: config.AGENT_SHUTDOWN_GRACE_SECONDS * 1000,
    agentVersion: VERSION,
  });
  await agent.start();
  const http =
    config.AGENT_HTTP_PORT > 0
      ? await startAgentHttpServer({
          host: config.AGENT_HTTP_HOST,
          port: config.AGENT_HTTP_PORT,
          registry: agent.metrics().registry,
          health: agent.health,
        })
      : null;
  if (http) logger.info({ host: config.AGENT_HTTP_HOST, port: http.port }, "health and metrics endpoint up");

  let stopping: Promise<void> | null = null;
  const stop = () => {
    stopping ??= (async () => {
      await agent.stop();
      await http?.close();
    })();
    return stopping;
  };
  if (opts.handleSignals !== false) {
    const onSignal = (signal: string) => {
      logger.info({ signal }, "stopping");
      const hard = setTimeout(
        () => {
          logger.error("graceful stop timed out; exiting");
          process.exit(1);
        },
        config.AGENT_SHUTDOWN_GRACE_SECONDS * 1000 + 30_000,
      );
      hard.unref();
      stop().then(
        () => process.exit(0),
        (error: unknown) => {
          logger.error({ err: error instanceof Error ? error.message : String(error) }, "stop failed");
          process.exit(1);
        },
      );
    };
    process.once("SIGINT", () => onSignal("SIGINT"));
    process.once("SIGTERM", () => onSignal("SIGTERM"));
  }
  return { agent, http, stop };
}
