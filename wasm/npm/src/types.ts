// The public types of @tether/browser: states, causes, options and payloads, named as in
// SPEC.md (stable snake_case names for codes, camelCase for fields).

/** One rung of the transport ladder (FALLBACK-1), best first. */
export type Transport = "websocket" | "sse" | "long_poll";

/** Every error code the client reports (SPEC ERR-1). */
export type ErrorCode =
  | "frame_malformed"
  | "frame_too_large"
  | "sse_line_too_long"
  | "sse_event_too_large"
  | "invalid_utf8"
  | "policy_clamped"
  | "message_too_large"
  | "invalid_channel"
  | "outbox_full"
  | "store_failed"
  | "closed"
  | "auth_expired"
  | "auth_failed"
  | "forbidden"
  | "not_found"
  | "protocol_version"
  | "bad_request"
  | "attempts_exhausted"
  | "heartbeat_timeout"
  | "send_timeout"
  | "transport_blocked"
  | "transport_error"
  | "server_error";

/** Why a transition happened (STATE-2), without the two causes that carry a code. */
export type PlainCauseName =
  | "user_connect"
  | "user_close"
  | "hello"
  | "transport_error"
  | "heartbeat_timeout"
  | "drain"
  | "retry_later"
  /** A readiness probe answered ready and moved the attempt earlier (READY-4). */
  | "ready"
  | "auth_expired"
  | "network_offline"
  | "network_online"
  | "blocked"
  | "slow_open"
  | "protocol_error"
  | "attempts_exhausted"
  | "backoff"
  | "upgrade"
  /** A `POST /send` got no answer within its deadline (OUTBOX-9). */
  | "send_timeout";

/** A transition's cause (STATE-2). */
export type Cause =
  /** The transport closed; `code` is the WebSocket close code (null when there was none). */
  | { readonly name: "transport_closed"; readonly code: number | null }
  /** A terminal failure (CONN-5) with its ERR-1 code. */
  | { readonly name: "terminal"; readonly code: ErrorCode }
  | { readonly name: PlainCauseName };

/** Every cause name. */
export type CauseName = Cause["name"];

/** The client state (STATE-1). */
export type State =
  | { readonly name: "idle" }
  | { readonly name: "connecting"; readonly attempt: number; readonly transport: Transport }
  | { readonly name: "connected"; readonly transport: Transport }
  /** Connected on a rung below the best allowed one (ADR-5). */
  | { readonly name: "degraded"; readonly transport: Transport; readonly reason: ErrorCode }
  /** Waiting before attempt `attempt`; `delayMs` is null while waiting for the network. */
  | {
      readonly name: "reconnecting";
      readonly attempt: number;
      readonly delayMs: number | null;
      readonly cause: Cause;
    }
  | { readonly name: "failed"; readonly reason: ErrorCode }
  | { readonly name: "closed" };

/** Every state name. */
export type StateName = State["name"];

/** Any JSON value: what a message carries. */
export type Json = null | boolean | number | string | readonly Json[] | { readonly [key: string]: Json };

/** A message, delivered exactly once and in order per channel (ORDER-1). */
export interface Message {
  readonly channel: string;
  readonly seq: number;
  readonly data: Json;
}

/** The server acknowledged a publish. */
export interface Ack {
  /** The idempotency key (OUTBOX-1). */
  readonly id: string;
  /** The sequence number the server gave the message on its channel, when it said. */
  readonly seq: number | null;
}

/** Why the outbox dropped a publish (OUTBOX-6, OUTBOX-7). */
export type DropReason = "overflow" | "expired" | "rejected" | "too_large";

/** Why the application must resynchronise a channel (RESUME-5, ORDER-4). */
export type ResetReason = "server" | "gap";

/** Why the ladder moved (FALLBACK-3, FALLBACK-6). */
export type FallbackReason = "blocked" | "upgrade" | "all_blocked";

/** A server policy value replaced by its bound (BACKOFF-8). */
export interface Clamp {
  readonly field: string;
  readonly requested: number;
  readonly applied: number;
}

/**
 * The application's own policy: each field overrides the server's announced value (BACKOFF-9).
 * Validated (floor >= 1 ms, base >= floor, cap >= base, multiplier in [1, 10]) but not
 * clamped, so tests and trusted deployments may use millisecond timings.
 */
export interface PolicyOverrides {
  readonly floorMs?: number;
  readonly baseMs?: number;
  readonly capMs?: number;
  readonly multiplier?: number;
  readonly maxAttempts?: number;
  readonly maxElapsedMs?: number;
  readonly heartbeatMs?: number;
  readonly heartbeatGraceMs?: number;
  readonly openTimeoutMs?: number;
  readonly pollHoldMs?: number;
  readonly probeIntervalMs?: number;
  readonly upgradeAfterMs?: number;
  readonly outboxMaxCount?: number;
  readonly outboxMaxBytes?: number;
  readonly outboxMaxAgeMs?: number;
}

/**
 * Supplies a bearer token before every attempt (AUTH-1). `forced` is true after the server
 * said the token expired (AUTH-2): do not serve a cached token then. Throw (or reject with) a
 * {@link TokenProviderError} with `fatal: true` to stop the client in `failed` (`auth_failed`);
 * any other error counts as a failed attempt and backs off.
 */
export type TokenProvider = (forced: boolean) => string | PromiseLike<string>;

/** Where the outbox and the memo live. */
export type StoreOption =
  /** In memory: lost with the page (the default). */
  | "memory"
  /**
   * IndexedDB database `tether:<name>`: queued publishes, the last server policy, the
   * working transport and a retry-after deadline survive reloads and crashed tabs. Use one
   * name per client: two live clients on one name would both resend its outbox.
   */
  | { readonly indexedDB: string };

/** How a client is built. Every field is optional. */
export interface ClientOptions {
  /** Allowed transports; they keep ladder order whatever the order given. Default: all three. */
  readonly transports?: readonly Transport[];
  readonly policy?: PolicyOverrides;
  readonly token?: TokenProvider;
  readonly store?: StoreOption;
  /** Seed of the backoff randomness (BACKOFF-7). Default: `crypto.getRandomValues`. */
  readonly seed?: number | bigint;
  /** What a full outbox does (OUTBOX-6). Default: `drop_oldest`. */
  readonly dropPolicy?: "drop_oldest" | "reject_new";
  /** Largest frame accepted or sent (LIMIT-1), at least 1024. Default: 1 MiB. */
  readonly maxFrameBytes?: number;
  /**
   * Follow the browser's `online` / `offline` events and `navigator.connection` changes
   * (NET-1..3). Default: true. `setNetwork` works either way.
   */
  readonly watchNetwork?: boolean;
}

/** What `setNetwork` accepts (NET-1..3). */
export type NetworkState = "online" | "offline" | "changed";

/** Options of one publish. */
export interface PublishOptions {
  /** The application's own idempotency key (OUTBOX-1); generated when absent. */
  readonly key?: string;
}

/** A publish that is durable in the store (OUTBOX-2) and waits for its ack. */
export interface Queued {
  /** The idempotency key. */
  readonly id: string;
  /** Resolves on the server's ack; rejects with a `PublishDroppedError`. */
  readonly acked: Promise<Ack>;
}
