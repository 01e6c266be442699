-- Per-tenant client-config templates: a Clash-Meta (YAML) or sing-box (JSON) base document with the
-- place where the subscriber's proxies go, and the remark template used for every proxy's name.
CREATE TABLE config_templates (
  tenant_id   text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  kind        text NOT NULL CHECK (kind IN ('clash-meta', 'sing-box', 'remark')),
  body        text NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  updated_by  text,
  PRIMARY KEY (tenant_id, kind)
);
