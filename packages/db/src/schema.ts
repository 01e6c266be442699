import {
  bigint,
  bigserial,
  boolean,
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
