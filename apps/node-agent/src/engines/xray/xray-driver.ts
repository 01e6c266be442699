// EngineDriver for Xray-core and v2ray 4.x. Writes the base config, supervises the core, and applies
// users: whenever it starts a core (agent start, new base config, restart after a crash) the users go
// into the config's clients arrays (preload.ts, docs/adr/0010); changes to a running core go through
// HandlerService.AlterInbound (or per-user inbounds for v2ray Shadowsocks) with bounded concurrency.
// The driver's registry is the source of truth for what is applied: v2ray 4.34 has no
// GetInboundUsers, and after a core restart the registry is what the new core is started with.

import { mkdir, readFile } from "node:fs/promises";
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
import { API_TAG, isPerUserInbound, type XrayBaseConfig, type XrayInboundDefinition } from "./base-config";
import { type CoreProcess, createCoreProcess } from "./core-process";
import { type CoreFlavor, flavorByName, type XrayFlavorName } from "./flavor";
import type { SysStats } from "./messages-stats";
import { preloadable, sharedInbounds, writeCoreConfig, type XrayUser } from "./preload";
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
  /** How long a core without users may take to answer its API; users written into its config add to it. */
  readyTimeoutMs?: number;
}

/** Extra start-up time allowed per user entry in the config (≈ 2.5× v2ray's VMess load cost). */
const READY_MS_PER_PRELOADED_ENTRY = 1;

export interface XrayDriver extends EngineDriver<XrayBaseConfig> {
  pid(): number | null;
}

const credentialsOf = (user: AgentUser): XrayCredentials | null => user.xray ?? null;

/** Field by field, so the registry needs no fingerprint string per user next to the credentials. */
export function sameCredentials(a: XrayCredentials, b: XrayCredentials): boolean {
  return (
    a.uuid === b.uuid &&
    a.trojanPassword === b.trojanPassword &&
    a.shadowsocksPassword === b.shadowsocksPassword &&
    (a.vmessAlterId ?? 0) === (b.vmessAlterId ?? 0) &&
    (a.shadowsocksPort ?? 0) === (b.shadowsocksPort ?? 0)
  );
}

