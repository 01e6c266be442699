import { ConfigError, type EnvOf, env, loadEnv } from "@vpnpanel/common";

// The node agent's whole configuration, read from the environment once (by `vpnpanel agent`).
// `vpnpanel agent --env-example` prints this schema, so the documentation cannot drift from the code.
// Everything the control plane decides (inbounds, WireGuard addresses, sampling intervals) arrives over
// the session; the values here are what the agent needs before it has ever talked to a collector.

export const agentEnvSchema = {
  LOG_LEVEL: env.oneOf("Log level", ["fatal", "error", "warn", "info", "debug", "trace", "silent"], {
    default: "info",
  }),
  LOG_PRETTY: env.bool("Human-readable logs instead of JSON (development only)", { default: false }),
  AGENT_COLLECTOR_ADDRESSES: env.list(
    "Comma-separated host:port list of collector NodeControl endpoints (mTLS); tried in turn on failure",
  ),
  AGENT_ENROLL_ADDRESS: env.optionalString(
    "host:port of the collector's Enrollment endpoint (TLS only). Needed on the first start only",
  ),
  AGENT_ENROLL_TOKEN: env.optionalString(
    "One-time enrollment token from the panel. Needed on the first start only; ignored once enrolled",
  ),
  AGENT_CA_PEM_FILE: env.optionalString(
    "File holding the panel CA certificate (PEM) the agent trusts for enrollment. Needed on the first start only",
  ),
  AGENT_CA_PEM: env.optionalString("The panel CA certificate inline (PEM); alternative to AGENT_CA_PEM_FILE"),
  AGENT_TLS_SERVER_NAME: env.optionalString(
    "Name to verify in the collector's certificate when the addresses are not in it (e.g. dialing by IP)",
  ),
  AGENT_STATE_DIR: env.string(
    "Directory for the node identity, desired state, usage queue and engine files (kept private, 0700)",
    { default: "/var/lib/vpnpanel-agent" },
  ),
  AGENT_HOSTNAME: env.optionalString("Hostname reported at enrollment (default: the machine's hostname)"),
  AGENT_ENGINES: env.list("Engines this node runs: xray, wireguard", { default: ["xray", "wireguard"] }),
  AGENT_XRAY_FLAVOR: env.oneOf(
    "Which core the Xray engine drives: Xray-core or v2ray 4.x",
    ["xray", "v2ray4"],
    {
      default: "xray",
    },
  ),
  AGENT_XRAY_BINARY: env.optionalString("Core binary (default: `xray`, or `v2ray` for v2ray4, on PATH)"),
  AGENT_XRAY_API_PORT: env.int("Loopback port of the core's gRPC API", {
    default: 10085,
    min: 1,
    max: 65535,
  }),
  AGENT_XRAY_LOG_LEVEL: env.oneOf("Core log level", ["debug", "info", "warning", "error", "none"], {
    default: "warning",
  }),
  AGENT_XRAY_CONCURRENCY: env.int("Core API calls in flight while applying users", {
    default: 64,
    min: 1,
    max: 1024,
  }),
  AGENT_WG_INTERFACE_PREFIX: env.string("WireGuard interfaces are named <prefix>0, <prefix>1, …", {
    default: "wg",
  }),
  AGENT_WG_LISTEN_PORT: env.int("Listen port of interface 0 when the node config names none (+k for k)", {
    default: 51820,
    min: 1,
    max: 65535,
  }),
  AGENT_WG_MODE: env.oneOf("kernel, userspace (wireguard-go) or auto", ["auto", "kernel", "userspace"], {
    default: "auto",
  }),
  AGENT_WG_NETNS: env.optionalString("Run every wg/ip command inside this network namespace (tests)"),
  AGENT_WG_PEERS_PER_INTERFACE: env.int("Peers per WireGuard interface before the next one is used", {
    default: 50_000,
    min: 1,
    max: 65_536,
  }),
  AGENT_WG_DOWN_ON_EXIT: env.bool(
    "Delete the WireGuard interfaces when the agent stops (default: leave them serving; they are adopted on start)",
    { default: false },
  ),
  AGENT_USAGE_INTERVAL_SECONDS: env.int(
    "Usage sampling interval until the control plane's policy says otherwise",
    {
      default: 10,
      min: 1,
    },
  ),
  AGENT_HEALTH_INTERVAL_SECONDS: env.int(
    "Health report interval until the control plane's policy says otherwise",
    {
      default: 30,
      min: 1,
    },
  ),
  AGENT_MAINTENANCE_INTERVAL_SECONDS: env.int(
    "How often certificate renewal, lease expiry and failed applies are checked",
    { default: 15, min: 1 },
  ),
  AGENT_RECONNECT_BASE_MS: env.int("First reconnect delay; doubles per failure (with jitter)", {
    default: 500,
    min: 10,
  }),
  AGENT_RECONNECT_MAX_MS: env.int("Reconnect delay cap", { default: 30_000, min: 100 }),
  AGENT_CERT_RENEW_AT_PERCENT: env.int("Renew the node certificate at this share of its lifetime", {
    default: 67,
    min: 10,
    max: 95,
  }),
  AGENT_QUEUE_MAX_BATCHES: env.int("Usage batches kept on disk before unsent ones are merged", {
    default: 10_000,
    min: 10,
  }),
  AGENT_QUEUE_MAX_BYTES: env.int("Bytes of usage batches kept on disk before unsent ones are merged", {
    default: 64 * 1024 * 1024,
    min: 65_536,
  }),
  AGENT_HTTP_HOST: env.string("Address of the /health and /metrics endpoint", { default: "127.0.0.1" }),
  AGENT_HTTP_PORT: env.int("Port of the /health and /metrics endpoint (0 = disabled)", {
    default: 9810,
    min: 0,
    max: 65535,
  }),
  AGENT_SHUTDOWN_GRACE_SECONDS: env.int("How long a graceful stop waits for the collector to ack usage", {
    default: 5,
    min: 0,
  }),
};

export type AgentConfig = EnvOf<typeof agentEnvSchema>;

export function loadAgentConfig(source: Record<string, string | undefined> = process.env): AgentConfig {
  const config = loadEnv(agentEnvSchema, source);
  const problems: string[] = [];
  for (const engine of config.AGENT_ENGINES) {
    if (engine !== "xray" && engine !== "wireguard")
      problems.push(`AGENT_ENGINES: unknown engine "${engine}" (expected xray, wireguard)`);
  }
  for (const address of config.AGENT_COLLECTOR_ADDRESSES) {
    if (!/^[^\s]+:\d{1,5}$/.test(address))
      problems.push(`AGENT_COLLECTOR_ADDRESSES: "${address}" is not host:port`);
  }
  if (config.AGENT_COLLECTOR_ADDRESSES.length === 0)
    problems.push("AGENT_COLLECTOR_ADDRESSES needs at least one host:port");
  if (config.AGENT_RECONNECT_MAX_MS < config.AGENT_RECONNECT_BASE_MS)
    problems.push("AGENT_RECONNECT_MAX_MS must be >= AGENT_RECONNECT_BASE_MS");
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}
