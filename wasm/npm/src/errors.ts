// Errors of @tether/browser: every one carries the SPEC ERR-1 code.

import type { DropReason, ErrorCode } from "./types.js";

/** A refused call or a failure, with its stable SPEC ERR-1 `code`. */
export class TetherError extends Error {
  /** The stable code (SPEC ERR-1): match on this, not on the message. */
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TetherError";
    this.code = code;
  }
}

/**
 * A publish that will not be acknowledged: dropped by the outbox (OUTBOX-6), rejected by the
 * server (OUTBOX-7), or pending when the client closed (it then stays in the store, CONN-3).
 * `code` is the nearest ERR-1 code (`outbox_full` for overflow and expiry,
 * `message_too_large`, the server's code for a rejection, `closed`); `reason` is exact.
 */
export class PublishDroppedError extends TetherError {
  /** The publish's idempotency key. */
  readonly id: string;
  /** Why it was dropped, or `closed` when the client closed before an outcome was known. */
  readonly reason: DropReason | "closed";
  /** The server's code, for a rejection. */
  readonly serverCode: string | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    id: string,
    reason: DropReason | "closed",
    serverCode?: string,
  ) {
    super(code, message);
    this.name = "PublishDroppedError";
    this.id = id;
    this.reason = reason;
    this.serverCode = serverCode;
  }
}

/** What a token provider throws; `fatal: true` ends the client in `failed` (AUTH-1). */
export class TokenProviderError extends Error {
  readonly fatal: boolean;

  constructor(message: string, options?: { readonly fatal?: boolean; readonly cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "TokenProviderError";
    this.fatal = options?.fatal ?? false;
  }
}

const CODES: ReadonlySet<string> = new Set<ErrorCode>([
  "frame_malformed",
  "frame_too_large",
  "sse_line_too_long",
  "sse_event_too_large",
  "invalid_utf8",
  "policy_clamped",
  "message_too_large",
  "invalid_channel",
  "outbox_full",
  "store_failed",
  "closed",
  "auth_expired",
  "auth_failed",
  "forbidden",
  "not_found",
  "protocol_version",
  "bad_request",
  "attempts_exhausted",
  "heartbeat_timeout",
  "send_timeout",
  "transport_blocked",
  "transport_error",
  "server_error",
]);

function isCode(c: unknown): c is ErrorCode {
  return typeof c === "string" && CODES.has(c);
}

function field(v: unknown, k: string): unknown {
  return typeof v === "object" && v !== null ? (v as Record<string, unknown>)[k] : undefined;
}

/** The `{code, message}` objects the wasm module throws, as `TetherError`s. */
export function toTetherError(e: unknown): TetherError {
  if (e instanceof TetherError) return e;
  const code = field(e, "code");
  const message = field(e, "message");
  const text = typeof message === "string" ? message : String(e);
  if (!isCode(code)) {
    // A trap means the module can no longer run; anything else is a bad argument.
    const dead = typeof WebAssembly !== "undefined" && e instanceof WebAssembly.RuntimeError;
    return new TetherError(dead ? "closed" : "bad_request", text, { cause: e });
  }
  const reason = field(e, "reason");
  const id = field(e, "id");
  if (typeof reason === "string" && typeof id === "string") {
    const server = field(e, "serverCode");
    return new PublishDroppedError(
      code,
      text,
      id,
      reason as DropReason | "closed",
      typeof server === "string" ? server : undefined,
    );
  }
  return new TetherError(code, text);
}
