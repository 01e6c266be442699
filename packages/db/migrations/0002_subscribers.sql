-- Subscribers: plans, users (VPN subscribers), one subscription per user with its state machine,
-- hot usage counters kept apart from the wide rows, per-engine credentials, address pools, and the
-- transactional outbox that carries domain events to consumers after commit.

CREATE TABLE plans (
  id                text PRIMARY KEY,
  tenant_id         text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  name              text NOT NULL,
  -- NULL = unlimited.
  quota_bytes       bigint CHECK (quota_bytes IS NULL OR quota_bytes >= 0),
  -- NULL = never expires.
  duration_seconds  bigint CHECK (duration_seconds IS NULL OR duration_seconds > 0),
  engines           text[] NOT NULL DEFAULT ARRAY['xray', 'wireguard'],
  reset_strategy    text NOT NULL DEFAULT 'none' CHECK (reset_strategy IN ('none', 'day', 'week', 'month', 'year')),
  reset_anchor      text NOT NULL DEFAULT 'start' CHECK (reset_anchor IN ('start', 'calendar')),
  -- On hold: the plan's clock starts on first connection or at a date, held at most max_hold_seconds.
  hold_mode         text NOT NULL DEFAULT 'none' CHECK (hold_mode IN ('none', 'first_connection', 'date')),
  hold_start_at     timestamptz,
  max_hold_seconds  bigint CHECK (max_hold_seconds IS NULL OR max_hold_seconds > 0),
  next_plan_id      text REFERENCES plans (id) ON DELETE SET NULL,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant_id, name)
);

CREATE TABLE users (
  id          text PRIMARY KEY,
  tenant_id   text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  username    text NOT NULL,
  note        text,
  -- Allowed engines override: NULL = whatever the plan allows; otherwise intersected with it.
  engines     text[],
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);
-- Names are unique per tenant ignoring case (they appear in remarks, file names and client UIs).
CREATE UNIQUE INDEX users_tenant_username_key ON users (tenant_id, lower(username));
-- Keyset pagination within a tenant, and prefix search on names.
CREATE INDEX users_tenant_id_idx ON users (tenant_id, id);
CREATE INDEX users_tenant_username_idx ON users (tenant_id, lower(username) text_pattern_ops);

-- One subscription per user. Its id is the subscriber's key on nodes (Xray email, WireGuard peer label).
CREATE TABLE subscriptions (
  id               text PRIMARY KEY,
  tenant_id        text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  user_id          text NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE,
  plan_id          text REFERENCES plans (id) ON DELETE SET NULL,
  state            text NOT NULL CHECK (state IN ('on_hold', 'active', 'limited', 'expired', 'disabled')),
  quota_bytes      bigint CHECK (quota_bytes IS NULL OR quota_bytes >= 0),
  engines          text[] NOT NULL,
  reset_strategy   text NOT NULL DEFAULT 'none' CHECK (reset_strategy IN ('none', 'day', 'week', 'month', 'year')),
  reset_anchor     text NOT NULL DEFAULT 'start' CHECK (reset_anchor IN ('start', 'calendar')),
  hold_mode        text NOT NULL DEFAULT 'none' CHECK (hold_mode IN ('none', 'first_connection', 'date')),
  duration_seconds bigint,
  started_at       timestamptz,
  expires_at       timestamptz,
  hold_deadline    timestamptz,
  next_reset_at    timestamptz,
  -- Subscription URL token: looked up by hash; kept encrypted so admins can show the link again.
  token_hash       text NOT NULL UNIQUE,
  token_enc        text NOT NULL,
  -- Bumped by every change that alters what the subscriber is served (ETags, node desired state).
  revision         bigint NOT NULL DEFAULT 1,
  state_reason     text,
  state_changed_at timestamptz NOT NULL DEFAULT now(),
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now()
);
-- The scheduler finds due work through these partial indexes, never by scanning all subscriptions.
CREATE INDEX subscriptions_expiry_idx ON subscriptions (expires_at)
  WHERE state IN ('active', 'limited') AND expires_at IS NOT NULL;
