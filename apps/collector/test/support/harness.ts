import { type Collector, type CollectorOptions, startCollector } from "@vpnpanel/collector";
import { type NodeInput, systemActor } from "@vpnpanel/control";
import { createTestControlPlane, type TestControlPlane } from "../../../../test/support/control-plane";
import { connectAgent, enroll, type NodeIdentity, type TestAgent } from "./agent";
import { type SeedOptions, seedSubscribers } from "./seed";

// A control plane on a fresh test database (PGlite, or PostgreSQL + Redis with DATABASE_URL /
// REDIS_URL), a tenant, and a real collector on ephemeral ports.

export const collectorEnv = {
  COLLECTOR_HOST: "127.0.0.1",
  COLLECTOR_PUBLIC_HOST: "127.0.0.1",
  COLLECTOR_TLS_SANS: "localhost,127.0.0.1",
};

export interface Harness extends TestControlPlane {
  tenantId: string;
  collector: Collector;
  agents: TestAgent[];
  createNode(input?: Partial<NodeInput>): Promise<string>;
  enrollNode(nodeId: string, collector?: Collector): Promise<NodeIdentity>;
  agent(id: NodeIdentity, collector?: Collector): TestAgent;
  seed(o: Omit<SeedOptions, "tenantId">): ReturnType<typeof seedSubscribers>;
  startCollector(opts?: CollectorOptions): Promise<Collector>;
}

let nodeCounter = 0;

export async function createHarness(
  opts: { env?: Record<string, string>; collector?: CollectorOptions } = {},
): Promise<Harness> {
  const base = await createTestControlPlane({ env: { ...collectorEnv, ...opts.env } });
  const { cp } = base;
  const tenant = await cp.tenants.create(systemActor(), {
    name: "Nodes",
    slug: `nodes-${Date.now().toString(36)}`,
  });
  const collectors: Collector[] = [];
  const agents: TestAgent[] = [];
  const start = async (o: CollectorOptions = {}) => {
    const c = await startCollector(cp, {
      port: 0,
      enrollPort: 0,
      pollIntervalMs: 50,
      tickMs: 500,
      ...opts.collector,
      ...o,
    });
    collectors.push(c);
    return c;
  };
  const collector = await start();
  return {
    ...base,
    tenantId: tenant.id,
    collector,
    agents,
    startCollector: start,
    async createNode(input = {}) {
      const node = await cp.nodes.create(systemActor(), tenant.id, {
        name: `edge-${nodeCounter++}-${Date.now().toString(36)}`,
        address: "edge.example.com",
        engines: ["xray", "wireguard"],
        ...input,
      });
      return node.id;
    },
    async enrollNode(nodeId, via = collector) {
      const token = await cp.enrollment.createToken(systemActor(), nodeId);
      return enroll(via.enrollAddress, token.caPem, token.token);
    },
    agent(id, via = collector) {
      const a = connectAgent(via.address, id);
      agents.push(a);
      return a;
    },
    seed: (o) => seedSubscribers(cp.database.db, cp.box, { tenantId: tenant.id, ...o }),
    async close() {
      for (const a of agents) a.close();
      for (const c of collectors) await c.stop(2000).catch(() => {});
      await base.close();
    },
  };
}
