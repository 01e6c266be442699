import {
  bigint,
  bigserial,
  boolean,
  doublePrecision,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uuid,
} from "drizzle-orm/pg-core";

// Mirrors the SQL migrations (the migrations are the source of truth; this is the typed view of them).

const ts = (name: string) => timestamp(name, { withTimezone: true, mode: "date" });

export const tenants = pgTable("tenants", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  slug: text("slug").notNull(),
  status: text("status").$type<"active" | "suspended">().notNull().default("active"),
  settings: jsonb("settings").$type<Record<string, unknown>>().notNull().default({}),
  createdAt: ts("created_at").notNull().defaultNow(),
  updatedAt: ts("updated_at").notNull().defaultNow(),
});

export const admins = pgTable("admins", {
  id: text("id").primaryKey(),
  email: text("email").notNull(),
  displayName: text("display_name"),
  passwordHash: text("password_hash").notNull(),
  status: text("status").$type<"active" | "disabled">().notNull().default("active"),
  isPlatformOwner: boolean("is_platform_owner").notNull().default(false),
  tokenVersion: integer("token_version").notNull().default(1),
  lastLoginAt: ts("last_login_at"),
  createdAt: ts("created_at").notNull().defaultNow(),
  updatedAt: ts("updated_at").notNull().defaultNow(),
});

export const memberships = pgTable(
  "memberships",
  {
    tenantId: text("tenant_id").notNull(),
    adminId: text("admin_id").notNull(),
    role: text("role").$type<"owner" | "admin" | "operator" | "auditor">().notNull(),
    createdAt: ts("created_at").notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.adminId] })],
);

export const signingKeys = pgTable("signing_keys", {
  kid: text("kid").primaryKey(),
  alg: text("alg").notNull(),
  publicJwk: jsonb("public_jwk").$type<Record<string, unknown>>().notNull(),
  privateKeyEnc: text("private_key_enc").notNull(),
  createdAt: ts("created_at").notNull().defaultNow(),
  retiredAt: ts("retired_at"),
  verifyUntil: ts("verify_until"),
});

export const refreshTokens = pgTable("refresh_tokens", {
  id: text("id").primaryKey(),
  familyId: text("family_id").notNull(),
  adminId: text("admin_id").notNull(),
  tokenHash: text("token_hash").notNull(),
  tokenVersion: integer("token_version").notNull(),
  createdAt: ts("created_at").notNull().defaultNow(),
  expiresAt: ts("expires_at").notNull(),
  usedAt: ts("used_at"),
  revokedAt: ts("revoked_at"),
  sourceIp: text("source_ip"),
  userAgent: text("user_agent"),
});

export const auditLog = pgTable("audit_log", {
  id: bigserial("id", { mode: "bigint" }).primaryKey(),
  at: ts("at").notNull().defaultNow(),
  actorType: text("actor_type").$type<"admin" | "system" | "node">().notNull(),
  actorId: text("actor_id"),
  tenantId: text("tenant_id"),
  action: text("action").notNull(),
  targetType: text("target_type"),
  targetId: text("target_id"),
  requestId: text("request_id"),
  sourceIp: text("source_ip"),
  summary: jsonb("summary").$type<Record<string, unknown>>().notNull().default({}),
});

// ---- 0002_subscribers ----

const bytes = (name: string) => bigint(name, { mode: "bigint" });
type Engine = "xray" | "wireguard";
export type SubscriptionState = "on_hold" | "active" | "limited" | "expired" | "disabled";
export type ResetStrategy = "none" | "day" | "week" | "month" | "year";
export type ResetAnchor = "start" | "calendar";
export type HoldMode = "none" | "first_connection" | "date";

