import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

export { Counter, Gauge, Histogram, Registry };

/** One registry per process, with `service_info` and the default process metrics. */
export function createMetricsRegistry(opts: { service: string; version: string; roles: string[] }): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const info = new Gauge({
    name: "service_info",
    help: "Static information about this process",
    labelNames: ["service", "version", "roles"],
    registers: [registry],
  });
  info.set({ service: opts.service, version: opts.version, roles: opts.roles.join(",") }, 1);
  return registry;
}
