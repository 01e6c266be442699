import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

// Drives the real `vpnpanel` binary on an embedded (PGlite) data directory, as the README's first
// command does on a fresh machine.

const bin = resolve(__dirname, "../bin/vpnpanel.mjs");
const dataDir = mkdtempSync(join(tmpdir(), "vpnpanel-cli-"));
const env = {
  ...process.env,
  DATA_DIR: dataDir,
  DATABASE_URL: "",
  REDIS_URL: "",
  SECRET_KEY: "",
  LOG_LEVEL: "warn",
  ARGON2_MEMORY_KIB: "1024",
  ARGON2_TIME_COST: "1",
};
const children: ChildProcess[] = [];

afterAll(() => {
  for (const c of children) c.kill("SIGKILL");
  rmSync(dataDir, { recursive: true, force: true });
});

function run(args: string[], input?: string) {
  return spawnSync(process.execPath, [bin, ...args], { env, input, encoding: "utf8", timeout: 170_000 });
}

function serve(port: number, firstStart: boolean): Promise<{ child: ChildProcess; output: () => string }> {
  // Port 0 for the collector's two gRPC listeners: other test files may run collectors concurrently.
  const child = spawn(process.execPath, [bin, "serve"], {
    env: { ...env, PORT: String(port), COLLECTOR_PORT: "0", ENROLL_PORT: "0" },
  });
  children.push(child);
  let out = "";
  child.stdout.on("data", (d) => {
    out += d;
  });
  child.stderr.on("data", (d) => {
    out += d;
  });
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`serve did not start:\n${out}`)), 170_000);
    // Every role is up once the banner is out: the first-start login comes last on a first start.
    const done = firstStart ? /password:\s+\S+/ : /API docs: /;
    const check = setInterval(() => {
      if (done.test(out)) {
        clearInterval(check);
        clearTimeout(timer);
        setTimeout(() => ok({ child, output: () => out }), firstStart ? 0 : 500);
      }
    }, 50);
  });
}

const stop = (c: ChildProcess) =>
  new Promise<number | null>((ok) => {
    c.once("exit", (code) => ok(code));
    c.kill("SIGTERM");
  });

// Each test spawns real processes (PGlite start, migrations): generous limits, so a loaded machine
// makes them slow rather than flaky.
describe("vpnpanel CLI", { timeout: 180_000 }, () => {
  it("first start prints the docs URL and a one-time owner login that works; the second start does not", async () => {
    const port = 18_000 + Math.floor(Math.random() * 2000);
    const first = await serve(port, true);
    const out = first.output();
    expect(out).toContain(`API docs: http://127.0.0.1:${port}/docs`);
    const email = /email:\s+(\S+)/.exec(out)?.[1];
    const password = /password:\s+(\S+)/.exec(out)?.[1];
    expect(email).toBe("owner@vpnpanel.local");
    const login = await fetch(`http://127.0.0.1:${port}/auth/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email, password }),
    });
    expect(login.status).toBe(200);
    const { access_token } = (await login.json()) as { access_token: string };
    const me = await fetch(`http://127.0.0.1:${port}/auth/me`, {
      headers: { authorization: `Bearer ${access_token}` },
    });
    expect(((await me.json()) as { is_platform_owner: boolean }).is_platform_owner).toBe(true);
    expect(await stop(first.child)).toBe(0);

    const second = await serve(port, false);
    expect(second.output()).not.toMatch(/password:/);
    expect(await stop(second.child)).toBe(0);
  });

  it("migrate, admin create and admin reset-password work against the same data", async () => {
    expect(run(["migrate"]).stdout).toMatch(/up to date/);
    const created = run(
      ["admin", "create", "--email", "ops@example.com", "--password-stdin"],
      "a long enough password\n",
    );
    expect(created.status, created.stderr).toBe(0);
    expect(created.stdout).toMatch(/created adm_\w+ <ops@example.com>/);
    const dup = run(
      ["admin", "create", "--email", "ops@example.com", "--password-stdin"],
      "a long enough password\n",
    );
    expect(dup.status).toBe(1);
    expect(dup.stderr).toMatch(/already exists/);
    const short = run(["admin", "create", "--email", "x@example.com", "--password-stdin"], "short\n");
    expect(short.stderr).toMatch(/at least 12 characters/);
    const reset = run(
      ["admin", "reset-password", "--email", "ops@example.com", "--password-stdin"],
      "another long password\n",
    );
    expect(reset.status, reset.stderr).toBe(0);
    expect(reset.stdout).toMatch(/all sessions revoked/);
  });

  it("a bad environment value stops start-up naming the variable", () => {
    const r = spawnSync(process.execPath, [bin, "serve"], {
      env: { ...env, PORT: "http" },
      encoding: "utf8",
    });
    expect(r.status).toBe(78);
    expect(r.stderr).toMatch(/PORT must be an integer/);
  });
});
