import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

// Runs collector-child.ts in its own Node process and waits until it listens.

const script = fileURLToPath(new URL("./collector-child.ts", import.meta.url));
const root = fileURLToPath(new URL("../../../../", import.meta.url));

export interface ChildCollector {
  process: ChildProcess;
  address: string;
  enrollAddress: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
}

export async function spawnCollector(env: Record<string, string>): Promise<ChildCollector> {
  const child = spawn(process.execPath, ["--import", "tsx", script], {
    cwd: root,
    env: { ...process.env, LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "warn", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let err = "";
  child.stderr!.on("data", (d) => {
    err += String(d);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal })),
  );
  const lines = createInterface({ input: child.stdout! });
  const ready = await new Promise<{ address: string; enrollAddress: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`collector child did not start:\n${err}`)), 60_000);
    lines.on("line", (line) => {
      try {
        const parsed = JSON.parse(line);
        if (parsed.address) {
          clearTimeout(timer);
          resolve(parsed);
        }
      } catch {
        // a log line
      }
    });
    void exited.then(() => reject(new Error(`collector child exited early:\n${err}`)));
  });
  return { process: child, ...ready, exited, stderr: () => err };
}
