import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { buildClashDocument, DEFAULT_CLASH_TEMPLATE, validateClashTemplate } from "./clash-template";
import { resolveProxies } from "./resolve-proxies";
import { combinationNode, makeSubscriber, NOW } from "./test-fixtures";

const proxies = resolveProxies(makeSubscriber(), [combinationNode("v2ray")], { now: NOW }).proxies.slice(
  0,
  3,
);
const names = proxies.map((p) => p.name);

const TENANT_TEMPLATE = `# tenant template
mode: rule
dns:
  enable: true
  nameserver: [https://1.1.1.1/dns-query]
proxies:
  - { name: home, type: socks5, server: 192.0.2.5, port: 1080 }
proxy-groups:
  - name: Streaming
    type: select
    proxies: [{{PROXIES}}, home, DIRECT]
  - name: Fastest
    type: url-test
    url: https://www.gstatic.com/generate_204
    interval: 600
    proxies: ["{{PROXIES}}"]
rules:
  - DOMAIN-SUFFIX,netflix.com,Streaming
  - IP-CIDR,192.168.0.0/16,DIRECT,no-resolve
  - MATCH,Fastest
`;

const fields = (template: string) => validateClashTemplate(template).map((e) => e.field);

describe("Clash-Meta templates", () => {
  it("the built-in default and a realistic tenant template are valid", () => {
    expect(validateClashTemplate(DEFAULT_CLASH_TEMPLATE)).toEqual([]);
    expect(validateClashTemplate(TENANT_TEMPLATE)).toEqual([]);
  });

  it("merging keeps the tenant's settings and static proxies and expands the placeholder in place", () => {
    const doc = buildClashDocument(proxies, TENANT_TEMPLATE);
    expect(doc.dns).toEqual({ enable: true, nameserver: ["https://1.1.1.1/dns-query"] });
    expect((doc.proxies as Array<{ name: string }>).map((p) => p.name)).toEqual(["home", ...names]);
    expect(doc["proxy-groups"]).toEqual([
      { name: "Streaming", type: "select", proxies: [...names, "home", "DIRECT"] },
      expect.objectContaining({ name: "Fastest", proxies: names }),
    ]);
    expect(doc.rules).toContain("MATCH,Fastest");
  });

  it("renames our proxies that collide with a template name instead of shadowing it", () => {
    const template = TENANT_TEMPLATE.replace("name: home", `name: ${names[0]}`).replace(
      ", home,",
      `, ${names[0]},`,
    );
    const doc = buildClashDocument(proxies, template);
    const all = (doc.proxies as Array<{ name: string }>).map((p) => p.name);
    expect(all[0]).toBe(names[0]);
    expect(all[1]).toBe(`${names[0]} 2`);
    expect(new Set(all).size).toBe(all.length);
  });

  it("refuses broken YAML, a missing placeholder, unknown members and unknown rule targets", () => {
    expect(fields("proxies: [\n")).toEqual(["template"]);
    expect(fields("- just a list")).toEqual(["template"]);
    expect(fields(TENANT_TEMPLATE.replaceAll("{{PROXIES}}", "home"))).toEqual(["proxy-groups"]);
    expect(fields(TENANT_TEMPLATE.replace("home, DIRECT", "home, Nowhere"))).toEqual([
      "proxy-groups[0].proxies",
    ]);
    expect(fields(TENANT_TEMPLATE.replace("MATCH,Fastest", "MATCH,Slowest"))).toEqual(["rules[2]"]);
    expect(fields(TENANT_TEMPLATE.replace("type: url-test", "type: fastest"))).toEqual([
      "proxy-groups[1].type",
    ]);
  });

  it("refuses a placeholder in the top-level proxies list and duplicate names", () => {
    expect(fields(DEFAULT_CLASH_TEMPLATE.replace("proxies: []", 'proxies: ["{{PROXIES}}"]'))).toEqual([
      "proxies",
    ]);
    const dup = DEFAULT_CLASH_TEMPLATE.replace("name: Auto", "name: Proxy").replace("[Auto,", "[DIRECT,");
    expect(validateClashTemplate(dup)).toContainEqual({
      field: "proxy-groups",
      message: 'name "Proxy" is used twice',
    });
  });

  it("error messages name the unknown thing", () => {
    const [error] = validateClashTemplate(TENANT_TEMPLATE.replace("MATCH,Fastest", "MATCH,Slowest"));
    expect(error?.message).toContain('"Slowest"');
  });

  it("the rendered document is plain YAML without the placeholder", () => {
    const text = JSON.stringify(buildClashDocument(proxies, TENANT_TEMPLATE));
    expect(text).not.toContain("{{PROXIES}}");
    expect(parse(DEFAULT_CLASH_TEMPLATE)["proxy-groups"][1].proxies).toEqual(["{{PROXIES}}"]);
  });
});