export function createXrayDriver(options: XrayDriverOptions): XrayDriver {
  const flavor = typeof options.flavor === "string" ? flavorByName(options.flavor) : options.flavor;
  const logger = options.logger.child({ engine: "xray", flavor: flavor.name });
  const concurrency = options.concurrency ?? 64;
  /** Users the core holds, by id (= email), with the credentials it holds them with. */
  const registry = new Map<string, XrayCredentials>();
  const events = createListeners<EngineEvents>((error) =>
    logger.error({ err: errorMessage(error) }, "listener"),
  );
  const exclusive = createSerialLock();
  let inbounds: XrayInboundDefinition[] = [];
  let base: XrayBaseConfig | null = null;
  let configPath = "";
  /** True when the config on disk holds the registry (a crash restart then re-adds nothing by API). */
  let restartConfigWritten = false;
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
    // v2ray 4.x Shadowsocks is one inbound per user, on a port the desired state must name. Without
    // one the user is served on the other inbounds and this one is skipped (the panel refuses such
    // inbounds on v2ray nodes; a hand-written node config may still have one).
    const served = inbounds.filter((def) => !isPerUserInbound(flavor, def) || !!user.xray.shadowsocksPort);
    try {
      for (const def of served) await addUserToInbound(ctx(), def, user.id, user.xray);
      registry.set(user.id, user.xray);
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
    const diff = diffUsers(registry, desired, credentialsOf, sameCredentials);
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
    const users = [...registry].map(([id, creds]) => ({ id, xray: creds }));
    registry.clear();
    const result: ApplyResult = emptyApplyResult();
    await addMany(users, result, "added");
    return result.failed;
  }

  /**
   * A core just started from a config holding `users`: they are registered, and what a config cannot
   * carry — v2ray's per-user Shadowsocks inbounds — is added through the API. A user who cannot get
   * theirs is taken out of the shared inbounds again, so the registry is exactly what the core serves
   * (the caller's next apply retries that user through the API and reports the failure).
   */
  async function completePreload(users: readonly XrayUser[]): Promise<UserFailure[]> {
    for (const user of users) registry.set(user.id, user.xray);
    const perUser = inbounds.filter((def) => isPerUserInbound(flavor, def));
    if (perUser.length === 0) return [];
    const shared = sharedInbounds(flavor, inbounds);
    const outcomes = await mapBounded(users, concurrency, async (user): Promise<UserFailure | null> => {
      try {
        // Without a port of their own a user is served on the shared inbounds only (see applyUser).
        if (user.xray.shadowsocksPort)
          for (const def of perUser) await addUserToInbound(ctx(), def, user.id, user.xray);
        return null;
      } catch (error) {
        registry.delete(user.id);
        for (const def of [...shared, ...perUser])
          await removeUserFromInbound(ctx(), def, user.id).catch(() => undefined);
        return { userId: user.id, error: errorMessage(error) };
      }
    });
    return outcomes.filter((o): o is UserFailure => o !== null);
  }

  /** The registry into the config, before the supervisor starts a new core after a crash. */
  async function prepareRestart(): Promise<void> {
    restartConfigWritten = false;
    setReadyTimeout(0);
    if (!base) return;
    await writeCoreConfig(configPath, flavor, base, registry);
    setReadyTimeout(registry.size);
    restartConfigWritten = true;
  }

  async function onRestarted(generation: string): Promise<void> {
    const failed = await exclusive(async () => {
      if (!restartConfigWritten) return reapplyRegistry();
      const users = [...registry].map(([id, creds]): XrayUser => ({ id, xray: creds }));
      registry.clear();
      return completePreload(users);
    });
    logger.info({ generation, users: registry.size, failed: failed.length }, "core restarted");
    events.emit("restarted", { engine: "xray", generation, reapplied: registry.size, failed });
  }

  /** Writes the config with `users` preloaded, spawns the core and waits for its API. */
  async function launch(next: XrayBaseConfig, users: readonly XrayUser[], previousApiPort: number | null) {
    await writeCoreConfig(
      configPath,
      flavor,
      next,
      users.map((u) => [u.id, u.xray] as const),
    );
    setReadyTimeout(users.length);
    api?.close();
    api = createCoreApiClient(flavor, `127.0.0.1:${next.apiPort}`, {
      deadlineMs: options.apiDeadlineMs ?? 10_000,
    });
    core = createCoreProcess({
      binary: options.binary ?? flavor.defaultBinary,
      args: flavor.commandArgs(configPath),
      pidFile: join(options.stateDir, `${flavor.name}.pid`),
      logger,
      waitReady,
      onOrphan: (generation) => readOrphan(generation, previousApiPort),
      onCrash: (code, signal) => events.emit("crashed", { engine: "xray", code, signal }),
      beforeRestart: () => exclusive(prepareRestart),
      onUp: async (generation, restart) => {
        if (restart) await onRestarted(generation);
      },
    });
    await core.start();
  }

  async function readOrphan(generation: string, apiPort: number | null): Promise<void> {
    if (!apiPort) return;
    const orphanApi = createCoreApiClient(flavor, `127.0.0.1:${apiPort}`, { deadlineMs: 5_000 });
    try {
      for (const t of (await orphanApi.queryUserTraffic("user>>>")).values())
        orphanReadings.push({ userId: t.email, up: t.up, down: t.down, generation });
      logger.info(
        { users: orphanReadings.length },
        "read the counters of the core a killed agent left running",
      );
    } finally {
      orphanApi.close();
    }
  }

  /**
   * How long a starting core may take to answer, for the config it was given: a core loading its users
   * opens the API port only once all are loaded (v2ray 4.34: ~0.02 ms per VLESS/Trojan entry, ~0.4 ms
   * per VMess entry on 2 vCPUs — 100k VMess users are ~40 s), so the allowance grows with them.
   */
  let readyTimeoutMs = 0;
  const setReadyTimeout = (users: number) => {
    const entries = users * sharedInbounds(flavor, inbounds).length;
    readyTimeoutMs = (options.readyTimeoutMs ?? 20_000) + entries * READY_MS_PER_PRELOADED_ENTRY;
  };

  async function waitReady(signal: AbortSignal): Promise<void> {
    const deadline = Date.now() + readyTimeoutMs;
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
    async start(next, preload = []) {
      // A freshly spawned core holds exactly what its config holds. After stop() + start() (a new base
      // config) the registry must not claim otherwise, or the next applySnapshot would diff to
      // "unchanged" and add nobody.
      registry.clear();
      base = next;
      inbounds = next.inbounds;
      await mkdir(options.stateDir, { recursive: true });
      configPath = join(options.stateDir, `${flavor.name}-config.json`);
      // A core left running by a killed agent still listens on the API port of the config it was
      // started with, which the write below replaces.
      const previousApiPort = await readFile(configPath, "utf8").then(
        (text) =>
          (JSON.parse(text) as { inbounds?: Array<{ tag?: string; port?: number }> }).inbounds?.find(
            (i) => i.tag === API_TAG,
          )?.port ?? null,
        () => null,
      );
      const users = preloadable(flavor, inbounds, preload);
      try {
        await launch(next, users, previousApiPort);
      } catch (error) {
        if (users.length === 0) throw error;
        // Should not happen (only entries the loader accepts are written), but a node must never stay
        // without a core because of its users: start it empty and let the API path add them one by one.
        logger.error(
          { err: errorMessage(error), users: users.length },
          "core did not start with its users in the config; starting it empty",
        );
        await launch(next, [], null);
        users.length = 0;
      }
      const failed = await completePreload(users);
      logger.info(
        { pid: core?.pid(), apiPort: next.apiPort, preloaded: registry.size, failed: failed.length },
        "core started",
      );
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
      const traffic = await ctx().api.queryUserTraffic("user>>>");
      // Xray treats emails case-insensitively; map counter names back to the registry's spelling.
      // Built only when a name is not found as it is (rare), not for every poll of 100k users.
      let byLower: Map<string, string> | null = null;
      const spelling = (email: string): string => {
        if (registry.has(email)) return email;
        byLower ??= new Map([...registry.keys()].map((id) => [id.toLowerCase(), id]));
        return byLower.get(email.toLowerCase()) ?? email;
      };
      const readings: UsageReading[] = [];
      for (const t of traffic.values()) {
        const userId = spelling(t.email);
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
