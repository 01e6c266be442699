-- Subscription feed: a per-tenant "config generation" that changes whenever anything tenant-wide that
-- goes into a rendered subscription changes (nodes, their inbounds/hosts/WireGuard settings, the keys
-- and ports agents report, templates, tenant settings, address pools). `GET /sub/{token}` reads it in
-- the same query as the subscription, so ETags and cache keys move on every replica at once: nothing
-- is ever deleted from a cache, a changed input simply names a new entry.
--
-- Triggers rather than calls from the services: the nodes, collector and template code paths (and a
-- hand-run UPDATE) all bump it without knowing this table exists. Per-subscription inputs (user,
-- subscription, usage, credentials, assignments, address) are read directly by that query instead.

CREATE TABLE sub_feed_generations (
  -- No foreign key: a tenant's deletion cascades into nodes whose triggers write here; a leftover row
  -- of a deleted tenant is harmless.
  tenant_id   text PRIMARY KEY,
  generation  bigint NOT NULL DEFAULT 1
);

CREATE FUNCTION sub_feed_bump(p_tenant text) RETURNS void LANGUAGE sql AS $$
  INSERT INTO sub_feed_generations (tenant_id, generation) VALUES (p_tenant, 1)
  ON CONFLICT (tenant_id) DO UPDATE SET generation = sub_feed_generations.generation + 1
$$;

-- The part of an agent's reported WireGuard interfaces that clients see (names, public keys, listen
-- ports), without the peer counts that change on every health report. Accepts either key spelling.
CREATE FUNCTION sub_feed_wireguard_identity(interfaces jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT coalesce(string_agg(
           concat_ws('|', e->>'name', coalesce(e->>'public_key', e->>'publicKey'),
                     coalesce(e->>'listen_port', e->>'listenPort')),
           ',' ORDER BY e->>'name'), '')
  FROM jsonb_array_elements(CASE WHEN jsonb_typeof(interfaces) = 'array' THEN interfaces ELSE '[]'::jsonb END) AS e
$$;

CREATE FUNCTION sub_feed_nodes_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') THEN PERFORM sub_feed_bump(OLD.tenant_id); END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') AND (TG_OP = 'INSERT' OR NEW.tenant_id IS DISTINCT FROM OLD.tenant_id) THEN
    PERFORM sub_feed_bump(NEW.tenant_id);
  END IF;
  RETURN NULL;
END;
$$;
CREATE TRIGGER nodes_sub_feed_ins_del AFTER INSERT OR DELETE ON nodes
  FOR EACH ROW EXECUTE FUNCTION sub_feed_nodes_changed();
CREATE TRIGGER nodes_sub_feed_upd AFTER UPDATE ON nodes
  FOR EACH ROW WHEN (
    OLD.name IS DISTINCT FROM NEW.name OR OLD.address IS DISTINCT FROM NEW.address
    OR OLD.core IS DISTINCT FROM NEW.core OR OLD.engines IS DISTINCT FROM NEW.engines
    OR OLD.inbounds IS DISTINCT FROM NEW.inbounds OR OLD.wireguard IS DISTINCT FROM NEW.wireguard
    OR OLD.status IS DISTINCT FROM NEW.status OR OLD.tenant_id IS DISTINCT FROM NEW.tenant_id)
  EXECUTE FUNCTION sub_feed_nodes_changed();

CREATE FUNCTION sub_feed_node_health_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM sub_feed_bump(n.tenant_id) FROM nodes n WHERE n.id = NEW.node_id;
  RETURN NULL;
END;
$$;
CREATE TRIGGER node_health_sub_feed_ins AFTER INSERT ON node_health
  FOR EACH ROW WHEN (sub_feed_wireguard_identity(NEW.wireguard_interfaces) <> '')
  EXECUTE FUNCTION sub_feed_node_health_changed();
CREATE TRIGGER node_health_sub_feed_upd AFTER UPDATE ON node_health
  FOR EACH ROW WHEN (
    sub_feed_wireguard_identity(OLD.wireguard_interfaces) IS DISTINCT FROM sub_feed_wireguard_identity(NEW.wireguard_interfaces))
  EXECUTE FUNCTION sub_feed_node_health_changed();

CREATE FUNCTION sub_feed_tenant_row_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') THEN PERFORM sub_feed_bump(OLD.tenant_id); END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN PERFORM sub_feed_bump(NEW.tenant_id); END IF;
  RETURN NULL;
END;
$$;
CREATE TRIGGER config_templates_sub_feed AFTER INSERT OR UPDATE OR DELETE ON config_templates
  FOR EACH ROW EXECUTE FUNCTION sub_feed_tenant_row_changed();

CREATE FUNCTION sub_feed_tenant_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM sub_feed_bump(NEW.id);
  RETURN NULL;
END;
$$;
CREATE TRIGGER tenants_sub_feed AFTER UPDATE ON tenants
  FOR EACH ROW WHEN (
    OLD.name IS DISTINCT FROM NEW.name OR OLD.status IS DISTINCT FROM NEW.status
    OR OLD.settings IS DISTINCT FROM NEW.settings)
  EXECUTE FUNCTION sub_feed_tenant_changed();

-- Pools are shared by every tenant; changing one (rare: it re-addresses its clients) moves them all.
CREATE FUNCTION sub_feed_pools_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO sub_feed_generations (tenant_id, generation) SELECT id, 1 FROM tenants
  ON CONFLICT (tenant_id) DO UPDATE SET generation = sub_feed_generations.generation + 1;
  RETURN NULL;
END;
$$;
-- Row-level with a WHEN: allocations bump `next_offset` on every new user, which must not count.
CREATE TRIGGER ip_pools_sub_feed_upd AFTER UPDATE ON ip_pools
  FOR EACH ROW WHEN (OLD.cidr_v4 IS DISTINCT FROM NEW.cidr_v4 OR OLD.cidr_v6 IS DISTINCT FROM NEW.cidr_v6)
  EXECUTE FUNCTION sub_feed_pools_changed();
CREATE TRIGGER ip_pools_sub_feed_del AFTER DELETE ON ip_pools
  FOR EACH ROW EXECUTE FUNCTION sub_feed_pools_changed();
