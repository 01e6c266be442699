-- Foundation: tenants, panel accounts, memberships, JWT signing keys, refresh tokens, audit log.

CREATE TABLE tenants (
  id          text PRIMARY KEY,
  name        text NOT NULL,
  slug        text NOT NULL UNIQUE,
  status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
  settings    jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE admins (
  id                text PRIMARY KEY,
  email             text NOT NULL,
  display_name      text,
  password_hash     text NOT NULL,
  status            text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
  is_platform_owner boolean NOT NULL DEFAULT false,
  -- Bumped on password change, disable and role change: every token carries it, so a bump revokes
  -- all sessions of the account at once.
  token_version     integer NOT NULL DEFAULT 1,
  last_login_at     timestamptz,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX admins_email_key ON admins (lower(email));

CREATE TABLE memberships (
  tenant_id  text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  admin_id   text NOT NULL REFERENCES admins (id) ON DELETE CASCADE,
  role       text NOT NULL CHECK (role IN ('owner', 'admin', 'operator', 'auditor')),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, admin_id)
);
CREATE INDEX memberships_admin_idx ON memberships (admin_id);

-- JWT signing keys. A key signs while it is the newest active one; after rotation it keeps verifying
-- until `verify_until` (its last token has expired), then it is deleted.
CREATE TABLE signing_keys (
  kid              text PRIMARY KEY,
  alg              text NOT NULL,
  public_jwk       jsonb NOT NULL,
  private_key_enc  text NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now(),
  retired_at       timestamptz,
  verify_until     timestamptz
);

-- Refresh tokens rotate on every use. All tokens descended from one login share a family; presenting
-- an already-used token is reuse (theft) and revokes the whole family.
CREATE TABLE refresh_tokens (
  id             text PRIMARY KEY,
  family_id      text NOT NULL,
  admin_id       text NOT NULL REFERENCES admins (id) ON DELETE CASCADE,
  token_hash     text NOT NULL UNIQUE,
  token_version  integer NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now(),
  expires_at     timestamptz NOT NULL,
  used_at        timestamptz,
  revoked_at     timestamptz,
  source_ip      text,
  user_agent     text
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_admin_idx ON refresh_tokens (admin_id);
CREATE INDEX refresh_tokens_expires_idx ON refresh_tokens (expires_at);

-- Append-only audit trail. No foreign keys: the trail outlives what it describes.
CREATE TABLE audit_log (
  id           bigserial PRIMARY KEY,
  at           timestamptz NOT NULL DEFAULT now(),
  actor_type   text NOT NULL CHECK (actor_type IN ('admin', 'system', 'node')),
  actor_id     text,
  tenant_id    text,
  action       text NOT NULL,
  target_type  text,
  target_id    text,
  request_id   text,
  source_ip    text,
  summary      jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_tenant_idx ON audit_log (tenant_id, id DESC);
CREATE INDEX audit_log_actor_idx ON audit_log (actor_id, id DESC);
CREATE INDEX audit_log_target_idx ON audit_log (target_id, id DESC);
CREATE INDEX audit_log_action_idx ON audit_log (action, id DESC);

CREATE FUNCTION audit_log_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION audit_log_reject_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION audit_log_reject_change();
