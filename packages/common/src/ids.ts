import { randomBytes } from "node:crypto";

// Ids carry a readable prefix (`usr_…`, `node_…`) and a time-ordered body: 10 Crockford base32
// characters of milliseconds, then 16 of randomness. Sorting by id follows creation order, which
// keyset pagination relies on, and ids from different replicas never collide in practice.

const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";

export type IdPrefix =
  | "tnt"
  | "adm"
  | "usr"
  | "sub"
  | "pln"
  | "node"
  | "rt"
  | "sess"
  | "whk"
  | "evt"
  | "tpl"
  | "inb"
  | "host"
  | "ent";

let lastMs = 0;
let lastRand: number[] = [];

export function newId(prefix: IdPrefix, now = Date.now()): string {
  let ms = now;
  let rand: number[];
  if (ms <= lastMs) {
    // Same millisecond: increment the random part so ids stay strictly increasing in this process.
    ms = lastMs;
    rand = [...lastRand];
    for (let i = rand.length - 1; i >= 0; i--) {
      if (rand[i]! < 31) {
        rand[i] = rand[i]! + 1;
        break;
      }
      rand[i] = 0;
    }
  } else {
    const bytes = randomBytes(16);
    rand = Array.from(bytes, (b) => b & 31);
  }
  lastMs = ms;
  lastRand = rand;
  let time = "";
  let t = ms;
  for (let i = 0; i < 10; i++) {
    time = ALPHABET[t % 32] + time;
    t = Math.floor(t / 32);
  }
  return `${prefix}_${time}${rand.map((r) => ALPHABET[r]).join("")}`;
}

export function isId(value: string, prefix: IdPrefix): boolean {
  return new RegExp(`^${prefix}_[0-9a-hjkmnp-tv-z]{26}$`).test(value);
}
