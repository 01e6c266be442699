// Pure domain rules: no I/O, time always injected. Services, the scheduler and ingest call these;
// the SQL layer derives its guards from the data exported here.
export * from "./credentials";
export * from "./errors";
export * from "./ip-address";
export * from "./ip-pool";
export * from "./periods";
export * from "./quota";
export * from "./subscription-state";
export * from "./user-name";