export const plans = pgTable("plans", {
  id: text("id").primaryKey(),
  tenantId: text("tenant_id").notNull(),
  name: text("name").notNull(),
  quotaBytes: bytes("quota_bytes"),
  durationSeconds: bigint("duration_seconds", { mode: "number" }),
  engines: text("engines").array().$type<Engine[]>().notNull(),
  resetStrategy: text("reset_strategy").$type<ResetStrategy>().notNull().default("none"),
  resetAnchor: text("reset_anchor").$type<ResetAnchor>().notNull().default("start"),
  holdMode: text("hold_mode").$type<HoldMode>().notNull().default("none"),
  holdStartAt: ts("hold_start_at"),
  maxHoldSeconds: bigint("max_hold_seconds", { mode: "number" }),
  nextPlanId: text("next_plan_id"),
  createdAt: ts("created_at").notNull().defaultNow(),
  updatedAt: ts("updated_at").notNull().defaultNow(),
});

export const users = pgTable("users", {
  id: text("id").primaryKey(),
  tenantId: text("tenant_id").notNull(),
  username: text("username").notNull(),
  note: text("note"),
  engines: text("engines").array().$type<Engine[]>(),
  createdAt: ts("created_at").notNull().defaultNow(),
  updatedAt: ts("updated_at").notNull().defaultNow(),
});

export const subscriptions = pgTable("subscriptions", {
  id: text("id").primaryKey(),
  tenantId: text("tenant_id").notNull(),
  userId: text("user_id").notNull(),
  planId: text("plan_id"),
  state: text("state").$type<SubscriptionState>().notNull(),
  quotaBytes: bytes("quota_bytes"),
  engines: text("engines").array().$type<Engine[]>().notNull(),
  resetStrategy: text("reset_strategy").$type<ResetStrategy>().notNull().default("none"),
  resetAnchor: text("reset_anchor").$type<ResetAnchor>().notNull().default("start"),
  holdMode: text("hold_mode").$type<HoldMode>().notNull().default("none"),
  durationSeconds: bigint("duration_seconds", { mode: "number" }),
  startedAt: ts("started_at"),
  expiresAt: ts("expires_at"),
  holdDeadline: ts("hold_deadline"),
  nextResetAt: ts("next_reset_at"),
  tokenHash: text("token_hash").notNull(),
  tokenEnc: text("token_enc").notNull(),
  revision: bigint("revision", { mode: "number" }).notNull().default(1),
  stateReason: text("state_reason"),
  stateChangedAt: ts("state_changed_at").notNull().defaultNow(),
  createdAt: ts("created_at").notNull().defaultNow(),
  updatedAt: ts("updated_at").notNull().defaultNow(),
});

export const subscriptionUsage = pgTable("subscription_usage", {
  subscriptionId: text("subscription_id").primaryKey(),
  usedBytes: bytes("used_bytes").notNull().default(0n),
  uploadBytes: bytes("upload_bytes").notNull().default(0n),
  downloadBytes: bytes("download_bytes").notNull().default(0n),
  lifetimeBytes: bytes("lifetime_bytes").notNull().default(0n),
  firstUsedAt: ts("first_used_at"),
  lastUsedAt: ts("last_used_at"),
});

export const credentials = pgTable("credentials", {
  userId: text("user_id").primaryKey(),
  tenantId: text("tenant_id").notNull(),
  xrayUuid: uuid("xray_uuid").notNull(),
  trojanPasswordEnc: text("trojan_password_enc").notNull(),
  shadowsocksPasswordEnc: text("shadowsocks_password_enc").notNull(),
  wgPrivateKeyEnc: text("wg_private_key_enc").notNull(),
  wgPublicKey: text("wg_public_key").notNull(),
  wgPresharedKeyEnc: text("wg_preshared_key_enc").notNull(),
  rotatedAt: ts("rotated_at").notNull().defaultNow(),
});

export const ipPools = pgTable("ip_pools", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  cidrV4: text("cidr_v4").notNull(),
  cidrV6: text("cidr_v6"),
  nextOffset: bigint("next_offset", { mode: "number" }).notNull().default(0),
  createdAt: ts("created_at").notNull().defaultNow(),
});

export const ipAllocations = pgTable(
  "ip_allocations",
  {
    poolId: text("pool_id").notNull(),
    offset: bigint("offset", { mode: "number" }).notNull(),
    userId: text("user_id").notNull(),
  },
  (t) => [primaryKey({ columns: [t.poolId, t.offset] })],
);

