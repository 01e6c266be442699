import type { ControlPlane } from "@vpnpanel/control";
import type { FastifyInstance } from "fastify";
import { adminRoutes } from "./admins/routes";
import { auditRoutes } from "./audit/routes";
import { authRoutes } from "./auth/routes";
import { nodeAssignmentRoutes } from "./nodes/assignment-routes";
import { nodeEnrollmentRoutes } from "./nodes/enrollment-routes";
import { nodeRoutes } from "./nodes/routes";
import { planRoutes } from "./plans/routes";
import { subRoutes } from "./sub/routes";
import { templateRoutes } from "./templates/routes";
import { tenantRoutes } from "./tenants/routes";
import { trafficRoutes } from "./traffic/routes";
import { bulkRoutes } from "./users/bulk-routes";
import { userRoutes } from "./users/routes";
import { subscriptionRoutes } from "./users/subscription-routes";
import { webhookRoutes } from "./webhooks/routes";

export type Feature = (app: FastifyInstance, cp: ControlPlane) => void;

/** Every feature's routes, registered in this order. A new capability adds its module here. */
export const features: Feature[] = [
  authRoutes,
  tenantRoutes,
  adminRoutes,
  auditRoutes,
  templateRoutes,
  subRoutes,
  planRoutes,
  userRoutes,
  subscriptionRoutes,
  bulkRoutes,
  webhookRoutes,
  nodeRoutes,
  nodeEnrollmentRoutes,
  nodeAssignmentRoutes,
  trafficRoutes,
];
