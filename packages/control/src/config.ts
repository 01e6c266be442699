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
};

export type ControlConfig = EnvOf<typeof controlEnvSchema>;

export function loadControlConfig(source: Record<string, string | undefined> = process.env): ControlConfig {
  return loadEnv(controlEnvSchema, source);
}
