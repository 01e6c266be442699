// The contract between the node agent and the engines it drives (Xray/v2ray core, WireGuard).
// The agent owns desired state and usage accounting; a driver only makes the engine match a user set
// and reports absolute counters. Both drivers implement the same interface so the agent's session,
// usage and lease code never branch on the engine.

export type EngineKind = "xray" | "wireguard";

/** Xray-family credentials of one subscriber; the driver adds the user to every matching inbound. */
export interface XrayCredentials {
  /** VLESS and VMess id. Must be unique per node: v2ray 4.34 silently re-maps a duplicate UUID. */
  uuid: string;
  trojanPassword: string;
  shadowsocksPassword: string;
  /** VMess alter id; only encoded for v2ray 4.x (Xray removed the field). 0 ⇒ VMessAEAD. */
  vmessAlterId?: number;
  /**
   * v2ray 4.x only: its Shadowsocks inbound is single-user, so each user gets an inbound (a port) of
   * their own. The control plane picks the port (it has to render it into the share link).
   */
  shadowsocksPort?: number;
}

export interface WireguardPeerSpec {
  publicKey: string;
  presharedKey?: string;
  allowedIps: string[];
}

export interface AgentUser {
  /**
   * Stable key: the Xray email (counter names are `user>>>ID>>>traffic>>>…`) and the key the
   * WireGuard driver maps to a peer. Must not contain `>>>`; compared case-insensitively by Xray.
   */
  id: string;
  xray?: XrayCredentials;
  wireguard?: WireguardPeerSpec;
}

/**
 * Absolute counters of one user as the engine reports them, never reset by a read.
 * `generation` names the life of the counter: it changes whenever the counter may have restarted from
 * zero (a new core process, a re-created interface). The delta tracker treats a new generation as
 * "everything is new traffic" even if the value has already grown past the old baseline.
 */
export interface UsageReading {
  userId: string;
  /** Bytes client → server (Xray uplink, WireGuard rx). */
  up: number;
  /** Bytes server → client (Xray downlink, WireGuard tx). */
  down: number;
  generation: string;
}

export interface UserFailure {
  userId: string;
  error: string;
}

export interface ApplyResult {
  added: string[];
  removed: string[];
  /** Users whose credentials changed (re-added under the same id). */
  updated: string[];
  unchanged: number;
  failed: UserFailure[];
  /**
   * Final readings of users removed or re-created by this call, taken before removal. After a removal
   * the driver guarantees that the user's next reading starts from zero, so the agent must add these in
   * and drop its baseline for them (see usage/delta-tracker.ts).
   */
  final: UsageReading[];
}

export interface EngineStatus {
  engine: EngineKind;
  running: boolean;
  /** Current counter generation (see UsageReading.generation). */
  generation: string | null;
  users: number;
  restarts: number;
  lastError: string | null;
  /** Engine-specific numbers for health reports and metrics (no secrets). */
  details: Record<string, string | number | boolean>;
}

export interface RestartedEvent {
  engine: EngineKind;
  generation: string;
  /** Users the new core holds after the restart (from its config, or re-added by the driver). */
  reapplied: number;
  failed: UserFailure[];
}

export interface EngineEvents {
  /** The core came back after a crash, holding the driver's registry again. */
  restarted: (event: RestartedEvent) => void;
  /** The core exited unexpectedly (before the restart attempt). */
  crashed: (info: { engine: EngineKind; code: number | null; signal: string | null }) => void;
}

export interface EngineDriver<TBaseConfig> {
  readonly kind: EngineKind;
  /**
   * Starts the engine. `preload` is the user set it should come up with, when the caller knows it: a
   * driver that starts a fresh process (Xray) writes those users into its config instead of adding
   * them one API call at a time (docs/adr/0010); others ignore it. Either way the caller follows with
   * applySnapshot(preload), which diffs to nothing for what was preloaded and adds the rest.
   */
  start(base: TBaseConfig, preload?: readonly AgentUser[]): Promise<void>;
  /** Stops supervising; takes no final reading (call readUsage first for a planned stop). */
  stop(): Promise<void>;
  /**
   * Makes the engine hold exactly `users` (those carrying credentials for this engine). Diffs against
   * the driver's registry, so re-applying an unchanged snapshot touches nothing.
   */
  applySnapshot(users: readonly AgentUser[]): Promise<ApplyResult>;
  /** Upserts: unchanged users are skipped, changed ones re-created (their final reading returned). */
  addUsers(users: readonly AgentUser[]): Promise<ApplyResult>;
  /** Takes a final reading of each user, removes them, and returns the readings. Unknown ids are no-ops. */
  removeUsers(ids: readonly string[]): Promise<ApplyResult>;
  /** Absolute counters per user; never resets them. */
  readUsage(): Promise<UsageReading[]>;
  status(): EngineStatus;
  /**
   * Readings of a previous core life found at start (a core left running by an agent that was killed),
   * taken just before that core was stopped. The caller records them like a sample; returns each once.
   */
  drainOrphanReadings?(): UsageReading[];
  on<E extends keyof EngineEvents>(event: E, listener: EngineEvents[E]): () => void;
}

export function emptyApplyResult(): ApplyResult {
  return { added: [], removed: [], updated: [], unchanged: 0, failed: [], final: [] };
}
