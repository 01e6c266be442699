// EngineDriver for Xray-core and v2ray 4.x. Writes the base config, supervises the core, and applies
// users through HandlerService.AlterInbound (or per-user inbounds for v2ray Shadowsocks) with bounded
// concurrency. The driver's registry is the source of truth for what is applied: v2ray 4.34 has no
// GetInboundUsers, and after a core restart the registry is what gets re-applied.

import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "pino";
import { createListeners, createSerialLock, errorMessage, mapBounded } from "../async-utils";
import {
  type AgentUser,
  type ApplyResult,
  type EngineDriver,
  type EngineEvents,
  emptyApplyResult,
  type UsageReading,
  type UserFailure,
  type XrayCredentials,
} from "../types";
import { diffUsers, validateUserId } from "../user-diff";
import { type CoreApiClient, createCoreApiClient } from "./api-client";
import {
  API_TAG,
  buildCoreConfig,
  isPerUserInbound,
  type XrayBaseConfig,
  type XrayInboundDefinition,
} from "./base-config";
import { type CoreProcess, createCoreProcess } from "./core-process";
import { type CoreFlavor, flavorByName, type XrayFlavorName } from "./flavor";
import { parseUserTraffic, type SysStats } from "./messages-stats";
import { addUserToInbound, removeUserFromInbound, takeFinalReading, type UserOpsContext } from "./user-ops";

export interface XrayDriverOptions {
  flavor: XrayFlavorName | CoreFlavor;
  /** Core binary; defaults to `xray` / `v2ray` on PATH. */
  binary?: string;
  /** Holds the generated config and the core's pid file. */
  stateDir: string;
  logger: Logger;
  /** AlterInbound calls in flight (research/limits.md §3: 64 ≈ 4.5k adds/s, the Node client's ceiling). */
  concurrency?: number;
  apiDeadlineMs?: number;
  readyTimeoutMs?: number;
}

export interface XrayDriver extends EngineDriver<XrayBaseConfig> {
  pid(): number | null;
}

interface AppliedUser {
  creds: XrayCredentials;
  print: string;
}

const fingerprint = (user: AgentUser): string | null => {
  const x = user.xray;
  if (!x) return null;
  return JSON.stringify([
    x.uuid,
    x.trojanPassword,
    x.shadowsocksPassword,
    x.vmessAlterId ?? 0,
    x.shadowsocksPort ?? 0,
  ]);
};

