import {
  bigserial,
  boolean,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
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
