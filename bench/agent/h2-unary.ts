// A bare gRPC unary client on node:http2, for the "what does grpc-js itself cost" experiment of
// `npm run bench -- agent --extras`: same requests, same HTTP/2 connection model, none of grpc-js's
// per-call machinery (call stack, filters, metadata objects, deadline timers). Experiment only.

import { connect } from "node:http2";

export interface H2Unary {
  call(path: string, request: Uint8Array): Promise<Buffer>;
  close(): void;
}

export function createH2Unary(address: string): H2Unary {
  const session = connect(`http://${address}`);
  session.on("error", () => undefined);
  return {
    call: (path, request) =>
      new Promise((resolve, reject) => {
        const stream = session.request({
          ":method": "POST",
          ":path": path,
          "content-type": "application/grpc",
          te: "trailers",
        });
        const frame = Buffer.allocUnsafe(5 + request.length);
        frame[0] = 0;
        frame.writeUInt32BE(request.length, 1);
        frame.set(request, 5);
        const chunks: Buffer[] = [];
        let status: string | undefined;
        let message = "";
        const take = (headers: Record<string, unknown>) => {
          if (headers["grpc-status"] === undefined) return;
          status = String(headers["grpc-status"]);
          message = decodeURIComponent(String(headers["grpc-message"] ?? ""));
        };
        // A "trailers-only" error reply carries grpc-status in the response headers.
        stream.on("response", take);
        stream.on("trailers", take);
        stream.on("data", (chunk: Buffer) => chunks.push(chunk));
        stream.on("error", reject);
        stream.on("close", () => {
          if (status === "0") resolve(Buffer.concat(chunks).subarray(5));
          else reject(new Error(`grpc-status ${status ?? "?"}: ${message}`));
        });
        stream.end(frame);
      }),
    close: () => session.close(),
  };
}
