// Makes the engines hold the desired state, and keeps the desired state on disk once they do.
//
// - Node config: a driver is (re)started only when its base config actually changed (compared as
//   canonical JSON). That is the only path that restarts a core; user changes go through the driver's
//   incremental add/remove, and an unchanged snapshot diffs to nothing inside the driver.
// - A driver is started together with the users it must hold (the stored ones at boot, the snapshot's,
//   or the merged set of a change that came with a new node config), so a core that starts anyway
//   loads them from its config rather than through one API call per user (docs/adr/0010). Leases are
//   granted before that, so a user a newer lease restores is among them.
// - Every removal returns final readings, which go to the usage recorder before anything else.
// - Per-user failures are reported in the Ack and retried by reconcile(); the revision still counts
//   as applied (the collector would otherwise resend the same change forever). A thrown error means
//   the apply did not happen: nothing is persisted and the caller resyncs.
//
// Every method must run under the agent's engine lock: usage sampling reads the same counters that a
// removal finalizes, and interleaving the two could count a user's bytes twice.

import type { ApplyFailure, Command, DesiredUser, NodeConfig } from "@vpnpanel/proto";
import type { Logger } from "pino";
import type { LeaseGuard } from "../enforcement/lease-guard";
import type { EngineSlot } from "../engine-slots";
import { errorMessage } from "../engines/async-utils";
import type { AgentUser, ApplyResult } from "../engines/types";
import type { UsagePump } from "../reporting/usage-pump";
import type { AssembledSnapshot } from "../session/snapshot-assembler";
import type { DesiredStore } from "./desired-store";
import { effectiveUsers, leaseFromProto, toAgentUser } from "./user-mapping";

export interface ApplyOutcome {
  failures: ApplyFailure[];
}

export interface SlotRuntime {
  slot: EngineSlot;
  started: boolean;
  /** Canonical JSON of the base config the driver runs with (or should run with, if start failed). */
  baseKey: string | null;
  base: unknown | null;
  startError: string | null;
  starts: number;
}

export interface Applier {
  readonly slots: readonly SlotRuntime[];
  /** Start: run the engines from the persisted node config and re-apply the persisted users. */
  boot(): Promise<ApplyOutcome>;
  applySnapshot(snapshot: AssembledSnapshot): Promise<ApplyOutcome>;
  applyDiff(diff: {
    toRevision: bigint;
    upserts: readonly DesiredUser[];
    removals: readonly string[];
    nodeConfig?: NodeConfig | undefined;
    usageCountedThroughSeq: bigint;
  }): Promise<ApplyOutcome>;
  applyCommand(command: Command): Promise<ApplyOutcome>;
  /** Re-applies the whole desired state (drivers diff it); retries failed starts and failed users. */
  reconcile(): Promise<ApplyOutcome>;
  /** Cuts users whose lease ran out (when `enforcing`) and restores those a newer lease allows again. */
  enforceLeases(now: number, enforcing: boolean): Promise<string[]>;
  needsReconcile(): boolean;
  markDirty(): void;
  /** Agent stop: final readings were taken; let each slot stop what it owns. */
  shutdown(): Promise<void>;
}

const MAX_REPORTED_FAILURES = 1_000;

export interface ApplierDeps {
  store: DesiredStore;
  leases: LeaseGuard;
  slots: readonly EngineSlot[];
  usage: UsagePump;
  logger: Logger;
  now: () => number;
  /** Called with the duration of each apply, for metrics. */
  observe?: (kind: "snapshot" | "diff" | "command" | "reconcile" | "lease", seconds: number) => void;
}

