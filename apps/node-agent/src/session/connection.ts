// The one long-lived NodeControl.Session stream, and the loop that keeps it up: Hello first, then
// messages in order; on failure the next collector address after a jittered exponential backoff.
// Close is honoured: REVOKED stops reconnecting (the node keeps serving on its lease), DRAINING moves
// to another collector at once, RENEW_CERTIFICATE renews and comes back, SUPERSEDED backs off.
//
// A stream counts as established when the collector's first message arrives (it always sends Policy
// first); only then is the failure count reset. A TLS or authentication failure therefore keeps
// backing off instead of hammering the collector.

import type { ChannelCredentials, ChannelOptions, ClientDuplexStream } from "@grpc/grpc-js";
import { type AgentMessage, CloseReason, type ControlMessage, NodeControlClient } from "@vpnpanel/proto";
import type { Logger } from "pino";
import { errorMessage } from "../engines/async-utils";
import { type BackoffPolicy, reconnectDelayMs } from "./backoff";

export type ConnectionState = "idle" | "connecting" | "open" | "waiting" | "revoked" | "stopped";

export type SessionEnd =
  | { kind: "closed"; reason: CloseReason; message: string; retryAfterSeconds: number }
  | { kind: "error"; code: number | null; message: string }
  | { kind: "ended" }
  /** Asked for locally (after a certificate renewal, or a resync that needs a new stream). */
  | { kind: "reconnect" }
  | { kind: "stopped" };

export interface SessionHandle {
  readonly address: string;
  /** Resolves once the message is handed to the transport (waits for flow control); throws if the stream is gone. */
  send(message: AgentMessage): Promise<void>;
  isCurrent(): boolean;
}

export class NotConnectedError extends Error {
  constructor() {
    super("no session with a collector");
    this.name = "NotConnectedError";
  }
}

export interface ConnectionOptions {
  addresses: readonly string[];
  /** Read on every attempt, so a renewed certificate is used by the next stream. */
  credentials: () => ChannelCredentials;
  channelOptions?: ChannelOptions;
  hello: () => AgentMessage;
  /** The collector's first message arrived: the session is established. */
  onOpen: (session: SessionHandle) => void;
  /** Every message except Close, in arrival order. */
  onMessage: (message: ControlMessage, session: SessionHandle) => void;
  onEnd?: (end: SessionEnd, session: SessionHandle, established: boolean) => void;
  onRenewRequested: () => Promise<void>;
  /** Observability and tests: every dial, and every wait before the next one. */
  onAttempt?: (event: { address: string } | { waitMs: number; next: string }) => void;
  backoff: BackoffPolicy;
  random?: () => number;
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  logger: Logger;
}

export interface Connection {
  start(): void;
  /** Ends the stream (half-close first, so the collector sees a clean end) and stops reconnecting. */
  stop(): Promise<void>;
  /** Drops the current stream and dials again at once, same address. */
  reconnect(): void;
  state(): ConnectionState;
  current(): SessionHandle | null;
  /** Resolves when the loop has exited (stopped, or revoked). */
  done(): Promise<void>;
}

export const defaultSleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });

interface Live {
  handle: SessionHandle;
  finish: (end: SessionEnd) => void;
  call: ClientDuplexStream<AgentMessage, ControlMessage>;
}

