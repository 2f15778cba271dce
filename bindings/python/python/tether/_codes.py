"""The stable error codes of SPEC ERR-1 as a string enum.

Every ``TetherError.code``, ``Event.ERROR.code``, ``State.FAILED.reason`` and
``State.DEGRADED.reason`` is one of them; members compare equal to their strings
(``err.code == ErrorCode.OUTBOX_FULL``).
"""

from __future__ import annotations

import enum
from typing import Optional


class ErrorCode(str, enum.Enum):
    """The ERR-1 codes, in SPEC order (the engine's list is ``tether.error_codes()``)."""

    FRAME_MALFORMED = "frame_malformed"
    """Bad JSON or fields, or a bad cursor: the frame is skipped."""
    FRAME_TOO_LARGE = "frame_too_large"
    """An inbound frame or body over the limit: reconnect."""
    SSE_LINE_TOO_LONG = "sse_line_too_long"
    """An SSE line over the limit: reconnect."""
    SSE_EVENT_TOO_LARGE = "sse_event_too_large"
    """An SSE event's data over the limit: reconnect."""
    INVALID_UTF8 = "invalid_utf8"
    """A transport delivered non-UTF-8 text: skipped, or the WebSocket failed with 1007."""
    POLICY_CLAMPED = "policy_clamped"
    """A server policy value was replaced by its bound (BACKOFF-8): a warning."""
    MESSAGE_TOO_LARGE = "message_too_large"
    """A publish over ``max_frame_bytes``: refused."""
    INVALID_CHANNEL = "invalid_channel"
    """A channel name that fails WIRE-8: refused."""
    OUTBOX_FULL = "outbox_full"
    """The outbox is full under ``REJECT_NEW`` (or a publish was dropped from it): refused."""
    STORE_FAILED = "store_failed"
    """The outbox store failed (OUTBOX-8): refused."""
    CLOSED = "closed"
    """A call on a closed client: refused."""
    AUTH_EXPIRED = "auth_expired"
    """The server says the token expired: fetched again with ``forced`` (AUTH-2)."""
    AUTH_FAILED = "auth_failed"
    """The token provider failed fatally: ``FAILED``."""
    FORBIDDEN = "forbidden"
    """The server refuses this client: ``FAILED``."""
    NOT_FOUND = "not_found"
    """The endpoint is unknown to the server: ``FAILED``."""
    PROTOCOL_VERSION = "protocol_version"
    """The server does not speak protocol v1: ``FAILED``."""
    BAD_REQUEST = "bad_request"
    """The server says the client is broken (or a setting is invalid): ``FAILED``."""
    ATTEMPTS_EXHAUSTED = "attempts_exhausted"
    """``max_attempts`` or ``max_elapsed_ms`` reached (BACKOFF-6): ``FAILED``."""
    HEARTBEAT_TIMEOUT = "heartbeat_timeout"
    """No frame within heartbeat plus grace (HEARTBEAT-2): reconnect."""
    SEND_TIMEOUT = "send_timeout"
    """A ``POST /send`` got no answer within its deadline (OUTBOX-9): reconnect and resend."""
    TRANSPORT_BLOCKED = "transport_blocked"
    """This transport is blocked here (FALLBACK-2): the next rung."""
    TRANSPORT_ERROR = "transport_error"
    """I/O, refused, DNS, TLS or a gateway's 5xx (FALLBACK-2): reconnect."""
    SERVER_ERROR = "server_error"
    """An ``error`` frame that is not terminal: reported."""

    def __str__(self) -> str:
        return self.value

    @classmethod
    def of(cls, code: str) -> Optional["ErrorCode"]:
        """The member for a stable string, or None when it is not an ERR-1 code."""
        try:
            return cls(code)
        except ValueError:
            return None
