import http from "node:http";
import https from "node:https";
import type { LookupFunction } from "node:net";
import { type Clock, type Logger, newId, type SecretBox } from "@vpnpanel/common";
import { type Db, queryRows } from "@vpnpanel/db";
import { sql } from "drizzle-orm";
import { advanceOutboxCursor, lockOutboxCursor } from "../outbox/outbox";
import { textArray, toDate, toNumber, tsParam } from "../shared/sql-values";
import { retryDelaySeconds } from "./backoff";
import { SIGNATURE_HEADER, signatureHeader } from "./signing";
import {
  checkUrlShape,
  type ResolvedAddress,
  type Resolver,
  resolveTarget,
  systemResolver,
  type UrlPolicy,
} from "./url-guard";
import { WEBHOOK_EVENTS, webhookSecretContext } from "./webhooks-service";

// Webhook delivery in two steps, both run by the scheduler:
// 1. fan-out: the "webhooks" outbox consumer turns each committed user.* event into one delivery row
//    per matching endpoint, and moves its cursor, in one transaction (a crash re-reads the page; the
//    unique (endpoint, event) key makes that a no-op). The body is frozen here.
// 2. delivery: due rows are leased (claimed with a future next_attempt_at, so no other run sends them),
//    POSTed outside any transaction, and the outcome recorded: delivered, or retried with exponential
//    backoff until WEBHOOK_MAX_ATTEMPTS, then failed. At-least-once: receivers dedupe on the event id.

export const WEBHOOKS_CONSUMER = "webhooks";
const CLAIM_LEASE_SECONDS = 120;
const SEND_CONCURRENCY = 8;

export interface DeliverySettings {
  policy: UrlPolicy;
  timeoutSeconds: number;
  maxAttempts: number;
  backoffBaseSeconds: number;
  backoffMaxSeconds: number;
  userAgent: string;
}

interface OutboxEvent {
  id: string;
  txid: string;
  at: unknown;
  tenant_id: string | null;
  topic: string;
  subject_id: string | null;
  payload: Record<string, unknown> | string;
}

