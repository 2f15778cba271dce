// The DOM events a TetherClient dispatches, one class per engine event (SPEC names).

import type {
  Cause,
  Clamp,
  DropReason,
  ErrorCode,
  FallbackReason,
  Json,
  ResetReason,
  State,
  Transport,
} from "./types.js";

/** `statechange`: every transition, with `from`, `to` and `cause` (STATE-2). */
export class StateChangeEvent extends Event {
  readonly from: State;
  readonly to: State;
  readonly cause: Cause;
  constructor(from: State, to: State, cause: Cause) {
    super("statechange");
    this.from = from;
    this.to = to;
    this.cause = cause;
  }
}

/** `message`: a message, exactly once and in order per channel (ORDER-1). */
export class TetherMessageEvent extends Event {
  readonly channel: string;
  readonly seq: number;
  readonly data: Json;
  constructor(channel: string, seq: number, data: Json) {
    super("message");
    this.channel = channel;
    this.seq = seq;
    this.data = data;
  }
}

/** `reset`: the app must resynchronise `channel` from its source of truth (RESUME-5, ORDER-4). */
export class ResetEvent extends Event {
  readonly channel: string;
  readonly reason: ResetReason;
  constructor(channel: string, reason: ResetReason) {
    super("reset");
    this.channel = channel;
    this.reason = reason;
  }
}

/** `ack`: the server acknowledged the publish `id`. */
export class AckEvent extends Event {
  readonly id: string;
  readonly seq: number | null;
  constructor(id: string, seq: number | null) {
    super("ack");
    this.id = id;
    this.seq = seq;
  }
}

/** `drop`: the outbox dropped the publish `id` (OUTBOX-6, OUTBOX-7). */
export class DropEvent extends Event {
  readonly id: string;
  readonly reason: DropReason;
  /** The server's code, for `rejected`. */
  readonly code: string | undefined;
  constructor(id: string, reason: DropReason, code: string | undefined) {
    super("drop");
    this.id = id;
    this.reason = reason;
    this.code = code;
  }
}

/** `fallback`: the ladder moved (FALLBACK-3, FALLBACK-6). */
export class FallbackEvent extends Event {
  readonly from: Transport;
  readonly to: Transport;
  readonly reason: FallbackReason;
  constructor(from: Transport, to: Transport, reason: FallbackReason) {
    super("fallback");
    this.from = from;
    this.to = to;
    this.reason = reason;
  }
}

/** `reconnectscheduled`: attempt `attempt` starts in `delayMs` (the exact delay drawn). */
export class ReconnectScheduledEvent extends Event {
  readonly attempt: number;
  readonly delayMs: number;
  readonly cause: Cause;
  constructor(attempt: number, delayMs: number, cause: Cause) {
    super("reconnectscheduled");
    this.attempt = attempt;
    this.delayMs = delayMs;
    this.cause = cause;
  }
}

/** `transport`: an attempt picked a rung. */
export class TransportSelectedEvent extends Event {
  readonly transport: Transport;
  constructor(transport: Transport) {
    super("transport");
    this.transport = transport;
  }
}

/** `policy`: a server policy was applied; `clamped` lists values replaced by bounds (BACKOFF-8). */
export class PolicyEvent extends Event {
  readonly clamped: readonly Clamp[];
  constructor(clamped: readonly Clamp[]) {
    super("policy");
    this.clamped = clamped;
  }
}

/** `error`: a problem that is not a failure (ERR-2): a skipped frame, a clamp, a transport error. */
export class TetherErrorEvent extends Event {
  readonly code: ErrorCode;
  readonly detail: string;
  constructor(code: ErrorCode, detail: string) {
    super("error");
    this.code = code;
    this.detail = detail;
  }
}

/** Every event of a TetherClient, by type. */
export interface TetherEventMap {
  statechange: StateChangeEvent;
  message: TetherMessageEvent;
  reset: ResetEvent;
  ack: AckEvent;
  drop: DropEvent;
  fallback: FallbackEvent;
  reconnectscheduled: ReconnectScheduledEvent;
  transport: TransportSelectedEvent;
  policy: PolicyEvent;
  error: TetherErrorEvent;
}

/** The raw objects the wasm module hands over (internal). */
export type RawEvent =
  | { type: "statechange"; from: State; to: State; cause: Cause }
  | { type: "message"; channel: string; seq: number; data: Json }
  | { type: "reset"; channel: string; reason: ResetReason }
  | { type: "ack"; id: string; seq: number | null }
  | { type: "drop"; id: string; reason: DropReason; code?: string }
  | { type: "fallback"; from: Transport; to: Transport; reason: FallbackReason }
  | { type: "reconnectscheduled"; attempt: number; delayMs: number; cause: Cause }
  | { type: "transport"; transport: Transport }
  | { type: "policy"; clamped: Clamp[] }
  | { type: "error"; code: ErrorCode; detail: string };

/** The DOM event for a raw event; `undefined` for a type this version does not know. */
export function toEvent(raw: RawEvent): TetherEventMap[keyof TetherEventMap] | undefined {
  switch (raw.type) {
    case "statechange":
      return new StateChangeEvent(raw.from, raw.to, raw.cause);
    case "message":
      return new TetherMessageEvent(raw.channel, raw.seq, raw.data);
    case "reset":
      return new ResetEvent(raw.channel, raw.reason);
    case "ack":
      return new AckEvent(raw.id, raw.seq);
    case "drop":
      return new DropEvent(raw.id, raw.reason, raw.code);
    case "fallback":
      return new FallbackEvent(raw.from, raw.to, raw.reason);
    case "reconnectscheduled":
      return new ReconnectScheduledEvent(raw.attempt, raw.delayMs, raw.cause);
    case "transport":
      return new TransportSelectedEvent(raw.transport);
    case "policy":
      return new PolicyEvent(raw.clamped);
    case "error":
      return new TetherErrorEvent(raw.code, raw.detail);
    default:
      return undefined;
  }
}
