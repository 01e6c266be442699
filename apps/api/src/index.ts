export * from "./app";
export type { RouteAuth, RouteInfo } from "./plugins/route-auth";
