// A collector in its own process, for tests that kill it. Configured from the environment like the
// real one (it is a composition root), plus one test-only variable:
//   CRASH_AFTER_COMMIT_SEQ=n  → SIGKILL itself right after the transaction holding batch n
//                               committed, before any ack is written.
// Prints one JSON line {"address","enrollAddress"} when it listens; SIGTERM stops it gracefully.
import { startCollector } from "@vpnpanel/collector";
import { createControlPlane, loadControlConfig } from "@vpnpanel/control";

const config = loadControlConfig(process.env);
const cp = await createControlPlane(config);
const crashSeq = process.env.CRASH_AFTER_COMMIT_SEQ;
const collector = await startCollector(cp, {
  port: 0,
  enrollPort: 0,
  pollIntervalMs: 100,
  tickMs: 1000,
  ...(crashSeq
    ? {
        hooks: {
          afterCommit: (batches) => {
            if (batches.some((b) => b.seq === BigInt(crashSeq))) process.kill(process.pid, "SIGKILL");
          },
        },
      }
    : {}),
});
process.stdout.write(
  `${JSON.stringify({ address: collector.address, enrollAddress: collector.enrollAddress })}\n`,
);
process.on("SIGTERM", () => {
  void collector
    .stop(3000)
    .then(() => cp.close())
    .finally(() => process.exit(0));
});
