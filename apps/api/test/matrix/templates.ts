import type { Fixtures } from "./types";

export const templateFixtures: Fixtures = {
  "GET /tenants/:id/templates/:kind": async (_t, tenantId) => ({
    method: "GET",
    url: `/tenants/${tenantId}/templates/clash-meta`,
  }),
  "PUT /tenants/:id/templates/:kind": async (_t, tenantId) => ({
    method: "PUT",
    url: `/tenants/${tenantId}/templates/remark`,
    payload: { body: "{USERNAME} on {NODE}" },
  }),
  "DELETE /tenants/:id/templates/:kind": async (_t, tenantId) => ({
    method: "DELETE",
    url: `/tenants/${tenantId}/templates/remark`,
  }),
};
