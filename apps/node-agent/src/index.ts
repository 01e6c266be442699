// The node agent (`vpnpanel agent`): see main.ts for the daemon, agent.ts for the wiring.
export { type Agent, type AgentOptions, createAgent } from "./agent";
export { type AgentConfig, agentEnvSchema, loadAgentConfig } from "./config";
export type { EngineSlot } from "./engine-slots";
export { buildEngineSlots, type RunningAgent, runAgent } from "./main";
