-- Node control plane: the internal CA, nodes and their certificates, enrollment tokens, health,
-- assignments of subscriptions to nodes, and the per-node desired state with its change log.

-- The panel's certificate authorities, one row each. The private key is encrypted with SECRET_KEY,
-- bound to the row ("pki.ca.key:<id>"), so a key copied to another row fails to decrypt.
CREATE TABLE pki_authorities (
  id          text PRIMARY KEY,
  cert_pem    text NOT NULL,
  key_enc     text NOT NULL,
  not_after   timestamptz NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE nodes (
  id          text PRIMARY KEY,
  tenant_id   text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  name        text NOT NULL,
  -- The public address clients dial when an inbound has no host override.
  address     text NOT NULL,
  tags        text[] NOT NULL DEFAULT '{}',
  -- Subscriptions the node is meant to carry (by_capacity); NULL = no limit.
  capacity    integer CHECK (capacity IS NULL OR capacity >= 0),
  core        text NOT NULL DEFAULT 'xray' CHECK (core IN ('xray', 'v2ray')),
  engines     text[] NOT NULL DEFAULT ARRAY['xray', 'wireguard'],
  -- Inbound definitions (@vpnpanel/render InboundDefinition, plus server-side settings whose secrets
  -- are encrypted), validated for the node's core on every write.
  inbounds    jsonb NOT NULL DEFAULT '[]'::jsonb,
  -- WireGuard interface settings (name, listen port, addresses, mtu, client-facing endpoint).
  wireguard   jsonb,
  -- The opaque per-node policy document (/nodes/{id}/policy); known keys tune the agent's Policy.
  policy      jsonb NOT NULL DEFAULT '{}'::jsonb,
  -- pending: created, never enrolled; active: holds a valid certificate; revoked: an admin revoked it.
  status      text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'active', 'revoked')),
  -- Optional per-node key for POST /traffic/node-events (tools that cannot speak gRPC); SHA-256.
  api_key_hash text UNIQUE,
  enrolled_at timestamptz,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX nodes_tenant_name_key ON nodes (tenant_id, lower(name));
CREATE INDEX nodes_tenant_id_idx ON nodes (tenant_id, id);

-- Every certificate issued to a node. The revocation list is the rows with revoked_at set; a serial
-- that is not here at all is treated as revoked too (e.g. a database restored from an old backup).
-- No foreign key: a deleted node's certificates must stay revoked.
CREATE TABLE node_certificates (
  serial_hex          text PRIMARY KEY,
  node_id             text NOT NULL,
  tenant_id           text NOT NULL,
  fingerprint_sha256  text NOT NULL,
  not_before          timestamptz NOT NULL,
  not_after           timestamptz NOT NULL,
  issued_via          text NOT NULL CHECK (issued_via IN ('enroll', 'renew')),
  issued_at           timestamptz NOT NULL DEFAULT now(),
  revoked_at          timestamptz,
  revoked_reason      text
);
CREATE INDEX node_certificates_node_idx ON node_certificates (node_id, issued_at DESC);

-- One-time enrollment tokens, stored as SHA-256; the token itself is shown to the admin once.
CREATE TABLE node_enrollment_tokens (
  token_hash  text PRIMARY KEY,
  node_id     text NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
  created_by  text,
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz NOT NULL,
  used_at     timestamptz
);
CREATE INDEX node_enrollment_tokens_node_idx ON node_enrollment_tokens (node_id);

-- What the agent last said about itself. Written on Hello, health reports, acks and disconnect;
-- kept apart from `nodes` so these frequent writes never rewrite the wide row.
CREATE TABLE node_health (
  node_id              text PRIMARY KEY REFERENCES nodes (id) ON DELETE CASCADE,
  connected            boolean NOT NULL DEFAULT false,
  collector_id         text,
  session_started_at   timestamptz,
  last_seen_at         timestamptz,
  agent_version        text,
  boot_id              text,
  capabilities         jsonb NOT NULL DEFAULT '[]'::jsonb,
  wireguard_interfaces jsonb NOT NULL DEFAULT '[]'::jsonb,
  engine_status        jsonb NOT NULL DEFAULT '[]'::jsonb,
  applied_revision     bigint NOT NULL DEFAULT 0,
  usage_queue_depth    integer,
  oldest_pending_usage timestamptz,
  lease_state          text,
  load_average_1m      double precision,
  memory_used_bytes    bigint,
  memory_total_bytes   bigint,
  apply_failures       jsonb NOT NULL DEFAULT '[]'::jsonb,
  updated_at           timestamptz NOT NULL DEFAULT now()
);

