-- Raw traffic indexes for the reads, not for the writes. The primary key (node_id, seq,
-- subscription_id, engine, ts) checked nothing the watermark rows do not (usage_batches (node_id, seq)
-- admits each batch once, and its rows are inserted in that same transaction), and no read could use
-- more than its node_id prefix. The raw reads are the tail after the last rollup (ts >= rolled_until):
-- per subscription (a subscriber's usage page, the user filter), or by time range (the hourly rollup
-- job, tenant- and node-wide reports). A btree on (subscription_id, ts) serves the first kind; a BRIN
-- on ts (rows arrive in ts order, so a block range covers a short span) the second, at almost no
-- write cost. Insert cost of the btree is about that of the key it replaces.
ALTER TABLE traffic_events DROP CONSTRAINT traffic_events_pkey;
CREATE INDEX traffic_events_subscription_idx ON traffic_events (subscription_id, ts);
CREATE INDEX traffic_events_ts_brin ON traffic_events USING brin (ts);
