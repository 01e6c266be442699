import type { TestApi } from "../../../../test/support/api";
import { seedNode, seedUser } from "../sub-support";
import type { Fixtures } from "./types";

// One node with Xray and WireGuard per tenant (made once), and a fresh subscriber per request.
const nodes = new WeakMap<TestApi, Map<string, Promise<string>>>();

function nodeOf(t: TestApi, tenantId: string): Promise<string> {
  let byTenant = nodes.get(t);
  if (!byTenant) {
    byTenant = new Map();
    nodes.set(t, byTenant);
  }
  let id = byTenant.get(tenantId);
  if (!id) {
    id = seedNode(t, tenantId, {
      name: `Matrix-${tenantId.slice(-6)}`,
      inbounds: [
        {
          tag: "vless-tcp",
          protocol: "vless",
          port: 443,
          transport: { type: "tcp" },
          security: { type: "none" },
        },
      ],
      wireguard: { listenPort: 51820, addresses: ["10.80.0.1/12"] },
    });
    byTenant.set(tenantId, id);
  }
  return id;
}

let n = 0;
const subscriber = async (t: TestApi, tenantId: string) => {
  const nodeId = await nodeOf(t, tenantId);
  const user = await seedUser(t, tenantId, { username: `matrix-${n++}`, nodeIds: [nodeId] });
  return { nodeId, user };
};

export const subFixtures: Fixtures = {
  "GET /sub/:token": async (t, tenantId) => {
    const { user } = await subscriber(t, tenantId);
    return { method: "GET", url: `/sub/${user.token}` };
  },
  "GET /sub/:token/wireguard/:nodeId": async (t, tenantId) => {
    const { user, nodeId } = await subscriber(t, tenantId);
    return { method: "GET", url: `/sub/${user.token}/wireguard/${nodeId}` };
  },
  "GET /users/:id/configs": async (t, tenantId) => {
    const { user } = await subscriber(t, tenantId);
    return { method: "GET", url: `/users/${user.userId}/configs` };
  },
  "GET /users/:id/wireguard/qr": async (t, tenantId) => {
    const { user } = await subscriber(t, tenantId);
    return { method: "GET", url: `/users/${user.userId}/wireguard/qr` };
  },
};
