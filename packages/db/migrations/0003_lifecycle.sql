-- Subscriber lifecycle: what the state machine and the scheduler need on top of 0002, and webhooks.

-- `prev_state` is written by the same UPDATE that moves `state` (SET expressions read the old row),
-- so a set-based transition can RETURN each row's previous state on PostgreSQL 15 (no RETURNING OLD).
-- `next_plan_id`: the plan applied when this one runs out (copied from the plan, so a chain continues).
ALTER TABLE subscriptions
  ADD COLUMN prev_state   text,
  ADD COLUMN next_plan_id text REFERENCES plans (id) ON DELETE SET NULL;

-- Limited subscriptions that have a next plan to switch to (small set; expired ones with a next plan
-- are found through subscriptions_expiry_idx).
CREATE INDEX subscriptions_next_plan_idx ON subscriptions (state_changed_at)
  WHERE state = 'limited' AND next_plan_id IS NOT NULL;

-- Name search: the prefix range and the page order come from one index. C collation makes LIKE
-- 'abc%' an index range and orders byte-wise, so the keyset cursor (the last lowercased name, unique
-- per tenant) is a plain comparison.
CREATE INDEX users_tenant_name_c_idx ON users (tenant_id, (lower(username) COLLATE "C"));

-- Word search in notes (GIN over a 'simple' tsvector: no stemming, names and ids stay intact).
CREATE INDEX users_note_fts_idx ON users USING gin (to_tsvector('simple', note)) WHERE note IS NOT NULL;

-- Webhook endpoints per tenant. The signing secret is shown once at creation and kept encrypted.
-- `events` empty = every event.
CREATE TABLE webhook_endpoints (
  id          text PRIMARY KEY,
  tenant_id   text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  url         text NOT NULL,
  description text,
  events      text[] NOT NULL DEFAULT '{}',
  enabled     boolean NOT NULL DEFAULT true,
  secret_enc  text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_tenant_idx ON webhook_endpoints (tenant_id, id);

-- One row per (endpoint, outbox event): the fan-out is idempotent through the unique key, the body is
-- frozen at fan-out, and the row doubles as the delivery log (attempts, last response).
CREATE TABLE webhook_deliveries (
  id               text PRIMARY KEY,
  endpoint_id      text NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
  tenant_id        text NOT NULL,
  outbox_id        bigint NOT NULL,
  topic            text NOT NULL,
  body             text NOT NULL,
  status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
  attempts         integer NOT NULL DEFAULT 0,
  next_attempt_at  timestamptz,
  last_attempt_at  timestamptz,
  last_status_code integer,
  last_error       text,
  last_duration_ms integer,
  delivered_at     timestamptz,
  created_at       timestamptz NOT NULL DEFAULT now(),
  UNIQUE (endpoint_id, outbox_id)
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, id DESC);
CREATE INDEX webhook_deliveries_finished_idx ON webhook_deliveries (created_at) WHERE status <> 'pending';