export function createApplier(deps: ApplierDeps): Applier {
  const { store, leases, usage, logger } = deps;
  const runtimes: SlotRuntime[] = deps.slots.map((slot) => ({
    slot,
    started: false,
    baseKey: null,
    base: null,
    startError: null,
    starts: 0,
  }));
  let dirty = false;

  const isCut = (id: string) => leases.isCut(id);

  function collect(result: ApplyResult, failures: ApplyFailure[], commandId = ""): void {
    for (const f of result.failed) {
      dirty = true;
      if (failures.length < MAX_REPORTED_FAILURES)
        failures.push({ commandId, userId: f.userId, message: f.error });
    }
  }

  async function settle(rt: SlotRuntime, result: ApplyResult, failures: ApplyFailure[], commandId = "") {
    await usage.recordFinal(rt.slot.kind, result.final);
    collect(result, failures, commandId);
  }

  /**
   * Starts the slot's engine holding the users it must serve: preloaded where the driver can, then a
   * full apply for whatever the preload did not cover. Returns whether the engine runs.
   */
  async function startSlot(
    rt: SlotRuntime,
    failures: ApplyFailure[],
    desired: Iterable<DesiredUser>,
  ): Promise<boolean> {
    const users = effectiveUsers(desired, rt.slot.kind, isCut);
    try {
      await rt.slot.driver.start(rt.base, users);
      rt.started = true;
      rt.startError = null;
      rt.starts++;
      logger.info({ engine: rt.slot.kind }, "engine started");
    } catch (error) {
      rt.startError = errorMessage(error);
      dirty = true;
      logger.error({ engine: rt.slot.kind, err: rt.startError }, "engine failed to start");
      failures.push({ commandId: "", userId: "", message: `${rt.slot.kind}: ${rt.startError}` });
      return false;
    }
    const orphan = rt.slot.driver.drainOrphanReadings?.() ?? [];
    if (orphan.length > 0) {
      // Counter names may come back lower-cased by the core: use the ids the baselines are kept under.
      const ids = new Map([...store.state.users.keys()].map((id) => [id.toLowerCase(), id]));
      await usage.record(
        rt.slot.kind,
        orphan.map((r) => ({ ...r, userId: ids.get(r.userId.toLowerCase()) ?? r.userId })),
      );
    }
    await settle(rt, await rt.slot.driver.applySnapshot(users), failures);
    return true;
  }

  /**
   * Brings each driver to the node config's base config; a (re)started one starts holding `desired`.
   * Returns those slots: they have the full user set already and need no further apply.
   */
  async function configure(
    node: NodeConfig | null,
    desired: () => Iterable<DesiredUser>,
    failures: ApplyFailure[],
  ): Promise<Set<SlotRuntime>> {
    const fresh = new Set<SlotRuntime>();
    for (const rt of runtimes) {
      let base: unknown | null;
      try {
        base = node ? rt.slot.baseConfig(node) : null;
      } catch (error) {
        // An invalid config for one engine leaves that engine as it is.
        failures.push({
          commandId: "",
          userId: "",
          message: `${rt.slot.kind} config: ${errorMessage(error)}`,
        });
        continue;
      }
      const key = base === null ? null : JSON.stringify(base);
      if (key === rt.baseKey && (rt.started || key === null)) continue;
      if (rt.started) {
        // Usage up to this moment belongs to the old core: sample before it goes away.
        await usage.sample(rt.slot);
        if (key === null) {
          const result = await rt.slot.driver.applySnapshot([]);
          await settle(rt, result, failures);
        }
        await rt.slot.driver.stop();
        rt.started = false;
        logger.info({ engine: rt.slot.kind, reconfigured: key !== null }, "engine config changed");
      }
      rt.base = base;
      rt.baseKey = key;
      if (base !== null && (await startSlot(rt, failures, desired()))) fresh.add(rt);
    }
    return fresh;
  }

  async function applyFull(rt: SlotRuntime, users: Iterable<DesiredUser>, failures: ApplyFailure[]) {
    const result = await rt.slot.driver.applySnapshot(effectiveUsers(users, rt.slot.kind, isCut));
    await settle(rt, result, failures);
  }

  /** Incremental: touched users are added (if they should run on this engine) or removed. */
  async function applyTouched(
    rt: SlotRuntime,
    touched: ReadonlyMap<string, DesiredUser | null>,
    failures: ApplyFailure[],
    commandId = "",
  ) {
    const add: AgentUser[] = [];
    const remove: string[] = [];
    for (const [id, user] of touched) {
      const mapped = user && !user.suspended && !isCut(id) ? toAgentUser(user, rt.slot.kind) : null;
      if (mapped) add.push(mapped);
      else remove.push(id);
    }
    if (remove.length > 0) await settle(rt, await rt.slot.driver.removeUsers(remove), failures, commandId);
    if (add.length > 0) await settle(rt, await rt.slot.driver.addUsers(add), failures, commandId);
  }

  function* mergedUsers(touched: ReadonlyMap<string, DesiredUser | null>): Generator<DesiredUser> {
    for (const [id, user] of store.state.users) if (!touched.has(id)) yield user;
    for (const user of touched.values()) if (user) yield user;
  }

  /** Shared by diffs and commands: apply a set of upserts/removals, then persist them. */
  async function applyChange(change: {
    toRevision: bigint;
    upserts: readonly DesiredUser[];
    removals: readonly string[];
    nodeConfig?: NodeConfig | undefined;
    usageCountedThroughSeq: bigint;
    commandId?: string;
  }): Promise<ApplyOutcome> {
    const failures: ApplyFailure[] = [];
    const touched = new Map<string, DesiredUser | null>();
    for (const id of change.removals) touched.set(id, null);
    for (const user of change.upserts) touched.set(user.userId, user);
    const asOf =
      change.usageCountedThroughSeq > 0n ? change.usageCountedThroughSeq : BigInt(usage.ackedThrough());
    for (const user of change.upserts) leases.grant(user.userId, leaseFromProto(user.lease, asOf));
    leases.markRestored(leases.restorable(deps.now()).filter((id) => touched.has(id)));
    const fresh = change.nodeConfig
      ? await configure(change.nodeConfig, () => mergedUsers(touched), failures)
      : new Set<SlotRuntime>();
    for (const rt of runtimes) {
      if (rt.started && !fresh.has(rt)) await applyTouched(rt, touched, failures, change.commandId);
    }
    for (const id of change.removals) leases.forget(id);
    await store.change({
      toRevision: change.toRevision,
      upserts: change.upserts,
      removals: change.removals,
      nodeConfig: change.nodeConfig,
      usageCountedThroughSeq: change.usageCountedThroughSeq,
    });
    await leases.persist();
    return { failures };
  }

  async function timed<T>(kind: Parameters<NonNullable<ApplierDeps["observe"]>>[0], fn: () => Promise<T>) {
    const started = performance.now();
    try {
      return await fn();
    } finally {
      deps.observe?.(kind, (performance.now() - started) / 1000);
    }
  }

  const applier: Applier = {
    slots: runtimes,
    boot: () =>
      timed("reconcile", async () => {
        const failures: ApplyFailure[] = [];
        const fresh = await configure(store.state.nodeConfig, () => store.state.users.values(), failures);
        for (const rt of runtimes)
          if (rt.started && !fresh.has(rt)) await applyFull(rt, store.state.users.values(), failures);
        return { failures };
      }),

    applySnapshot: (snapshot) =>
      timed("snapshot", async () => {
        const failures: ApplyFailure[] = [];
        const nodeConfig = snapshot.nodeConfig ?? store.state.nodeConfig;
        const wanted = new Set(snapshot.users.map((u) => u.userId));
        for (const user of snapshot.users)
          leases.grant(user.userId, leaseFromProto(user.lease, snapshot.usageCountedThroughSeq));
        leases.markRestored(leases.restorable(deps.now()));
        const fresh = await configure(nodeConfig, () => snapshot.users, failures);
        for (const rt of runtimes)
          if (rt.started && !fresh.has(rt)) await applyFull(rt, snapshot.users, failures);
        for (const id of store.state.users.keys()) if (!wanted.has(id)) leases.forget(id);
        await store.replace({
          revision: snapshot.revision,
          users: snapshot.users,
          nodeConfig,
          usageCountedThroughSeq: snapshot.usageCountedThroughSeq,
        });
        await leases.persist();
        return { failures };
      }),

    applyDiff: (diff) => timed("diff", () => applyChange(diff)),

    applyCommand: (command) =>
      timed("command", async () => {
        const action = command.action;
        const base = { toRevision: command.revision, usageCountedThroughSeq: 0n, commandId: command.id };
        const unknown = (userId: string): Promise<ApplyOutcome> =>
          applyChange({ ...base, upserts: [], removals: [] }).then((outcome) => ({
            failures: [...outcome.failures, { commandId: command.id, userId, message: "unknown user" }],
          }));
        switch (action?.$case) {
          case "addUser":
            return applyChange({ ...base, upserts: [action.value], removals: [] });
          case "removeUser":
            return applyChange({ ...base, upserts: [], removals: [action.value] });
          case "suspendUser":
          case "resumeUser": {
            const user = store.state.users.get(action.value);
            if (!user) return unknown(action.value);
            const suspended = action.$case === "suspendUser";
            return applyChange({ ...base, upserts: [{ ...user, suspended }], removals: [] });
          }
          default:
            // An action this agent does not know (newer collector): move the revision, report it.
            return applyChange({ ...base, upserts: [], removals: [] }).then((outcome) => ({
              failures: [
                ...outcome.failures,
                { commandId: command.id, userId: "", message: "unknown command" },
              ],
            }));
        }
      }),

    reconcile: () =>
      timed("reconcile", async () => {
        dirty = false;
        const failures: ApplyFailure[] = [];
        for (const rt of runtimes) {
          if (!rt.started && rt.base !== null) await startSlot(rt, failures, store.state.users.values());
          else if (rt.started) await applyFull(rt, store.state.users.values(), failures);
        }
        return { failures };
      }),

    enforceLeases: (now, enforcing) =>
      timed("lease", async () => {
        const restored = leases.restorable(now);
        if (restored.length > 0) {
          leases.markRestored(restored);
          const touched = new Map(restored.map((id) => [id, store.state.users.get(id) ?? null]));
          for (const rt of runtimes) if (rt.started) await applyTouched(rt, touched, []);
          logger.info({ users: restored.length }, "users restored by a newer lease");
        }
        const cut: string[] = [];
        if (enforcing) {
          const due = leases.due(now).filter((d) => store.state.users.has(d.userId));
          if (due.length > 0) {
            const failed = new Set<string>();
            const ids = due.map((d) => d.userId);
            for (const rt of runtimes) {
              if (!rt.started) continue;
              const result = await rt.slot.driver.removeUsers(ids);
              await usage.recordFinal(rt.slot.kind, result.final);
              for (const f of result.failed) failed.add(f.userId);
            }
            const done = due.filter((d) => !failed.has(d.userId));
            leases.markCut(done);
            for (const d of done) {
              cut.push(d.userId);
              logger.info(
                { userId: d.userId, reason: d.reason, usedSinceLease: d.usedSinceLease },
                "lease ran out: user cut locally",
              );
            }
          }
        }
        await leases.persist();
        return cut;
      }),

    needsReconcile: () => dirty || runtimes.some((rt) => !rt.started && rt.base !== null),
    markDirty() {
      dirty = true;
    },
    async shutdown() {
      for (const rt of runtimes) {
        if (!rt.started) continue;
        await rt.slot
          .shutdown()
          .catch((error) =>
            logger.error({ engine: rt.slot.kind, err: errorMessage(error) }, "engine shutdown failed"),
          );
        rt.started = false;
      }
    },
  };
  return applier;
}
