import { ConfigError, describeEnv, VERSION } from "@vpnpanel/common";
import type { createControlPlane } from "@vpnpanel/control";
import { Command } from "commander";

// The `vpnpanel` command: the control plane's only entry point, and the one place that reads the
// environment (through the validated schema) for these processes.
//
// Each command loads only the side it runs: the control plane's module graph (database drivers, web
// server, …) is ~80 MB of RSS that a node agent — which runs on every edge node, with a 150 MB
// budget at 100k users — must not carry, and the agent's modules are no use to `serve`.
const control = () => import("@vpnpanel/control");
const nodeAgent = () => import("@vpnpanel/node-agent");

function readPasswordFromStdin(): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = "";
    process.stdin.setEncoding("utf8");
    process.stdin.on("data", (c) => {
      data += c;
    });
    process.stdin.on("end", () => resolve(data.replace(/\r?\n$/, "")));
    process.stdin.on("error", reject);
  });
}

async function withControlPlane<T>(fn: (cp: Awaited<ReturnType<typeof createControlPlane>>) => Promise<T>) {
  const { createControlPlane, loadControlConfig } = await control();
  const cp = await createControlPlane({ ...loadControlConfig(), LOG_LEVEL: "warn" });
  try {
    return await fn(cp);
  } finally {
    await cp.close();
  }
}

const program = new Command("vpnpanel")
  .version(VERSION)
  .description("Control plane for Xray + WireGuard VPN fleets");

program
  .command("serve")
  .description("Run control-plane roles (default: all three in one process)")
  .option("--roles <list>", "comma-separated roles: api,collector,scheduler")
  .action(async (opts: { roles?: string }) => {
    const { loadControlConfig } = await control();
    const { parseRoles, serve } = await import("./serve");
    const config = loadControlConfig();
    const roles = parseRoles(opts.roles ? opts.roles.split(",").map((s) => s.trim()) : config.ROLES);
    await serve(config, roles);
  });

program
  .command("migrate")
  .description("Apply database migrations and exit")
  .action(async () => {
    await withControlPlane(async () => {
      process.stdout.write("migrations are up to date\n");
    });
  });

const admin = program.command("admin").description("Manage panel accounts");
admin
  .command("create")
  .description("Create a panel account")
  .requiredOption("--email <email>", "login email")
  .option("--password-stdin", "read the password from standard input")
  .option("--password <password>", "the password (prefer --password-stdin; argv is visible to other users)")
  .option("--platform-owner", "grant platform ownership (all tenants)")
  .option("--tenant <id>", "tenant id for a membership")
  .option("--role <role>", "role in --tenant: owner, admin, operator, auditor")
  .action(
    async (o: {
      email: string;
      password?: string;
      passwordStdin?: boolean;
      platformOwner?: boolean;
      tenant?: string;
      role?: string;
    }) => {
      const { isRole, systemActor } = await control();
      const password = o.passwordStdin ? await readPasswordFromStdin() : o.password;
      if (!password) throw new Error("a password is required (--password-stdin or --password)");
      if (o.role && !isRole(o.role))
        throw new Error(`--role must be owner, admin, operator or auditor (got "${o.role}")`);
      if ((o.tenant && !o.role) || (o.role && !o.tenant)) throw new Error("--tenant and --role go together");
      await withControlPlane(async (cp) => {
        const created = await cp.admins.create(systemActor(), {
          email: o.email,
          password,
          isPlatformOwner: Boolean(o.platformOwner),
          ...(o.tenant && o.role && isRole(o.role) ? { tenantId: o.tenant, role: o.role } : {}),
        });
        process.stdout.write(`created ${created.id} <${created.email}>\n`);
      });
    },
  );
admin
  .command("reset-password")
  .description("Set a new password for an account (re-enables it and ends all its sessions)")
  .requiredOption("--email <email>", "login email")
  .option("--password-stdin", "read the new password from standard input")
  .option("--password <password>", "the new password")
  .action(async (o: { email: string; password?: string; passwordStdin?: boolean }) => {
    const { systemActor } = await control();
    const password = o.passwordStdin ? await readPasswordFromStdin() : o.password;
    if (!password) throw new Error("a password is required (--password-stdin or --password)");
    await withControlPlane(async (cp) => {
      const a = await cp.admins.resetPassword(systemActor(), o.email, password);
      process.stdout.write(`password reset for ${a.id} <${a.email}>; all sessions revoked\n`);
    });
  });

program
  .command("env-example")
  .description("Print every configuration variable with its description and default")
  .action(async () => {
    const { controlEnvSchema } = await control();
    process.stdout.write(`${describeEnv(controlEnvSchema)}\n`);
  });

program
  .command("agent")
  .description("Run the node agent (drives this node's Xray/v2ray core and WireGuard for a collector)")
  .option("--env-example", "print every agent configuration variable with its description and default")
  .action(async (opts: { envExample?: boolean }) => {
    const { agentEnvSchema, loadAgentConfig, runAgent } = await nodeAgent();
    if (opts.envExample) {
      process.stdout.write(`${describeEnv(agentEnvSchema)}\n`);
      return;
    }
    await runAgent(loadAgentConfig());
  });

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof ConfigError) {
    process.stderr.write(`${err.message}\n`);
    process.exit(78);
  }
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`vpnpanel: ${message}\n`);
  process.exit(1);
});
