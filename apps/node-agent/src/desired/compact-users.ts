// The desired users as the agent holds them between applies: each user's protobuf encoding kept as
// one latin-1 string, decoded again when a user is read. A decoded DesiredUser is a graph of ~15
// objects and strings (~1.2 KB on the V8 heap with both engines); its encoding is ~250 bytes in a
// single flat string. At 100k users that is the difference between ~120 MB and ~30 MB of live heap
// on a node whose agent has a 150 MB budget (issue 6). Reads decode (a few µs per user): they happen
// on whole-state passes (boot, reconcile, a core start) and for single users (commands), never per
// packet or per usage poll.

import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { DesiredUser } from "@vpnpanel/proto";

export interface DesiredUsers {
  readonly size: number;
  has(userId: string): boolean;
  /** A fresh decoded copy: changing it changes nothing stored. */
  get(userId: string): DesiredUser | undefined;
  keys(): IterableIterator<string>;
  /** Decodes one user per step, so a whole pass never holds every user decoded at once. */
  values(): IterableIterator<DesiredUser>;
  [Symbol.iterator](): IterableIterator<[string, DesiredUser]>;
  /** Each user's encoded bytes, in order (for writing snapshot records without decoding). */
  encoded(): IterableIterator<Uint8Array>;
}

export interface MutableDesiredUsers extends DesiredUsers {
  set(user: DesiredUser): void;
  delete(userId: string): void;
  clear(): void;
}

const pack = (bytes: Uint8Array): string =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1");
const unpack = (text: string): Uint8Array => Buffer.from(text, "latin1");

export function createDesiredUsers(users: Iterable<DesiredUser> = []): MutableDesiredUsers {
  const packed = new Map<string, string>();
  const writer = new BinaryWriter();
  const encode = (user: DesiredUser): string => pack(DesiredUser.encode(user, writer).finish());
  const decode = (text: string): DesiredUser => DesiredUser.decode(unpack(text));

  const map: MutableDesiredUsers = {
    get size() {
      return packed.size;
    },
    has: (userId) => packed.has(userId),
    get(userId) {
      const text = packed.get(userId);
      return text === undefined ? undefined : decode(text);
    },
    keys: () => packed.keys(),
    *values() {
      for (const text of packed.values()) yield decode(text);
    },
    *[Symbol.iterator]() {
      for (const [id, text] of packed) yield [id, decode(text)];
    },
    *encoded() {
      for (const text of packed.values()) yield unpack(text);
    },
    set(user) {
      packed.set(user.userId, encode(user));
    },
    delete(userId) {
      packed.delete(userId);
    },
    clear() {
      packed.clear();
    },
  };
  for (const user of users) map.set(user);
  return map;
}
