// gRPC client for the core's HandlerService and StatsService, without generated code: requests are
// pre-encoded bytes (messages-*.ts) sent through grpc-js generic unary calls.

import * as grpc from "@grpc/grpc-js";
import { type CoreFlavor, methodPath } from "./flavor";
import {
  decodeGetStatsResponse,
  decodeQueryStatsResponse,
  decodeSysStatsResponse,
  decodeUserTraffic,
  encodeGetStats,
  encodeQueryStats,
  type Stat,
  type SysStats,
  type UserTraffic,
} from "./messages-stats";

export interface CoreApiClient {
  alterInbound(request: Uint8Array): Promise<void>;
  addInbound(request: Uint8Array): Promise<void>;
  removeInbound(request: Uint8Array): Promise<void>;
  queryStats(pattern: string, reset?: boolean): Promise<Stat[]>;
  /** QueryStats decoded straight into per-user traffic (see decodeUserTraffic). */
  queryUserTraffic(pattern: string): Promise<Map<string, UserTraffic>>;
  /** One counter by exact name; a counter that was never created reads as 0. */
  getStat(name: string, reset?: boolean): Promise<number>;
  sysStats(): Promise<SysStats>;
  close(): void;
}

export interface CoreApiOptions {
  /** Per-call deadline. */
  deadlineMs?: number;
  /**
   * A 100k-user QueryStats reply is ~9 MB (research/limits.md §3), over grpc-js's 4 MB default, which
   * would fail with RESOURCE_EXHAUSTED exactly when the node is busiest.
   */
  maxReceiveBytes?: number;
}

const toBuffer = (bytes: Uint8Array): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
const identity = (bytes: Buffer): Uint8Array => bytes;

export function createCoreApiClient(
  flavor: CoreFlavor,
  address: string,
  options: CoreApiOptions = {},
): CoreApiClient {
  const deadlineMs = options.deadlineMs ?? 10_000;
  const client = new grpc.Client(address, grpc.credentials.createInsecure(), {
    "grpc.max_receive_message_length": options.maxReceiveBytes ?? 256 * 1024 * 1024,
    "grpc.max_send_message_length": 64 * 1024 * 1024,
  });

  const call = (service: "handler" | "stats", method: string, request: Uint8Array): Promise<Uint8Array> =>
    new Promise((resolve, reject) => {
      client.makeUnaryRequest(
        methodPath(flavor, service, method),
        toBuffer,
        identity,
        request,
        { deadline: Date.now() + deadlineMs },
        (error, response) => (error ? reject(error) : resolve(response ?? new Uint8Array())),
      );
    });

  return {
    alterInbound: async (request) => void (await call("handler", "AlterInbound", request)),
    addInbound: async (request) => void (await call("handler", "AddInbound", request)),
    removeInbound: async (request) => void (await call("handler", "RemoveInbound", request)),
    queryStats: async (pattern, reset = false) =>
      decodeQueryStatsResponse(await call("stats", "QueryStats", encodeQueryStats(pattern, reset))),
    queryUserTraffic: async (pattern) =>
      decodeUserTraffic(await call("stats", "QueryStats", encodeQueryStats(pattern, false))),
    getStat: async (name, reset = false) => {
      try {
        return decodeGetStatsResponse(await call("stats", "GetStats", encodeGetStats(name, reset))).value;
      } catch (error) {
        // Xray: NOT_FOUND "<name> not found."; v2ray 4.34: UNKNOWN "...: <name> not found."
        if ((error as { code?: number }).code === grpc.status.NOT_FOUND) return 0;
        if (error instanceof Error && error.message.includes(`${name} not found`)) return 0;
        throw error;
      }
    },
    sysStats: async () => decodeSysStatsResponse(await call("stats", "GetSysStats", new Uint8Array())),
    close: () => client.close(),
  };
}

export type CoreErrorKind =
  | "already-exists"
  | "user-not-found"
  | "inbound-not-found"
  | "no-handler"
  | "unavailable"
  | "other";

/**
 * Both cores answer every API error with gRPC code UNKNOWN and a Go error chain as text, so the kind
 * is recovered from the message (texts verified on v2ray 4.34, research/protocols.md §3).
 * Order matters: AlterInbound on a missing tag says "handler not found", which must NOT count as the
 * idempotent "user not found" of a repeated removal.
 */
export function classifyCoreError(error: unknown): CoreErrorKind {
  const code = (error as { code?: number }).code;
  if (code === grpc.status.UNAVAILABLE || code === grpc.status.DEADLINE_EXCEEDED) return "unavailable";
  const text = error instanceof Error ? error.message : String(error);
  if (/failed to get handler|handler not found|not a UserManager/i.test(text)) return "no-handler";
  if (/already exists|existing tag found/i.test(text)) return "already-exists";
  if (/User \S* ?not found/i.test(text)) return "user-not-found";
  if (/not enough information for making a decision/i.test(text)) return "inbound-not-found";
  return "other";
}