CREATE INDEX subscriptions_hold_idx ON subscriptions (hold_deadline) WHERE state = 'on_hold';
CREATE INDEX subscriptions_reset_idx ON subscriptions (next_reset_at) WHERE next_reset_at IS NOT NULL;
CREATE INDEX subscriptions_tenant_state_idx ON subscriptions (tenant_id, state, user_id);
CREATE INDEX subscriptions_plan_idx ON subscriptions (plan_id);

-- Hot counters, one narrow row per subscription, updated by every usage batch. Fillfactor leaves room
-- for HOT updates. `used_bytes` is what counts against the quota in the current reset period.
CREATE TABLE subscription_usage (
  subscription_id  text PRIMARY KEY REFERENCES subscriptions (id) ON DELETE CASCADE,
  used_bytes       bigint NOT NULL DEFAULT 0,
  upload_bytes     bigint NOT NULL DEFAULT 0,
  download_bytes   bigint NOT NULL DEFAULT 0,
  lifetime_bytes   bigint NOT NULL DEFAULT 0,
  first_used_at    timestamptz,
  last_used_at     timestamptz
) WITH (fillfactor = 70);

-- Per-engine credentials of a user; secrets encrypted at rest (SECRET_KEY).
CREATE TABLE credentials (
  user_id                  text PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
  tenant_id                text NOT NULL,
  xray_uuid                uuid NOT NULL UNIQUE,
  trojan_password_enc      text NOT NULL,
  shadowsocks_password_enc text NOT NULL,
  wg_private_key_enc       text NOT NULL,
  wg_public_key            text NOT NULL UNIQUE,
  wg_preshared_key_enc     text NOT NULL,
  rotated_at               timestamptz NOT NULL DEFAULT now()
);

-- Address pools for WireGuard clients. Offsets index into the CIDR (see @vpnpanel/domain ip-pool);
-- `next_offset` hands out fresh addresses, `ip_free` recycles the ones released by deleted users.
CREATE TABLE ip_pools (
  id           text PRIMARY KEY,
  name         text NOT NULL UNIQUE,
  cidr_v4      text NOT NULL,
  cidr_v6      text,
  next_offset  bigint NOT NULL DEFAULT 0,
  created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ip_allocations (
  pool_id   text NOT NULL REFERENCES ip_pools (id) ON DELETE CASCADE,
  "offset"  bigint NOT NULL,
  user_id   text NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE,
  PRIMARY KEY (pool_id, "offset")
);

CREATE TABLE ip_free (
  pool_id   text NOT NULL REFERENCES ip_pools (id) ON DELETE CASCADE,
  "offset"  bigint NOT NULL,
  PRIMARY KEY (pool_id, "offset")
);

CREATE FUNCTION ip_allocation_release() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO ip_free (pool_id, "offset") VALUES (OLD.pool_id, OLD."offset") ON CONFLICT DO NOTHING;
  RETURN OLD;
END;
$$;
CREATE TRIGGER ip_allocations_release AFTER DELETE ON ip_allocations
  FOR EACH ROW EXECUTE FUNCTION ip_allocation_release();

-- Transactional outbox. Rows are written in the same transaction as the change. Consumers read rows
-- whose writing transaction is older than every transaction still running (`txid` below the snapshot
-- xmin), so a slow transaction's event is never skipped by a cursor that has moved past its id.
CREATE TABLE outbox (
  id         bigserial PRIMARY KEY,
  txid       xid8 NOT NULL DEFAULT pg_current_xact_id(),
  at         timestamptz NOT NULL DEFAULT now(),
  tenant_id  text,
  topic      text NOT NULL,
  subject_id text,
  payload    jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX outbox_txid_idx ON outbox (txid, id);

CREATE TABLE outbox_cursors (
  consumer   text PRIMARY KEY,
  last_id    bigint NOT NULL DEFAULT 0,
  updated_at timestamptz NOT NULL DEFAULT now()
);
