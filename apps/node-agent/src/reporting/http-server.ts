// The agent's local endpoint: GET /health (liveness and a short status) and GET /metrics
// (Prometheus). Bound to loopback by default; it exposes no secret and accepts no input.

import { createServer, type Server } from "node:http";
import type { Registry } from "@vpnpanel/common";

export interface AgentHttpServer {
  port: number;
  close(): Promise<void>;
}

export async function startAgentHttpServer(options: {
  host: string;
  port: number;
  registry: Registry;
  health: () => Record<string, unknown>;
}): Promise<AgentHttpServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET") {
      res.writeHead(405).end();
      return;
    }
    if (path === "/health") {
      res
        .writeHead(200, { "content-type": "application/json" })
        .end(JSON.stringify({ status: "ok", ...options.health() }));
      return;
    }
    if (path === "/metrics") {
      options.registry.metrics().then(
        (text) => res.writeHead(200, { "content-type": options.registry.contentType }).end(text),
        () => res.writeHead(500).end(),
      );
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address();
  return {
    port: typeof address === "object" && address ? address.port : options.port,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