export function createWebhookDelivery(deps: {
  db: Db;
  box: SecretBox;
  clock: Clock;
  log: Logger;
  settings: DeliverySettings;
  resolver?: Resolver;
}) {
  const { db, box, clock, log, settings } = deps;

  /** Turns one page of outbox events into deliveries; returns how many events it consumed. */
  async function fanOutPage(limit: number): Promise<{ events: number; deliveries: number }> {
    const now = clock.now();
    return db.transaction(async (tx) => {
      const cursor = await lockOutboxCursor(tx, WEBHOOKS_CONSUMER);
      if (!cursor) return { events: 0, deliveries: 0 };
      const events = await queryRows<OutboxEvent>(
        tx,
        sql`SELECT id::text AS id, txid::text AS txid, at, tenant_id, topic, subject_id, payload FROM outbox
            WHERE (txid, id) > (${cursor.last_txid}::xid8, ${cursor.last_id}::bigint)
              AND txid < pg_snapshot_xmin(pg_current_snapshot())
            ORDER BY txid, id LIMIT ${limit}`,
      );
      if (events.length === 0) return { events: 0, deliveries: 0 };
      const tenants = [...new Set(events.map((e) => e.tenant_id).filter((t): t is string => t !== null))];
      const endpoints = tenants.length
        ? await queryRows<{ id: string; tenant_id: string; events: string[] }>(
            tx,
            sql`SELECT id, tenant_id, events FROM webhook_endpoints
                WHERE enabled AND tenant_id = ANY(${textArray(tenants)})`,
          )
        : [];
      const rows: Array<{
        id: string;
        endpoint: string;
        tenant: string;
        event: string;
        topic: string;
        body: string;
      }> = [];
      if (endpoints.length > 0) {
        const matching = events.filter(
          (e) => e.tenant_id !== null && (WEBHOOK_EVENTS as readonly string[]).includes(e.topic),
        );
        const payloads = matching.map((e) =>
          typeof e.payload === "string" ? JSON.parse(e.payload) : e.payload,
        );
        const userIds = [
          ...new Set(payloads.map((p) => p.user_id).filter((u): u is string => typeof u === "string")),
        ];
        const names = new Map(
          (
            await queryRows<{ id: string; username: string }>(
              tx,
              sql`SELECT id, username FROM users WHERE id = ANY(${textArray(userIds)})`,
            )
          ).map((u) => [u.id, u.username]),
        );
        matching.forEach((e, i) => {
          const payload = payloads[i]!;
          const username = names.get(String(payload.user_id)) ?? payload.username;
          const body = JSON.stringify({
            id: e.id,
            event: e.topic,
            created_at: toDate(e.at)?.toISOString(),
            tenant_id: e.tenant_id,
            data: { ...payload, ...(username ? { username } : {}) },
          });
          for (const ep of endpoints) {
            if (ep.tenant_id !== e.tenant_id) continue;
            if (ep.events.length > 0 && !ep.events.includes(e.topic)) continue;
            rows.push({
              id: newId("evt"),
              endpoint: ep.id,
              tenant: ep.tenant_id,
              event: e.id,
              topic: e.topic,
              body,
            });
          }
        });
      }
      if (rows.length > 0) {
        await tx.execute(sql`
          INSERT INTO webhook_deliveries (id, endpoint_id, tenant_id, outbox_id, topic, body, next_attempt_at, created_at)
          SELECT t.id, t.ep, t.tn, t.ev::bigint, t.tp, t.body, ${tsParam(now)}, ${tsParam(now)}
          FROM unnest(${textArray(rows.map((r) => r.id))}, ${textArray(rows.map((r) => r.endpoint))},
                      ${textArray(rows.map((r) => r.tenant))}, ${textArray(rows.map((r) => r.event))},
                      ${textArray(rows.map((r) => r.topic))}, ${textArray(rows.map((r) => r.body))})
               AS t(id, ep, tn, ev, tp, body)
          ON CONFLICT (endpoint_id, outbox_id) DO NOTHING`);
      }
      const last = events.at(-1)!;
      await advanceOutboxCursor(tx, WEBHOOKS_CONSUMER, last);
      return { events: events.length, deliveries: rows.length };
    });
  }

  function post(url: URL, addresses: ResolvedAddress[], headers: Record<string, string>, body: string) {
    // Connect only to the addresses that passed the guard: no second DNS lookup can redirect the request.
    const lookup: LookupFunction = (_host, opts, cb) => {
      const list = addresses.map((a) => ({ address: a.address, family: a.family }));
      if ((opts as { all?: boolean }).all) (cb as (e: null, a: typeof list) => void)(null, list);
      else cb(null, list[0]!.address, list[0]!.family);
    };
    const client = url.protocol === "https:" ? https : http;
    return new Promise<{ status: number; snippet: string }>((resolve, reject) => {
      const req = client.request(
        url,
        { method: "POST", headers, lookup, timeout: settings.timeoutSeconds * 1000, agent: false },
        (res) => {
          let snippet = "";
          res.setEncoding("utf8");
          res.on("data", (chunk: string) => {
            if (snippet.length < 512) snippet += chunk.slice(0, 512 - snippet.length);
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, snippet }));
          res.on("error", reject);
        },
      );
      req.on("timeout", () => req.destroy(new Error(`timed out after ${settings.timeoutSeconds} s`)));
      req.on("error", reject);
      req.end(body);
    });
  }

  interface Claimed {
    id: string;
    endpoint_id: string;
    outbox_id: string;
    topic: string;
    body: string;
    attempts: unknown;
    url: string | null;
    secret_enc: string | null;
    enabled: boolean | null;
  }

  async function record(c: Claimed, outcome: { status?: number; error?: string; durationMs: number }) {
    const now = clock.now();
    const attempts = (toNumber(c.attempts) ?? 0) + 1;
    const ok = outcome.status !== undefined && outcome.status >= 200 && outcome.status < 300;
    const giveUp = !ok && attempts >= settings.maxAttempts;
    const next = new Date(
      now.getTime() +
        retryDelaySeconds(attempts, settings.backoffBaseSeconds, settings.backoffMaxSeconds) * 1000,
    );
    await db.execute(sql`UPDATE webhook_deliveries SET
        attempts = ${attempts}, last_attempt_at = ${tsParam(now)},
        last_status_code = ${outcome.status ?? null}::int, last_error = ${outcome.error ?? null}::text,
        last_duration_ms = ${Math.round(outcome.durationMs)},
        status = ${ok ? "delivered" : giveUp ? "failed" : "pending"},
        delivered_at = ${ok ? tsParam(now) : sql`NULL`},
        next_attempt_at = ${ok || giveUp ? sql`NULL` : tsParam(next)}
      WHERE id = ${c.id} AND status = 'pending'`);
    return ok ? "delivered" : giveUp ? "failed" : "retry";
  }

  async function send(c: Claimed) {
    if (!c.url || !c.secret_enc || !c.enabled) {
      return record(c, { error: "endpoint disabled", durationMs: 0 });
    }
    const started = performance.now();
    try {
      const url = checkUrlShape(c.url, settings.policy);
      const addresses = await resolveTarget(url, settings.policy, deps.resolver ?? systemResolver);
      const secret = box.decrypt(c.secret_enc, webhookSecretContext(c.endpoint_id));
      const timestamp = Math.floor(clock.now().getTime() / 1000);
      const res = await post(
        url,
        addresses,
        {
          "content-type": "application/json",
          "user-agent": settings.userAgent,
          "x-vpnpanel-event": c.topic,
          "x-vpnpanel-event-id": c.outbox_id,
          "x-vpnpanel-delivery": c.id,
          [SIGNATURE_HEADER]: signatureHeader(secret, timestamp, c.body),
        },
        c.body,
      );
      const ok = res.status >= 200 && res.status < 300;
      return record(c, {
        status: res.status,
        ...(ok ? {} : { error: `HTTP ${res.status}${res.snippet ? `: ${res.snippet.slice(0, 200)}` : ""}` }),
        durationMs: performance.now() - started,
      });
    } catch (e) {
      return record(c, {
        error: (e as Error).message.slice(0, 300),
        durationMs: performance.now() - started,
      });
    }
  }

  return {
    /** Consumes the outbox into deliveries until it is drained (bounded per run). */
    async fanOut(opts: { pageSize?: number; maxPages?: number; signal?: AbortSignal } = {}) {
      let events = 0;
      let deliveries = 0;
      for (let i = 0; i < (opts.maxPages ?? 50) && !opts.signal?.aborted; i++) {
        const page = await fanOutPage(opts.pageSize ?? 1000);
        events += page.events;
        deliveries += page.deliveries;
        if (page.events < (opts.pageSize ?? 1000)) break;
      }
      return { events, deliveries };
    },

    /** Sends the deliveries that are due; returns the outcome counts. */
    async deliverDue(opts: { limit?: number; signal?: AbortSignal } = {}) {
      const now = clock.now();
      const lease = new Date(now.getTime() + CLAIM_LEASE_SECONDS * 1000);
      const claimed = await db.transaction((tx) =>
        queryRows<Claimed>(
          tx,
          sql`WITH c AS (
                SELECT id FROM webhook_deliveries
                WHERE status = 'pending' AND next_attempt_at <= ${tsParam(now)}
                ORDER BY next_attempt_at LIMIT ${opts.limit ?? 100} FOR UPDATE SKIP LOCKED),
              upd AS (
                UPDATE webhook_deliveries d SET next_attempt_at = ${tsParam(lease)} FROM c WHERE d.id = c.id
                RETURNING d.id, d.endpoint_id, d.outbox_id::text AS outbox_id, d.topic, d.body, d.attempts)
              SELECT upd.*, e.url, e.secret_enc, e.enabled
              FROM upd LEFT JOIN webhook_endpoints e ON e.id = upd.endpoint_id
              ORDER BY upd.id`,
        ),
      );
      const counts = { delivered: 0, retry: 0, failed: 0 };
      let next = 0;
      const worker = async () => {
        while (next < claimed.length && !opts.signal?.aborted) {
          const c = claimed[next++]!;
          counts[await send(c)]++;
        }
      };
      await Promise.all(Array.from({ length: Math.min(SEND_CONCURRENCY, claimed.length) }, worker));
      if (counts.failed)
        log.warn({ failed: counts.failed }, "webhook deliveries gave up after the last attempt");
      return counts;
    },
  };
}

export type WebhookDelivery = ReturnType<typeof createWebhookDelivery>;
