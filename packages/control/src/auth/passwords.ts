import { hash, verify } from "@node-rs/argon2";

// `Algorithm.Argon2id` is an ambient const enum (unusable under isolatedModules); its value is 2.
const ARGON2ID = 2;

export interface Argon2Params {
  memoryKib: number;
  timeCost: number;
  parallelism: number;
}

export function createPasswordHasher(p: Argon2Params) {
  return {
    hash: (password: string) =>
      hash(password, {
        algorithm: ARGON2ID,
        memoryCost: p.memoryKib,
        timeCost: p.timeCost,
        parallelism: p.parallelism,
      }),
    async verify(phc: string, password: string): Promise<boolean> {
      try {
        return await verify(phc, password);
      } catch {
        return false;
      }
    },
  };
}

export type PasswordHasher = ReturnType<typeof createPasswordHasher>;

/** Password policy for panel accounts: long enough to resist guessing, bounded to cap hashing cost. */
export function passwordProblem(password: string): string | null {
  if (password.length < 12) return "password must be at least 12 characters";
  if (password.length > 256) return "password must be at most 256 characters";
  return null;
}
