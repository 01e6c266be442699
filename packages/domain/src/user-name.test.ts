import { describe, expect, it } from "vitest";
import { unwrap } from "./errors";
import { USER_NAME_MAX_LENGTH, userNameKey, validateUserName } from "./user-name";

describe("validateUserName", () => {
  it.each(["a", "7", "alice", "Alice_01", "shop.alice", "alice@example.com", "a-b_c.d@e", "x".repeat(64)])(
    "accepts %j unchanged",
    (name) => {
      expect(validateUserName(name)).toEqual({ ok: true, value: name });
    },
  );

  it.each([
    ["", "must not be empty"],
    ["x".repeat(USER_NAME_MAX_LENGTH + 1), "at most 64 characters"],
    ["alice smith", 'found " "'],
    ["alice/bob", 'found "/"'],
    ["a>>>b", 'found ">"'],
    ["a:b", 'found ":"'],
    ["аlice", 'found "а"'], // Cyrillic а, a look-alike of "alice"
    ["alice\n", 'found "\\n"'],
    ["-alice", "must start with a letter or a digit"],
    [".alice", "must start with a letter or a digit"],
    ["_alice", "must start with a letter or a digit"],
    ["@alice", "must start with a letter or a digit"],
  ])("rejects %j: %s", (name, message) => {
    const r = validateUserName(name, "users[3].username");
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.issues).toEqual([{ field: "users[3].username", message: expect.stringContaining(message) }]);
  });

  it("rejects a non-string with the default field name", () => {
    expect(validateUserName(42)).toEqual({
      ok: false,
      issues: [{ field: "username", message: "must be a string" }],
    });
  });

  it("unwrap throws the issues as a validation error", () => {
    expect(() => unwrap(validateUserName("bad name"))).toThrow(/^username: must contain only/);
    expect(unwrap(validateUserName("good"))).toBe("good");
  });
});

describe("userNameKey", () => {
  it("makes names that differ only by case collide", () => {
    expect(userNameKey("Alice")).toBe(userNameKey("alice"));
    expect(userNameKey("alice@Example.COM")).toBe("alice@example.com");
  });
});
