// Runs the core as a child process and keeps it running: on an unexpected exit it restarts it with
// exponential backoff (reset after a stable period); `beforeRestart` lets the driver write its users
// into the config first, and `onUp` finishes what a config cannot carry.
// Each spawn gets a fresh generation id: the core's counters live and die with the process.

import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { readFile, rm, writeFile } from "node:fs/promises";
import type { Logger } from "pino";
import { backoffDelayMs, errorMessage } from "../async-utils";

export interface CoreProcessOptions {
  binary: string;
  args: string[];
  /** Where the pid is recorded, so a core orphaned by a killed agent is found and stopped. */
  pidFile: string;
  logger: Logger;
  /** Resolves once the core's API answers; rejects on timeout. */
  waitReady: (signal: AbortSignal) => Promise<void>;
  /**
   * A core left running by a previous agent (killed without a clean stop) is about to be stopped:
   * the last chance to read its counters. `generation` is the one that core was started under.
   */
  onOrphan?: (generation: string) => Promise<void>;
  /**
   * Called before each restart attempt after a crash, e.g. to write the config the new core starts
   * with. A failure is logged and the core is started with the config file as it is.
   */
  beforeRestart?: () => Promise<void>;
  /** Called after every successful (re)start with the new generation. */
  onUp: (generation: string, restart: boolean) => Promise<void>;
  onCrash: (code: number | null, signal: string | null) => void;
  /** A run this long resets the backoff. */
  stableAfterMs?: number;
  backoff?: (attempt: number) => number;
  sleep?: (ms: number) => Promise<void>;
}

export interface CoreProcess {
  start(): Promise<void>;
  stop(): Promise<void>;
  pid(): number | null;
  generation(): string | null;
  restarts(): number;
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export function createCoreProcess(options: CoreProcessOptions): CoreProcess {
  const { logger } = options;
  const sleep = options.sleep ?? defaultSleep;
  const backoff = options.backoff ?? ((attempt: number) => backoffDelayMs(attempt));
  let child: ChildProcess | null = null;
  let generation: string | null = null;
  let stopping = false;
  let restarts = 0;
  let failures = 0;
  let startedAt = 0;
  let aborter = new AbortController();

  async function killOrphan(): Promise<void> {
    // "<pid> <generation>"; files written by older agents carry only the pid.
    const [pidText = "", orphanGeneration] = (await readFile(options.pidFile, "utf8").catch(() => ""))
      .trim()
      .split(/\s+/);
    const pid = Number(pidText);
    if (!pid) return;
    // Only kill it if it still is our core (pids are reused): its argv must match ours.
    const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    if (cmdline.split("\0").includes(options.args.at(-1) ?? "\u0000")) {
      logger.warn({ pid }, "stopping core left over by a previous agent run");
      if (orphanGeneration && options.onOrphan) {
        await options
          .onOrphan(orphanGeneration)
          .catch((error) =>
            logger.error({ pid, err: errorMessage(error) }, "could not read the left-over core's counters"),
          );
      }
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    await rm(options.pidFile, { force: true });
  }

  async function spawnOnce(): Promise<void> {
    // Chosen before the spawn and recorded with the pid, so a later agent can name this core's counters.
    const nextGeneration = randomUUID();
    const proc = spawn(options.binary, options.args, { stdio: ["ignore", "pipe", "pipe"] });
    child = proc;
    // The last output is kept for the error message when the core dies during start (bad config).
    let tail = "";
    const onOutput = (chunk: Buffer) => {
      const text = chunk.toString("utf8");
      tail = (tail + text).slice(-2_000);
      logger.debug({ core: text.trimEnd() }, "core output");
    };
    proc.stdout?.on("data", onOutput);
    proc.stderr?.on("data", onOutput);
    const exitedEarly = new Promise<never>((_, reject) => {
      proc.once("exit", (code, signal) =>
        reject(new Error(`core exited during start (code ${code}, signal ${signal}): ${tail.trim()}`)),
      );
    });
    exitedEarly.catch(() => undefined);
    try {
      await new Promise<void>((resolve, reject) => {
        proc.once("spawn", resolve);
        proc.once("error", reject);
      });
      await writeFile(options.pidFile, `${proc.pid} ${nextGeneration}\n`);
      await Promise.race([options.waitReady(aborter.signal), exitedEarly]);
    } catch (error) {
      // Never became ready: the caller retries; this process must not linger on the API port.
      if (child === proc) child = null;
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
      throw error;
    }
    // Crash supervision starts only once the core is up; earlier exits are start failures (above).
    proc.once("exit", (code, signal) => {
      if (child === proc) child = null;
      if (stopping) return;
      logger.error({ code, signal }, "core exited unexpectedly");
      options.onCrash(code, signal);
      void restartLoop();
    });
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error("core exited right after becoming ready");
    }
    startedAt = Date.now();
    generation = nextGeneration;
  }

  let restarting = false;
  async function restartLoop(): Promise<void> {
    if (restarting) return;
    restarting = true;
    try {
      await restartAttempts();
    } finally {
      restarting = false;
    }
  }

  async function restartAttempts(): Promise<void> {
    while (!stopping) {
      if (Date.now() - startedAt > (options.stableAfterMs ?? 60_000)) failures = 0;
      failures++;
      const delay = backoff(failures);
      logger.info({ attempt: failures, delayMs: delay }, "restarting core");
      await sleep(delay);
      if (stopping) return;
      await options
        .beforeRestart?.()
        .catch((error) => logger.error({ err: errorMessage(error) }, "preparing the core restart failed"));
      if (stopping) return;
      try {
        await spawnOnce();
        restarts++;
        await options.onUp(generation as string, true);
        return;
      } catch (error) {
        logger.error({ err: errorMessage(error) }, "core restart failed");
        // Spawned and ready but re-applying failed: the core runs, the next apply will converge it.
        if (child) return;
      }
    }
  }

  return {
    async start() {
      stopping = false;
      aborter = new AbortController();
      await killOrphan();
      await spawnOnce();
      await options.onUp(generation as string, false);
    },
    async stop() {
      stopping = true;
      aborter.abort();
      const proc = child;
      child = null;
      if (proc && proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
        proc.kill("SIGTERM");
        const timer = setTimeout(() => proc.kill("SIGKILL"), 5_000);
        await exited;
        clearTimeout(timer);
      }
      await rm(options.pidFile, { force: true });
      generation = null;
    },
    pid: () => child?.pid ?? null,
    generation: () => generation,
    restarts: () => restarts,
  };
}