export function createXrayDriver(options: XrayDriverOptions): XrayDriver {
  const flavor = typeof options.flavor === "string" ? flavorByName(options.flavor) : options.flavor;
  const logger = options.logger.child({ engine: "xray", flavor: flavor.name });
  const concurrency = options.concurrency ?? 64;
  const registry = new Map<string, AppliedUser>();
  const events = createListeners<EngineEvents>((error) =>
    logger.error({ err: errorMessage(error) }, "listener"),
  );
  const exclusive = createSerialLock();
  let inbounds: XrayInboundDefinition[] = [];
  let api: CoreApiClient | null = null;
  let core: CoreProcess | null = null;
  let lastError: string | null = null;
  let sysStats: SysStats | null = null;
  /** Counters of a core a killed agent left running, read at start before it was stopped. */
  let orphanReadings: UsageReading[] = [];

  const ctx = (): UserOpsContext => {
    if (!api) throw new Error("xray driver is not started");
    return { flavor, api };
  };

  /** Applies one user on every inbound; a user counts as applied only if every inbound took it. */
  async function applyUser(user: AgentUser & { xray: XrayCredentials }): Promise<UserFailure | null> {
    const invalid = validateUserId(user.id);
    if (invalid) return { userId: user.id, error: invalid };
    // Checked up front so a user is never left half-applied by a missing per-user port.
    const perUser = inbounds.find((def) => isPerUserInbound(flavor, def));
    if (perUser && !user.xray.shadowsocksPort) {
      return {
        userId: user.id,
        error: `inbound "${perUser.tag}" needs xray.shadowsocksPort on ${flavor.name}`,
      };
    }
    try {
      for (const def of inbounds) await addUserToInbound(ctx(), def, user.id, user.xray);
      registry.set(user.id, { creds: user.xray, print: fingerprint(user) as string });
      return null;
    } catch (error) {
      return { userId: user.id, error: errorMessage(error) };
    }
  }

  async function unapplyUser(id: string, final: boolean): Promise<UsageReading | UserFailure> {
    try {
      for (const def of inbounds) await removeUserFromInbound(ctx(), def, id);
      const reading = final ? await takeFinalReading(ctx(), id, core?.generation() ?? "") : null;
      registry.delete(id);
      return reading ?? { userId: id, up: 0, down: 0, generation: "" };
    } catch (error) {
      return { userId: id, error: errorMessage(error) };
    }
  }

  async function addMany(users: readonly AgentUser[], result: ApplyResult, bucket: "added" | "updated") {
    const withXray = users.filter((u): u is AgentUser & { xray: XrayCredentials } => !!u.xray);
    const failures = await mapBounded(withXray, concurrency, applyUser);
    withXray.forEach((user, i) => {
      const failure = failures[i];
      if (failure) result.failed.push(failure);
      else result[bucket].push(user.id);
    });
  }

  async function removeMany(ids: readonly string[], result: ApplyResult, final: boolean) {
    const outcomes = await mapBounded(ids, concurrency, (id) => unapplyUser(id, final));
    for (const outcome of outcomes) {
      if ("error" in outcome) result.failed.push(outcome);
      else {
        result.removed.push(outcome.userId);
        if (final) result.final.push(outcome);
      }
    }
  }

  async function applyDiff(desired: readonly AgentUser[], removeMissing: boolean): Promise<ApplyResult> {
    const applied = new Map([...registry].map(([id, u]) => [id, u.print]));
    const diff = diffUsers(applied, desired, fingerprint);
    const result: ApplyResult = {
      added: [],
      removed: [],
      updated: [],
      unchanged: diff.unchanged,
      failed: [],
      final: [],
    };
    if (removeMissing) await removeMany(diff.toRemove, result, true);
    // A credential change is remove + add under the same email: the counters stay (same core, same
    // email), so no final reading and no baseline change are needed.
    const updateRemoval: ApplyResult = { ...result, removed: [], failed: [], final: [] };
    await removeMany(
      diff.toUpdate.map((u) => u.id),
      updateRemoval,
      false,
    );
    result.failed.push(...updateRemoval.failed);
    const failedIds = new Set(updateRemoval.failed.map((f) => f.userId));
    await addMany(diff.toAdd, result, "added");
    await addMany(
      diff.toUpdate.filter((u) => !failedIds.has(u.id)),
      result,
      "updated",
    );
    if (result.failed.length > 0) lastError = result.failed[0]?.error ?? null;
    return result;
  }

  async function reapplyRegistry(): Promise<UserFailure[]> {
    const users = [...registry].map(([id, u]) => ({ id, xray: u.creds }));
    registry.clear();
    const result: ApplyResult = emptyApplyResult();
    await addMany(users, result, "added");
    return result.failed;
  }

  async function waitReady(signal: AbortSignal): Promise<void> {
    const deadline = Date.now() + (options.readyTimeoutMs ?? 20_000);
    for (;;) {
      try {
        sysStats = await (api as CoreApiClient).sysStats();
        return;
      } catch (error) {
        if (signal.aborted || Date.now() > deadline)
          throw new Error(`core API not ready: ${errorMessage(error)}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }

  return {
    kind: "xray",
    async start(base) {
      // A freshly spawned core holds no users. After stop() + start() (a new base config) the registry
      // must not claim otherwise, or the next applySnapshot would diff to "unchanged" and add nobody.
      registry.clear();
      inbounds = base.inbounds;
      await mkdir(options.stateDir, { recursive: true });
      const configPath = join(options.stateDir, `${flavor.name}-config.json`);
      // A core left running by a killed agent still listens on the API port of the config it was
      // started with, which the write below replaces.
      const previousApiPort = await readFile(configPath, "utf8").then(
        (text) =>
          (JSON.parse(text) as { inbounds?: Array<{ tag?: string; port?: number }> }).inbounds?.find(
            (i) => i.tag === API_TAG,
          )?.port ?? null,
        () => null,
      );
      await writeFile(configPath, JSON.stringify(buildCoreConfig(flavor, base), null, 2), { mode: 0o600 });
      api = createCoreApiClient(flavor, `127.0.0.1:${base.apiPort}`, {
        deadlineMs: options.apiDeadlineMs ?? 10_000,
      });
      core = createCoreProcess({
        binary: options.binary ?? flavor.defaultBinary,
        args: flavor.commandArgs(configPath),
        pidFile: join(options.stateDir, `${flavor.name}.pid`),
        logger,
        waitReady,
        onOrphan: async (generation) => {
          if (!previousApiPort) return;
          const orphanApi = createCoreApiClient(flavor, `127.0.0.1:${previousApiPort}`, {
            deadlineMs: 5_000,
          });
          try {
            const stats = await orphanApi.queryStats("user>>>", false);
            for (const t of parseUserTraffic(stats).values())
              orphanReadings.push({ userId: t.email, up: t.up, down: t.down, generation });
            logger.info(
              { users: orphanReadings.length },
              "read the counters of the core a killed agent left running",
            );
          } finally {
            orphanApi.close();
          }
        },
        onCrash: (code, signal) => events.emit("crashed", { engine: "xray", code, signal }),
        onUp: async (generation, restart) => {
          if (!restart) return;
          const failed = await exclusive(reapplyRegistry);
          logger.info({ generation, reapplied: registry.size, failed: failed.length }, "core restarted");
          events.emit("restarted", { engine: "xray", generation, reapplied: registry.size, failed });
        },
      });
      await core.start();
      logger.info({ pid: core.pid(), apiPort: base.apiPort }, "core started");
    },
    async stop() {
      await core?.stop();
      api?.close();
      api = null;
    },
    applySnapshot: (users) => exclusive(() => applyDiff(users, true)),
    addUsers: (users) => exclusive(() => applyDiff(users, false)),
    removeUsers: (ids) =>
      exclusive(async () => {
        const result: ApplyResult = emptyApplyResult();
        await removeMany(
          ids.filter((id) => registry.has(id)),
          result,
          true,
        );
        return result;
      }),
    async readUsage() {
      const generation = core?.generation();
      if (!generation) throw new Error("xray core is not running");
      const stats = await ctx().api.queryStats("user>>>", false);
      // Xray treats emails case-insensitively; map counter names back to the registry's spelling.
      const byLower = new Map([...registry.keys()].map((id) => [id.toLowerCase(), id]));
      const readings: UsageReading[] = [];
      for (const t of parseUserTraffic(stats).values()) {
        const userId = registry.has(t.email) ? t.email : (byLower.get(t.email.toLowerCase()) ?? t.email);
        readings.push({ userId, up: t.up, down: t.down, generation });
      }
      sysStats = await ctx()
        .api.sysStats()
        .catch(() => sysStats);
      return readings;
    },
    status() {
      return {
        engine: "xray",
        running: core?.pid() != null,
        generation: core?.generation() ?? null,
        users: registry.size,
        restarts: core?.restarts() ?? 0,
        lastError,
        details: {
          flavor: flavor.name,
          pid: core?.pid() ?? 0,
          ...(sysStats
            ? {
                goroutines: sysStats.numGoroutine,
                heapAllocBytes: sysStats.alloc,
                uptimeSeconds: sysStats.uptime,
              }
            : {}),
        },
      };
    },
    on: (event, listener) => events.on(event, listener),
    drainOrphanReadings() {
      const out = orphanReadings;
      orphanReadings = [];
      return out;
    },
    pid: () => core?.pid() ?? null,
  };
}