export const outbox = pgTable("outbox", {
  id: bigserial("id", { mode: "bigint" }).primaryKey(),
  at: ts("at").notNull().defaultNow(),
  tenantId: text("tenant_id"),
  topic: text("topic").notNull(),
  subjectId: text("subject_id"),
  payload: jsonb("payload").$type<Record<string, unknown>>().notNull().default({}),
});

// ---- 0003_lifecycle ----
// Columns added to `subscriptions` (prev_state, next_plan_id) are read through raw SQL in the
// lifecycle layer; the tables below are new.

export const webhookEndpoints = pgTable("webhook_endpoints", {
  id: text("id").primaryKey(),
  tenantId: text("tenant_id").notNull(),
  url: text("url").notNull(),
  description: text("description"),
  events: text("events").array().notNull(),
  enabled: boolean("enabled").notNull().default(true),
  secretEnc: text("secret_enc").notNull(),
  createdAt: ts("created_at").notNull().defaultNow(),
  updatedAt: ts("updated_at").notNull().defaultNow(),
});

export type WebhookDeliveryStatus = "pending" | "delivered" | "failed";

export const webhookDeliveries = pgTable("webhook_deliveries", {
  id: text("id").primaryKey(),
  endpointId: text("endpoint_id").notNull(),
  tenantId: text("tenant_id").notNull(),
  outboxId: bigint("outbox_id", { mode: "number" }).notNull(),
  topic: text("topic").notNull(),
  body: text("body").notNull(),
  status: text("status").$type<WebhookDeliveryStatus>().notNull().default("pending"),
  attempts: integer("attempts").notNull().default(0),
  nextAttemptAt: ts("next_attempt_at"),
  lastAttemptAt: ts("last_attempt_at"),
  lastStatusCode: integer("last_status_code"),
  lastError: text("last_error"),
  lastDurationMs: integer("last_duration_ms"),
  deliveredAt: ts("delivered_at"),
  createdAt: ts("created_at").notNull().defaultNow(),
});

// ---- 0007_config_templates ----

export type TemplateKind = "clash-meta" | "sing-box" | "remark";

export const configTemplates = pgTable(
  "config_templates",
  {
    tenantId: text("tenant_id").notNull(),
    kind: text("kind").$type<TemplateKind>().notNull(),
    body: text("body").notNull(),
    updatedAt: ts("updated_at").notNull().defaultNow(),
    updatedBy: text("updated_by"),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.kind] })],
);

// ---- 0004_nodes ----

export type NodeCore = "xray" | "v2ray";
export type NodeStatus = "pending" | "active" | "revoked";
export type AssignmentStrategy = "all" | "manual" | "round_robin" | "by_tag" | "by_capacity";

export const pkiAuthorities = pgTable("pki_authorities", {
  id: text("id").primaryKey(),
  certPem: text("cert_pem").notNull(),
  keyEnc: text("key_enc").notNull(),
  notAfter: ts("not_after").notNull(),
  createdAt: ts("created_at").notNull().defaultNow(),
});

export const nodes = pgTable("nodes", {
  id: text("id").primaryKey(),
  tenantId: text("tenant_id").notNull(),
  name: text("name").notNull(),
  address: text("address").notNull(),
  tags: text("tags").array().notNull().default([]),
  capacity: integer("capacity"),
  core: text("core").$type<NodeCore>().notNull().default("xray"),
  engines: text("engines").array().$type<Engine[]>().notNull(),
  inbounds: jsonb("inbounds").$type<Record<string, unknown>[]>().notNull().default([]),
  wireguard: jsonb("wireguard").$type<Record<string, unknown> | null>(),
  policy: jsonb("policy").$type<Record<string, unknown>>().notNull().default({}),
  status: text("status").$type<NodeStatus>().notNull().default("pending"),
  apiKeyHash: text("api_key_hash"),
  enrolledAt: ts("enrolled_at"),
  createdAt: ts("created_at").notNull().defaultNow(),
  updatedAt: ts("updated_at").notNull().defaultNow(),
});

