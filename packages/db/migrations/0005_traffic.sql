-- Usage ingestion: per-node batch watermarks (exactly-once), raw traffic partitioned by day, hourly
-- rollups partitioned by month, and the partition maintenance functions the scheduler calls.

-- One row per stored usage batch. The primary key is the dedupe key: a batch is stored and counted
-- in the transaction that inserts its row, so a replay finds the row and adds nothing. `txid` lets
-- the rollup job find every batch committed since its last run without missing a late commit.
CREATE TABLE usage_batches (
  node_id      text NOT NULL,
  seq          bigint NOT NULL CHECK (seq > 0),
  sampled_at   timestamptz NOT NULL,
  received_at  timestamptz NOT NULL DEFAULT now(),
  txid         xid8 NOT NULL DEFAULT pg_current_xact_id(),
  samples      integer NOT NULL,
  skipped      integer NOT NULL DEFAULT 0,
  bytes        bigint NOT NULL,
  source       text NOT NULL DEFAULT 'grpc' CHECK (source IN ('grpc', 'http')),
  PRIMARY KEY (node_id, seq)
);
CREATE INDEX usage_batches_txid_idx ON usage_batches (txid);

-- Old watermark rows are pruned; every seq at or below floor_seq counts as stored (the pruning job
-- only moves the floor over a gap-free prefix of received batches).
CREATE TABLE node_usage_state (
  node_id    text PRIMARY KEY,
  floor_seq  bigint NOT NULL DEFAULT 0
);

-- Raw samples, one row per (batch, subscription, engine). `ts` is the batch's sampled_at, so a
-- replay carries the same value; PostgreSQL requires the partition column in the unique key.
-- engine: 1 = xray, 2 = wireguard (the proto's Engine numbers).
CREATE TABLE traffic_events (
  ts               timestamptz NOT NULL,
  node_id          text NOT NULL,
  seq              bigint NOT NULL,
  subscription_id  text NOT NULL,
  tenant_id        text NOT NULL,
  engine           smallint NOT NULL,
  up               bigint NOT NULL,
  down             bigint NOT NULL,
  PRIMARY KEY (node_id, seq, subscription_id, engine, ts)
) PARTITION BY RANGE (ts);

CREATE TABLE traffic_rollups_hourly (
  hour             timestamptz NOT NULL,
  tenant_id        text NOT NULL,
  node_id          text NOT NULL,
  subscription_id  text NOT NULL,
  engine           smallint NOT NULL,
  up               bigint NOT NULL,
  down             bigint NOT NULL,
  samples          integer NOT NULL,
  PRIMARY KEY (hour, tenant_id, node_id, subscription_id, engine)
) PARTITION BY RANGE (hour);
CREATE INDEX traffic_rollups_subscription_idx ON traffic_rollups_hourly (tenant_id, subscription_id, hour);
CREATE INDEX traffic_rollups_node_idx ON traffic_rollups_hourly (tenant_id, node_id, hour);

-- The rollup job's progress: batches with txid below last_txid are rolled up; every hour before
-- rolled_until has been rolled at least once (readers take raw rows from there on).
CREATE TABLE traffic_rollup_state (
  id             boolean PRIMARY KEY DEFAULT true CHECK (id),
  last_txid      xid8 NOT NULL DEFAULT '0'::xid8,
  rolled_until   timestamptz NOT NULL DEFAULT '-infinity',
  updated_at     timestamptz NOT NULL DEFAULT now()
);
INSERT INTO traffic_rollup_state DEFAULT VALUES;

-- Creates the daily partitions of traffic_events for [p_from, p_from + p_days] and the monthly ones
-- of traffic_rollups_hourly covering the same span. Idempotent; returns how many it created.
-- Partitions are named by their UTC day / month so the drop function can read their age back.
CREATE FUNCTION traffic_ensure_partitions(p_from date, p_days integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  d date;
  m date;
  created integer := 0;
  name text;
BEGIN
  FOR i IN 0..greatest(p_days, 0) LOOP
    d := p_from + i;
    name := 'traffic_events_p' || to_char(d, 'YYYYMMDD');
    IF to_regclass(name) IS NULL THEN
      EXECUTE format('CREATE TABLE %I PARTITION OF traffic_events FOR VALUES FROM (%L) TO (%L)',
        name, (d::timestamp AT TIME ZONE 'UTC'), ((d + 1)::timestamp AT TIME ZONE 'UTC'));
      created := created + 1;
    END IF;
  END LOOP;
  m := date_trunc('month', p_from)::date;
  WHILE m <= p_from + greatest(p_days, 0) LOOP
    name := 'traffic_rollups_hourly_p' || to_char(m, 'YYYYMM');
    IF to_regclass(name) IS NULL THEN
      EXECUTE format('CREATE TABLE %I PARTITION OF traffic_rollups_hourly FOR VALUES FROM (%L) TO (%L)',
        name, (m::timestamp AT TIME ZONE 'UTC'), ((m + interval '1 month')::timestamp AT TIME ZONE 'UTC'));
      created := created + 1;
    END IF;
    m := (m + interval '1 month')::date;
  END LOOP;
  RETURN created;
END;
$$;

-- Drops raw partitions whose whole day is before p_events_before, and rollup partitions whose whole
-- month is before p_rollups_before. Returns the names it dropped.
CREATE FUNCTION traffic_drop_partitions(p_events_before date, p_rollups_before date) RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
  r record;
  dropped text[] := '{}';
BEGIN
  FOR r IN
    SELECT c.relname, p.relname AS parent
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    JOIN pg_class p ON p.oid = i.inhparent
    WHERE p.relname IN ('traffic_events', 'traffic_rollups_hourly')
  LOOP
    IF r.parent = 'traffic_events' AND r.relname ~ '^traffic_events_p[0-9]{8}$'
       AND to_date(right(r.relname, 8), 'YYYYMMDD') + 1 <= p_events_before THEN
      EXECUTE format('DROP TABLE %I', r.relname);
      dropped := dropped || r.relname;
    ELSIF r.parent = 'traffic_rollups_hourly' AND r.relname ~ '^traffic_rollups_hourly_p[0-9]{6}$'
       AND (to_date(right(r.relname, 6), 'YYYYMM') + interval '1 month')::date <= p_rollups_before THEN
      EXECUTE format('DROP TABLE %I', r.relname);
      dropped := dropped || r.relname;
    END IF;
  END LOOP;
  RETURN dropped;
END;
$$;

SELECT traffic_ensure_partitions((now() AT TIME ZONE 'UTC')::date - 1, 3);