-- Which nodes serve a subscription. `auto` rows come from the tenant's strategy, `manual` ones from
-- an admin; both count the same for desired state.
CREATE TABLE node_assignments (
  subscription_id  text NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
  node_id          text NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
  tenant_id        text NOT NULL,
  role             text NOT NULL DEFAULT 'primary' CHECK (role IN ('primary', 'redundant')),
  source           text NOT NULL DEFAULT 'auto' CHECK (source IN ('auto', 'manual')),
  created_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (subscription_id, node_id)
);
CREATE INDEX node_assignments_node_idx ON node_assignments (node_id, subscription_id);

-- How a tenant's new subscriptions get nodes. Without a row: strategy 'all'.
CREATE TABLE node_assignment_policies (
  tenant_id   text PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
  strategy    text NOT NULL CHECK (strategy IN ('all', 'manual', 'round_robin', 'by_tag', 'by_capacity')),
  tags        text[] NOT NULL DEFAULT '{}',
  -- Redundant nodes per subscription besides the primary (not used by 'all' and 'manual').
  redundancy  integer NOT NULL DEFAULT 0 CHECK (redundancy BETWEEN 0 AND 16),
  rr_cursor   bigint NOT NULL DEFAULT 0,
  updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Desired state, materialized: the subscribers each node must carry, as last published to it.
-- Reconciliation compares what subscriptions × engines × assignments say now with these rows, and
-- writes one node_changes row per difference; an event seen twice therefore changes nothing twice.
-- No foreign key to subscriptions: a deleted subscription's rows are what tells us where to remove it.
CREATE TABLE node_members (
  node_id          text NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
  subscription_id  text NOT NULL,
  suspended        boolean NOT NULL,
  engines          text[] NOT NULL,
  -- Changes whenever something the node receives for this member changes (credentials, address).
  stamp            text NOT NULL,
  revision         bigint NOT NULL,
  PRIMARY KEY (node_id, subscription_id)
);
CREATE INDEX node_members_subscription_idx ON node_members (subscription_id);

-- The node's desired-state revision. Every change bumps it by one (one node_changes row each);
-- `floor_revision` is the oldest revision a diff can still start from (older change rows are pruned).
CREATE TABLE node_revisions (
  node_id          text PRIMARY KEY REFERENCES nodes (id) ON DELETE CASCADE,
  revision         bigint NOT NULL DEFAULT 1,
  config_revision  bigint NOT NULL DEFAULT 1,
  floor_revision   bigint NOT NULL DEFAULT 1
);

-- The change log: revision r of a node changed subscription_id (or, with NULL, the node config).
-- A diff from revision a is the set of subscriptions in (a, current], rendered from current state.
CREATE TABLE node_changes (
  node_id          text NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
  revision         bigint NOT NULL,
  subscription_id  text,
  op               text NOT NULL CHECK (op IN ('add', 'update', 'remove', 'suspend', 'resume', 'config')),
  at               timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (node_id, revision)
);

-- Outbox cursors ordered by (txid, id). Rows whose txid is below the snapshot xmin are final, and
-- every row that becomes visible later has a txid at or above that xmin, so a (txid, id) cursor
-- can never step over an event that commits late (an id-only cursor can).
CREATE TABLE outbox_txid_cursors (
  consumer    text PRIMARY KEY,
  last_txid   xid8 NOT NULL DEFAULT '0'::xid8,
  last_id     bigint NOT NULL DEFAULT 0,
  updated_at  timestamptz NOT NULL DEFAULT now()
);
