import { describe, expect, it } from "vitest";
import type { AgentUser } from "./types";
import { diffUsers, validateUserId } from "./user-diff";

const print = (u: AgentUser) => (u.xray ? u.xray.uuid : null);
const user = (id: string, uuid?: string): AgentUser =>
  uuid ? { id, xray: { uuid, trojanPassword: "t", shadowsocksPassword: "s" } } : { id };

describe("diffUsers", () => {
  it("an unchanged snapshot yields an empty diff", () => {
    const applied = new Map([
      ["a", "1"],
      ["b", "2"],
    ]);
    expect(diffUsers(applied, [user("a", "1"), user("b", "2")], print)).toEqual({
      toAdd: [],
      toUpdate: [],
      toRemove: [],
      unchanged: 2,
    });
  });
  it("finds additions, credential changes and removals; a user without this engine counts as absent", () => {
    const applied = new Map([
      ["a", "1"],
      ["b", "2"],
      ["c", "3"],
    ]);
    const diff = diffUsers(applied, [user("a", "1"), user("b", "9"), user("c"), user("d", "4")], print);
    expect(diff.toAdd.map((u) => u.id)).toEqual(["d"]);
    expect(diff.toUpdate.map((u) => u.id)).toEqual(["b"]);
    expect(diff.toRemove).toEqual(["c"]);
    expect(diff.unchanged).toBe(1);
  });
  it("the last duplicate of an id wins", () => {
    expect(diffUsers(new Map(), [user("a", "1"), user("a", "2")], print).toAdd).toEqual([user("a", "2")]);
  });
});

describe("validateUserId", () => {
  it("rejects ids that would break counter names or configs", () => {
    expect(validateUserId("usr_1@node")).toBeNull();
    expect(validateUserId("a>>>b")).toMatch(/>>>/);
    expect(validateUserId("")).not.toBeNull();
    expect(validateUserId("a b")).not.toBeNull();
    expect(validateUserId("a/b")).not.toBeNull();
  });
});
