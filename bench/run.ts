export {};

// `npm run bench -- <name> [args…]`: runs one benchmark script. Benchmarks print their figures and
// how they were measured; the results go to docs/benchmarks.md by hand, with the method.

const benches: Record<string, () => Promise<{ main(args: string[]): Promise<void> }>> = {
  // name: () => import("./name"),
  agent: () => import("./agent"),
  sub: () => import("./sub"),
  lifecycle: () => import("./lifecycle"),
  ingest: () => import("./ingest"),
};

const [name, ...args] = process.argv.slice(2);
const load = name ? benches[name] : undefined;
if (!load) {
  process.stderr.write(`usage: npm run bench -- <${Object.keys(benches).join("|") || "name"}> [args]\n`);
  process.exit(2);
}
await (await load()).main(args);