export const nodeCertificates = pgTable("node_certificates", {
  serialHex: text("serial_hex").primaryKey(),
  nodeId: text("node_id").notNull(),
  tenantId: text("tenant_id").notNull(),
  fingerprintSha256: text("fingerprint_sha256").notNull(),
  notBefore: ts("not_before").notNull(),
  notAfter: ts("not_after").notNull(),
  issuedVia: text("issued_via").$type<"enroll" | "renew">().notNull(),
  issuedAt: ts("issued_at").notNull().defaultNow(),
  revokedAt: ts("revoked_at"),
  revokedReason: text("revoked_reason"),
});

export const nodeEnrollmentTokens = pgTable("node_enrollment_tokens", {
  tokenHash: text("token_hash").primaryKey(),
  nodeId: text("node_id").notNull(),
  createdBy: text("created_by"),
  createdAt: ts("created_at").notNull().defaultNow(),
  expiresAt: ts("expires_at").notNull(),
  usedAt: ts("used_at"),
});

export const nodeHealth = pgTable("node_health", {
  nodeId: text("node_id").primaryKey(),
  connected: boolean("connected").notNull().default(false),
  collectorId: text("collector_id"),
  sessionStartedAt: ts("session_started_at"),
  lastSeenAt: ts("last_seen_at"),
  agentVersion: text("agent_version"),
  bootId: text("boot_id"),
  capabilities: jsonb("capabilities").$type<unknown[]>().notNull().default([]),
  wireguardInterfaces: jsonb("wireguard_interfaces").$type<unknown[]>().notNull().default([]),
  engineStatus: jsonb("engine_status").$type<unknown[]>().notNull().default([]),
  appliedRevision: bigint("applied_revision", { mode: "bigint" }).notNull().default(0n),
  usageQueueDepth: integer("usage_queue_depth"),
  oldestPendingUsage: ts("oldest_pending_usage"),
  leaseState: text("lease_state"),
  loadAverage1m: doublePrecision("load_average_1m"),
  memoryUsedBytes: bigint("memory_used_bytes", { mode: "bigint" }),
  memoryTotalBytes: bigint("memory_total_bytes", { mode: "bigint" }),
  applyFailures: jsonb("apply_failures").$type<unknown[]>().notNull().default([]),
  updatedAt: ts("updated_at").notNull().defaultNow(),
});

export const nodeAssignments = pgTable(
  "node_assignments",
  {
    subscriptionId: text("subscription_id").notNull(),
    nodeId: text("node_id").notNull(),
    tenantId: text("tenant_id").notNull(),
    role: text("role").$type<"primary" | "redundant">().notNull().default("primary"),
    source: text("source").$type<"auto" | "manual">().notNull().default("auto"),
    createdAt: ts("created_at").notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.subscriptionId, t.nodeId] })],
);

export const nodeAssignmentPolicies = pgTable("node_assignment_policies", {
  tenantId: text("tenant_id").primaryKey(),
  strategy: text("strategy").$type<AssignmentStrategy>().notNull(),
  tags: text("tags").array().notNull().default([]),
  redundancy: integer("redundancy").notNull().default(0),
  rrCursor: bigint("rr_cursor", { mode: "number" }).notNull().default(0),
  updatedAt: ts("updated_at").notNull().defaultNow(),
});

export const nodeRevisions = pgTable("node_revisions", {
  nodeId: text("node_id").primaryKey(),
  revision: bigint("revision", { mode: "bigint" }).notNull().default(1n),
  configRevision: bigint("config_revision", { mode: "bigint" }).notNull().default(1n),
  floorRevision: bigint("floor_revision", { mode: "bigint" }).notNull().default(1n),
});

// ---- 0005_traffic ----
// usage_batches, traffic_events and traffic_rollups_hourly are written and read through raw SQL
// (unnest batches, partitioned tables); only the small state tables are typed here.

export const nodeUsageState = pgTable("node_usage_state", {
  nodeId: text("node_id").primaryKey(),
  floorSeq: bigint("floor_seq", { mode: "bigint" }).notNull().default(0n),
});
