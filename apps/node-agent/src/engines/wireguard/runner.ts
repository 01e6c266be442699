// Runs `wg`, `ip` and `wireguard-go` with execFile (never a shell: no quoting bugs, no injection through
// peer data). A runner may be bound to a network namespace, in which case every command goes through
// `ip netns exec NS`, so tests and operators can drive an engine inside a namespace unchanged.

import { execFile } from "node:child_process";

export interface RunResult {
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  input?: string;
  /** Extra environment; an undefined value removes the variable. */
  env?: Record<string, string | undefined>;
}

export interface CommandRunner {
  readonly netns: string | null;
  /** Throws CommandError on a non-zero exit. `input` is written to stdin (keys never go through argv). */
  run(command: string, args: readonly string[], options?: RunOptions): Promise<RunResult>;
}

export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(`${command} failed (exit ${exitCode}): ${stderr.trim()}`);
    this.name = "CommandError";
  }
}

/**
 * wg echoes a malformed key back in its error text; anything shaped like a base64 WireGuard key is
 * masked before an error message can reach a log.
 */
export function redactKeys(text: string): string {
  return text.replace(/[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=/g, "<key>");
}

function mergeEnv(extra: Record<string, string | undefined> | undefined): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const [key, value] of Object.entries(extra ?? {})) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  return env;
}

export interface RunnerOptions {
  netns?: string;
  timeoutMs?: number;
}

export function createRunner(options: RunnerOptions = {}): CommandRunner {
  const netns = options.netns ?? null;
  return {
    netns,
    run(command, args, runOptions = {}) {
      const [file, argv] = netns ? ["ip", ["netns", "exec", netns, command, ...args]] : [command, [...args]];
      return new Promise((resolve, reject) => {
        const child = execFile(
          file,
          argv,
          // A 100k-peer dump is ~20 MB of text.
          {
            maxBuffer: 512 * 1024 * 1024,
            timeout: options.timeoutMs ?? 120_000,
            encoding: "utf8",
            env: mergeEnv(runOptions.env),
          },
          (error, stdout, stderr) => {
            if (error) {
              const code = typeof error.code === "number" ? error.code : null;
              reject(
                new CommandError(
                  `${command} ${args[0] ?? ""}`.trim(),
                  code,
                  redactKeys(stderr || error.message),
                ),
              );
            } else resolve({ stdout, stderr });
          },
        );
        if (runOptions.input !== undefined) child.stdin?.end(runOptions.input);
        else child.stdin?.end();
      });
    },
  };
}
