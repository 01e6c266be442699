// Executes a peer plan against one interface: final readings, bulk removal, bulk upsert through a
// 0600 temp file, PSK clearing, and the host routes of allowed IPs the interface's own routes miss.

import { randomUUID } from "node:crypto";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { UsageReading } from "../types";
import { type Dump, parseDump } from "./dump";
import {
  addconfText,
  chunk,
  PEERS_PER_CALL,
  type PeerSpec,
  presharedKeyClearArgs,
  removeArgs,
  routeBatch,
} from "./peer-config";
import type { CommandRunner } from "./runner";

export async function readDump(runner: CommandRunner, iface: string): Promise<Dump> {
  const { stdout } = await runner.run("wg", ["show", iface, "dump"]);
  return parseDump(stdout);
}

/** Readings for the given peers (key → user) from one dump of the interface. */
export async function finalReadings(
  runner: CommandRunner,
  iface: string,
  generation: string,
  owners: ReadonlyMap<string, string>,
): Promise<UsageReading[]> {
  if (owners.size === 0) return [];
  const dump = await readDump(runner, iface);
  const out: UsageReading[] = [];
  for (const peer of dump.peers) {
    const userId = owners.get(peer.publicKey);
    if (userId !== undefined) out.push({ userId, up: peer.rx, down: peer.tx, generation });
  }
  return out;
}

export async function removePeers(runner: CommandRunner, iface: string, publicKeys: readonly string[]) {
  for (const args of removeArgs(iface, publicKeys)) await runner.run("wg", args);
}

/**
 * Upserts peers in chunks through `wg addconf`. PSKs only ever sit in the temp file (0600, in the
 * agent's state dir, removed right after), never on argv where any local user could read them.
 */
export async function upsertPeers(
  runner: CommandRunner,
  iface: string,
  tempDir: string,
  peers: readonly PeerSpec[],
  clearPsk: readonly string[],
): Promise<void> {
  for (const part of chunk(peers, PEERS_PER_CALL)) {
    const file = join(tempDir, `addconf-${randomUUID()}.conf`);
    try {
      await writeFile(file, addconfText(part), { mode: 0o600 });
      await runner.run("wg", ["addconf", iface, file]);
    } finally {
      await rm(file, { force: true });
    }
  }
  for (const args of presharedKeyClearArgs(iface, clearPsk)) await runner.run("wg", args);
}

/** Installs or removes routes in one `ip -batch` process; -force keeps going past a stale entry. */
export async function applyRoutes(
  runner: CommandRunner,
  verb: "replace" | "del",
  iface: string,
  cidrs: readonly string[],
): Promise<void> {
  if (cidrs.length === 0) return;
  try {
    await runner.run("ip", ["-force", "-batch", "-"], { input: `${routeBatch(verb, iface, cidrs)}\n` });
  } catch (error) {
    // Deleting a route that is already gone is fine; a failed replace is a real error.
    if (verb === "replace") throw error;
  }
}
