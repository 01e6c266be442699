import { describe, expect, it } from "vitest";
import { REMARK_VARIABLES, renderRemark, validateRemarkTemplate } from "./remark-template";
import { makeSubscriber, NOW } from "./test-fixtures";

const ctx = {
  subscriber: makeSubscriber(),
  now: NOW,
  nodeName: "Frankfurt",
  protocol: "VLESS",
  transport: "ws",
  security: "tls",
};

describe("remark templates", () => {
  it("fill every variable", () => {
    const template = REMARK_VARIABLES.map((v) => `{${v}}`).join("|");
    expect(validateRemarkTemplate(template)).toEqual([]);
    expect(renderRemark(template, ctx)).toBe(
      "alice|11.5 GiB|88.5 GiB|100 GiB|45|2026-04-15|active|VLESS|ws|tls|Frankfurt",
    );
  });

  it("show ∞ for unlimited data and no expiry", () => {
    const subscriber = makeSubscriber({ usage: { upload: 0, download: 0, total: null, expireAt: null } });
    expect(renderRemark("{DATA_LEFT} {DATA_LIMIT} {DAYS_LEFT} {EXPIRE_DATE}", { ...ctx, subscriber })).toBe(
      "∞ ∞ ∞ ∞",
    );
  });

  it.each([
    ["{USERNAM}", "{USERNAM}"],
    ["{ USERNAME }", "{ USERNAME }"],
    ["{username}", "{username}"],
    ["{}", "{}"],
  ])("refuse %s, naming it", (template, named) => {
    const errors = validateRemarkTemplate(template, "hosts[2].remark");
    expect(errors).toHaveLength(1);
    expect(errors[0]?.field).toBe("hosts[2].remark");
    expect(errors[0]?.message).toContain(named);
  });

  it("refuse unbalanced braces and empty templates", () => {
    expect(validateRemarkTemplate("{NODE")).toHaveLength(1);
    expect(validateRemarkTemplate("NODE}")).toHaveLength(1);
    expect(validateRemarkTemplate("  ")).toHaveLength(1);
  });

  it("rendering keeps unknown placeholders verbatim and flattens newlines from names", () => {
    const subscriber = makeSubscriber({ displayName: "bob\nsmith" });
    expect(renderRemark("{USERNAME} {NOPE}", { ...ctx, subscriber })).toBe("bob smith {NOPE}");
  });
});
