export * from "./clock";
export * from "./env";
export * from "./errors";
export * from "./ids";
export * from "./logger";
export * from "./metrics";
export * from "./secret-box";
export * from "./version";
