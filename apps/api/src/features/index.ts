import type { ControlPlane } from "@vpnpanel/control";
import type { FastifyInstance } from "fastify";
import { adminRoutes } from "./admins/routes";
import { auditRoutes } from "./audit/routes";
import { authRoutes } from "./auth/routes";
import { templateRoutes } from "./templates/routes";
import { tenantRoutes } from "./tenants/routes";

export type Feature = (app: FastifyInstance, cp: ControlPlane) => void;

/** Every feature's routes, registered in this order. A new capability adds its module here. */
export const features: Feature[] = [authRoutes, tenantRoutes, adminRoutes, auditRoutes, templateRoutes];