export function createConnection(options: ConnectionOptions): Connection {
  const { logger } = options;
  const random = options.random ?? Math.random;
  const sleep = options.sleep ?? defaultSleep;
  const addresses = [...options.addresses];
  if (addresses.length === 0) throw new Error("no collector address configured");
  let state: ConnectionState = "idle";
  let stopped = false;
  let live: Live | null = null;
  let loopDone: Promise<void> = Promise.resolve();
  const sleeper = new AbortController();

  function runSession(address: string): Promise<{ established: boolean; end: SessionEnd }> {
    options.onAttempt?.({ address });
    state = "connecting";
    const client = new NodeControlClient(address, options.credentials(), options.channelOptions);
    const call = client.session();
    let established = false;
    let ended = false;
    let endedSignal: () => void = () => undefined;
    const endedPromise = new Promise<void>((resolve) => {
      endedSignal = resolve;
    });

    const handle: SessionHandle = {
      address,
      isCurrent: () => !ended,
      async send(message) {
        if (ended) throw new NotConnectedError();
        if (!call.write(message)) {
          await Promise.race([new Promise((resolve) => call.once("drain", resolve)), endedPromise]);
        }
        if (ended) throw new NotConnectedError();
      },
    };

    return new Promise((resolve) => {
      const finish = (end: SessionEnd) => {
        if (ended) return;
        ended = true;
        endedSignal();
        if (live?.call === call) live = null;
        if (end.kind === "stopped") {
          // Half-close: the collector sees the agent finish cleanly rather than a cancelled call.
          call.end();
          setTimeout(() => call.cancel(), 1_000).unref();
        } else call.cancel();
        client.close();
        options.onEnd?.(end, handle, established);
        resolve({ established, end });
      };
      live = { handle, finish, call };
      call.on("data", (message: ControlMessage) => {
        if (ended) return;
        if (!established) {
          established = true;
          state = "open";
          logger.info({ address }, "session established");
          options.onOpen(handle);
        }
        const body = message.body;
        if (body?.$case === "close") {
          finish({
            kind: "closed",
            reason: body.value.reason,
            message: body.value.message,
            retryAfterSeconds: body.value.retryAfterSeconds,
          });
          return;
        }
        options.onMessage(message, handle);
      });
      call.on("error", (error: { code?: number; details?: string; message?: string }) =>
        finish({ kind: "error", code: error.code ?? null, message: error.details || errorMessage(error) }),
      );
      call.on("end", () => finish({ kind: "ended" }));
      try {
        call.write(options.hello());
      } catch (error) {
        finish({ kind: "error", code: null, message: errorMessage(error) });
      }
    });
  }

  async function loop(): Promise<void> {
    let failures = 0;
    let index = 0;
    while (!stopped) {
      const address = addresses[index % addresses.length] as string;
      const { established, end } = await runSession(address);
      if (stopped || end.kind === "stopped") break;
      let waitMs: number;
      let rotate = false;
      if (established) failures = 0;
      switch (end.kind) {
        case "reconnect":
          waitMs = 0;
          break;
        case "closed":
          if (end.reason === CloseReason.REVOKED) {
            state = "revoked";
            logger.error(
              { address, message: end.message },
              "the control plane revoked this node: not reconnecting; current users keep being served on their leases",
            );
            return;
          }
          if (end.reason === CloseReason.RENEW_CERTIFICATE) {
            try {
              await options.onRenewRequested();
              waitMs = 0;
            } catch (error) {
              failures++;
              logger.error(
                { err: errorMessage(error) },
                "certificate renewal requested by the collector failed",
              );
              waitMs = reconnectDelayMs(failures, options.backoff, random);
            }
            break;
          }
          if (end.reason === CloseReason.DRAINING) {
            logger.info({ address }, "collector is draining; moving to another one");
            rotate = true;
            waitMs =
              end.retryAfterSeconds > 0
                ? end.retryAfterSeconds * 1000
                : reconnectDelayMs(1, options.backoff, random);
            break;
          }
          // SUPERSEDED (another session of this node won) or an unknown reason: back off.
          failures++;
          logger.warn({ address, reason: end.reason, message: end.message }, "collector closed the session");
          waitMs =
            end.retryAfterSeconds > 0
              ? end.retryAfterSeconds * 1000
              : reconnectDelayMs(failures, options.backoff, random);
          break;
        default:
          failures++;
          rotate = true;
          waitMs = reconnectDelayMs(failures, options.backoff, random);
          logger.warn(
            {
              address,
              ...(end.kind === "error" ? { code: end.code, err: end.message } : {}),
              failures,
              waitMs,
            },
            established ? "session lost" : "could not establish a session",
          );
      }
      if (rotate) index++;
      if (stopped) break;
      if (waitMs > 0) {
        state = "waiting";
        options.onAttempt?.({ waitMs, next: addresses[index % addresses.length] as string });
        await sleep(waitMs, sleeper.signal);
      }
    }
  }

  return {
    start() {
      if (state !== "idle") return;
      loopDone = loop()
        .catch((error) => logger.error({ err: errorMessage(error) }, "connection loop failed"))
        .finally(() => {
          if (state !== "revoked") state = "stopped";
        });
    },
    async stop() {
      stopped = true;
      sleeper.abort();
      live?.finish({ kind: "stopped" });
      await loopDone;
      state = state === "revoked" ? "revoked" : "stopped";
    },
    reconnect() {
      live?.finish({ kind: "reconnect" });
    },
    state: () => state,
    current: () => live?.handle ?? null,
    done: () => loopDone,
  };
}
