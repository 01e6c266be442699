import { type EnvOf, env, loadEnv } from "@vpnpanel/common";

// The control plane's whole configuration (all roles), read from the environment once per process.
// `.env.example` is generated from this schema (`vpnpanel env-example`), so the two cannot drift.

export const controlEnvSchema = {
  LOG_LEVEL: env.oneOf("Log level", ["fatal", "error", "warn", "info", "debug", "trace", "silent"], {
    default: "info",
  }),
  LOG_PRETTY: env.bool("Human-readable logs instead of JSON (development only)", { default: false }),
  HOST: env.string("Address the HTTP API listens on", { default: "127.0.0.1" }),
  PORT: env.int("Port of the HTTP API", { default: 8080, min: 0, max: 65535 }),
  PUBLIC_URL: env.string("Public base URL of the API (subscription links are built from it)", {
    default: "http://127.0.0.1:8080",
  }),
  DATA_DIR: env.string("Directory for embedded data (PGlite database, generated secret key)", {
    default: "./data",
  }),
  DATABASE_URL: env.optionalString(
    "PostgreSQL URL (postgres://…). Unset: embedded PGlite under DATA_DIR (single-process mode)",
  ),
  DATABASE_POOL_SIZE: env.int("PostgreSQL connection pool size per process", {
    default: 10,
    min: 1,
    max: 200,
  }),
  REDIS_URL: env.optionalString(
    "Redis URL (redis://…). Unset: in-process coordination (single-process mode only)",
  ),
  SECRET_KEY: env.optionalString(
    "32-byte key (base64 or hex) encrypting private keys and passwords at rest. Required with DATABASE_URL; generated into DATA_DIR otherwise",
  ),
  JWT_ISSUER: env.string("Issuer (iss) of access tokens", { default: "vpnpanel" }),
  JWT_ACCESS_TTL_SECONDS: env.int("Lifetime of access tokens", { default: 900, min: 60, max: 86_400 }),
  JWT_REFRESH_TTL_SECONDS: env.int("Lifetime of refresh tokens", { default: 2_592_000, min: 300 }),
  JWT_KEY_ROTATION_HOURS: env.int("How often the scheduler rotates the JWT signing key", {
    default: 168,
    min: 1,
  }),
  ARGON2_MEMORY_KIB: env.int("Argon2id memory cost in KiB", { default: 65_536, min: 1024 }),
  ARGON2_TIME_COST: env.int("Argon2id iterations", { default: 3, min: 1, max: 20 }),
  ARGON2_PARALLELISM: env.int("Argon2id lanes", { default: 1, min: 1, max: 16 }),
  LOGIN_RATE_LIMIT_PER_IP: env.int("Login attempts allowed per source IP per window", {
    default: 20,
    min: 1,
  }),
  LOGIN_RATE_LIMIT_PER_ACCOUNT: env.int("Login attempts allowed per account per window", {
    default: 10,
    min: 1,
  }),
  LOGIN_RATE_LIMIT_WINDOW_SECONDS: env.int("Login rate-limit window", { default: 300, min: 1 }),
  ADMIN_IP_ALLOWLIST: env.list("CIDR list allowed to reach the admin API (empty: any address)", {
    default: [],
  }),
  TRUST_PROXY: env.bool("Trust X-Forwarded-For from a reverse proxy (Caddy) for the client IP", {
    default: false,
  }),
  ROLES: env.list("Roles this process runs: api, collector, scheduler", {
    default: ["api", "collector", "scheduler"],
  }),
  SHUTDOWN_GRACE_SECONDS: env.int("How long graceful shutdown waits for in-flight work", {
    default: 10,
    min: 0,
  }),
  // ---- node control plane (collector role) ----
  COLLECTOR_HOST: env.string("Address the collector (NodeControl over mTLS, and Enrollment) listens on", {
    default: "0.0.0.0",
  }),
  COLLECTOR_PORT: env.int("Port of the collector's NodeControl service (mutual TLS)", {
    default: 9443,
    min: 0,
    max: 65535,
  }),
  ENROLL_PORT: env.int("Port of the collector's Enrollment service (server-only TLS, one-time tokens)", {
    default: 9444,
    min: 0,
    max: 65535,
  }),
  COLLECTOR_PUBLIC_HOST: env.string(
    "Host name or IP nodes dial to reach a collector (shown with enrollment tokens; always in the TLS SANs)",
    { default: "127.0.0.1" },
  ),
  COLLECTOR_TLS_SANS: env.list("Extra DNS names / IPs in the collector's TLS certificate", {
    default: ["localhost", "127.0.0.1"],
  }),
  NODE_CERT_VALIDITY_DAYS: env.int("Lifetime of node client certificates (agents renew before expiry)", {
    default: 90,
    min: 1,
    max: 825,
  }),
  ENROLLMENT_TOKEN_TTL_SECONDS: env.int("Lifetime of a one-time node enrollment token", {
    default: 900,
    min: 60,
    max: 86_400,
  }),
  NODE_DEGRADED_AFTER_SECONDS: env.int("A connected node silent this long is reported degraded", {
    default: 90,
    min: 5,
  }),
  NODE_USAGE_INTERVAL_SECONDS: env.int("Default usage batch interval sent to agents (Policy)", {
    default: 60,
    min: 1,
    max: 3600,
  }),
  NODE_HEALTH_INTERVAL_SECONDS: env.int("Default health report interval sent to agents (Policy)", {
    default: 30,
    min: 1,
    max: 3600,
  }),
  NODE_MAX_SAMPLES_PER_BATCH: env.int("Most samples an agent puts in one usage batch (Policy)", {
    default: 10_000,
    min: 100,
    max: 100_000,
  }),
  INGEST_CONCURRENCY: env.int("Usage-ingest transactions run at once per collector", {
    default: 2,
    min: 1,
    max: 32,
  }),
  INGEST_GROUP_MAX_SAMPLES: env.int("Samples from several nodes' batches committed in one transaction", {
    default: 20_000,
    min: 1,
    max: 200_000,
  }),
  TRAFFIC_RAW_RETENTION_DAYS: env.int("Days of raw traffic_events kept (daily partitions dropped after)", {
    default: 14,
    min: 1,
  }),
  TRAFFIC_ROLLUP_RETENTION_MONTHS: env.int("Months of hourly traffic rollups kept", {
    default: 13,
    min: 1,
  }),
  WG_POOL_V4: env.string("IPv4 block WireGuard client addresses are allocated from (default pool)", {
    default: "10.80.0.0/12",
  }),
  WG_POOL_V6: env.optionalString(
    "IPv6 block for WireGuard client addresses (optional; dual-stack pools share one offset per client)",
  ),
  WG_POOL_RESERVED_HOSTS: env.int("Leading host addresses of the pool kept for the nodes' own interfaces", {
    default: 1,
    min: 0,
    max: 1024,
  }),
  BULK_MAX_USERS: env.int("Most users one bulk-create request may carry", {
    default: 5000,
    min: 1000,
    max: 50_000,
  }),
  WEBHOOK_ALLOW_HTTP: env.bool("Allow plain http:// webhook URLs (https only by default)", {
    default: false,
  }),
  WEBHOOK_ALLOW_PRIVATE: env.bool(
    "Allow webhook URLs that resolve to loopback, private or link-local addresses (blocked by default)",
    { default: false },
  ),
  WEBHOOK_TIMEOUT_SECONDS: env.int("Timeout of one webhook delivery attempt", {
    default: 10,
    min: 1,
    max: 60,
  }),
  WEBHOOK_MAX_ATTEMPTS: env.int("Delivery attempts before a webhook delivery is marked failed", {
    default: 12,
    min: 1,
    max: 50,
  }),
  WEBHOOK_BACKOFF_BASE_SECONDS: env.int("Delay before the first webhook retry; doubles on each retry", {
    default: 10,
    min: 1,
  }),
  WEBHOOK_BACKOFF_MAX_SECONDS: env.int("Longest delay between two webhook retries", {
    default: 3600,
    min: 1,
  }),
  OUTBOX_RETENTION_HOURS: env.int(
    "How long processed outbox events and finished webhook deliveries are kept before the scheduler prunes them",
    { default: 168, min: 1 },
  ),
  // ---- subscription feed (GET /sub/{token}) ----
  SUB_UPDATE_INTERVAL_HOURS: env.int("profile-update-interval sent to clients (hours)", {
    default: 12,
    min: 1,
    max: 168,
  }),
  SUB_RATE_LIMIT_PER_MINUTE: env.int("Requests per minute one subscription token may make", {
    default: 60,
    min: 1,
  }),
  SUB_PROFILE_TITLE: env.optionalString(
    "profile-title clients show (a tenant's settings.sub_profile_title wins; default the user name)",
  ),
  SUB_SUPPORT_URL: env.optionalString("support-url header (a tenant's settings.sub_support_url wins)"),
  SUB_CACHE_TTL_SECONDS: env.int(
    "Lifetime of rendered subscriptions in the shared (Redis) cache; 0: each process keeps its own only",
    { default: 300, min: 0, max: 86_400 },
  ),
  SUB_CACHE_MEMORY_MB: env.int(
    "Memory for rendered subscriptions kept in each process (~3.6 KB per subscriber: size it for the fleet, e.g. 512 for 100k, for p99 ≤ 20 ms at 1k req/s)",
    {
      default: 64,
      min: 0,
      max: 4096,
    },
  ),
  WG_PEERS_PER_INTERFACE: env.int(
    "Peers per WireGuard interface on nodes (= the agents' AGENT_WG_PEERS_PER_INTERFACE; a node's wireguard.peersPerInterface wins); decides the port clients dial",
    { default: 50_000, min: 1, max: 65_536 },
  ),
};

export type ControlConfig = EnvOf<typeof controlEnvSchema>;

export function loadControlConfig(source: Record<string, string | undefined> = process.env): ControlConfig {
  return loadEnv(controlEnvSchema, source);
}
