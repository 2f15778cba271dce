// The idiomatic Kotlin layer over the generated UniFFI bindings, which share its package
// (dev.tether: State, Event, Cause, PolicyOverrides, StoreConfig, TetherException, ... and
// the low-level Client/ClientBuilder): suspend functions, Flow<ClientEvent> for events and
// StateFlow<State> for the state. It adapts names and types only; every decision is the
// Rust engine's (SPEC.md).
package dev.tether

import java.util.concurrent.atomic.AtomicBoolean
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.flow.flow
import kotlinx.coroutines.launch

/** The SPEC ERR-1 code every [TetherException] carries (`invalid_channel`, `closed`, ...). */
val TetherException.code: String
    get() = when (this) {
        is TetherException.Refused -> code
        is TetherException.Invalid -> code
        is TetherException.Closed -> code
        is TetherException.Store -> code
        is TetherException.Transport -> code
        is TetherException.Dropped -> code
    }

/**
 * The stable error codes of SPEC ERR-1, in SPEC order: every [TetherException.code],
 * `Event.Error.code`, `State.Failed.reason` and `State.Degraded.reason` is one of them.
 * `when (e.errorCode) { ErrorCode.OUTBOX_FULL -> ...; else -> ... }`.
 */
enum class ErrorCode(val code: String) {
    /** Bad JSON or fields, or a bad cursor: the frame is skipped. */
    FRAME_MALFORMED("frame_malformed"),
    /** An inbound frame or body over the limit: reconnect. */
    FRAME_TOO_LARGE("frame_too_large"),
    /** An SSE line over the limit: reconnect. */
    SSE_LINE_TOO_LONG("sse_line_too_long"),
    /** An SSE event's data over the limit: reconnect. */
    SSE_EVENT_TOO_LARGE("sse_event_too_large"),
    /** A transport delivered non-UTF-8 text: skipped, or the WebSocket failed with 1007. */
    INVALID_UTF8("invalid_utf8"),
    /** A server policy value was replaced by its bound (BACKOFF-8): a warning. */
    POLICY_CLAMPED("policy_clamped"),
    /** A publish over `maxFrameBytes`: refused. */
    MESSAGE_TOO_LARGE("message_too_large"),
    /** A channel name that fails WIRE-8: refused. */
    INVALID_CHANNEL("invalid_channel"),
    /** The outbox is full under `RejectNew` (or a publish was dropped from it): refused. */
    OUTBOX_FULL("outbox_full"),
    /** The outbox store failed (OUTBOX-8): refused. */
    STORE_FAILED("store_failed"),
    /** A call on a closed client: refused. */
    CLOSED("closed"),
    /** The server says the token expired: fetched again with `forced` (AUTH-2). */
    AUTH_EXPIRED("auth_expired"),
    /** The token provider failed fatally: `Failed`. */
    AUTH_FAILED("auth_failed"),
    /** The server refuses this client: `Failed`. */
    FORBIDDEN("forbidden"),
    /** The endpoint is unknown to the server: `Failed`. */
    NOT_FOUND("not_found"),
    /** The server does not speak protocol v1: `Failed`. */
    PROTOCOL_VERSION("protocol_version"),
    /** The server says the client is broken (or a setting is invalid): `Failed`. */
    BAD_REQUEST("bad_request"),
    /** `maxAttempts` or `maxElapsedMs` reached (BACKOFF-6): `Failed`. */
    ATTEMPTS_EXHAUSTED("attempts_exhausted"),
    /** No frame within heartbeat plus grace (HEARTBEAT-2): reconnect. */
    HEARTBEAT_TIMEOUT("heartbeat_timeout"),
    /** A `POST /send` got no answer within its deadline (OUTBOX-9): reconnect and resend. */
    SEND_TIMEOUT("send_timeout"),
    /** This transport is blocked here (FALLBACK-2): the next rung. */
    TRANSPORT_BLOCKED("transport_blocked"),
    /** I/O, refused, DNS, TLS or a gateway's 5xx (FALLBACK-2): reconnect. */
    TRANSPORT_ERROR("transport_error"),
    /** An `error` frame that is not terminal: reported. */
    SERVER_ERROR("server_error");

    override fun toString(): String = code

    companion object {
        private val byCode = entries.associateBy { it.code }

        /** The code for a stable string, or null when it is not an ERR-1 code. */
        fun of(code: String): ErrorCode? = byCode[code]
    }
}

/** [TetherException.code] as an [ErrorCode] (null only for a code newer than this layer). */
val TetherException.errorCode: ErrorCode? get() = ErrorCode.of(code)

/** A token provider failure: `fatal = true` ends the client in `Failed(auth_failed)` (AUTH-1). */
fun tokenFailure(detail: String, fatal: Boolean = false): TokenException =
    TokenException.Failed(detail, fatal)

/**
 * A Tether client. Build it with [TetherClient.build]:
 *
 * ```
 * val client = TetherClient.build("https://rt.example.com/tether") {
 *     store = StoreConfig.File(context.filesDir.resolve("tether").path)
 *     tokenProvider { forced -> auth.token(refresh = forced) }
 * }
 * val events = client.events()          // subscribe before connecting: nothing is missed
 * scope.launch { events.collect { println(it.event) } }
 * client.subscribe("lobby")
 * client.connect()
 * val ack = client.publish("lobby", """{"text":"hi"}""")
 * ```
 *
 * Payloads are JSON text. [state] is a [StateFlow] of the current state (conflated); for
 * every transition in order, collect [events] and read `Event.StateChanged`.
 */
class TetherClient private constructor(
    private val ffi: Client,
    private val scope: CoroutineScope,
) {
    private val _state = MutableStateFlow(ffi.state())
    private val released = AtomicBoolean(false)

    /** The current state (STATE-1), updated as the client's state changes. */
    val state: StateFlow<State> = _state.asStateFlow()

    private val stateJob = ffi.stateWatcher().let { watcher ->
        scope.launch {
            watcher.use { w ->
                _state.value = w.current()
                while (true) {
                    _state.value = w.changed() ?: break
                }
            }
        }
    }

    /** Start connecting (CONN-1). */
    suspend fun connect() = ffi.connect()

    /** Close for good (CONN-3): the state ends in `Closed`; queued publishes stay in the store. */
    suspend fun close() = ffi.closeClient()

    /** Subscribe to [channel] (WIRE-8 names); throws [TetherException.Refused] `invalid_channel`. */
    suspend fun subscribe(channel: String) = ffi.subscribe(channel)

    /** Stop receiving [channel]. */
    suspend fun unsubscribe(channel: String) = ffi.unsubscribe(channel)

    /** Publish [json] on [channel] and wait for the ack; throws [TetherException.Dropped]. */
    suspend fun publish(channel: String, json: String): Ack = ffi.publish(channel, json)

    /**
     * Queue a publish; returns as soon as it is in the store (OUTBOX-2). [id] is the app's own
     * idempotency key (OUTBOX-1). `pending.id()` is the key, `pending.ack()` the outcome.
     */
    suspend fun enqueue(channel: String, json: String, id: String? = null): PendingPublish =
        ffi.enqueue(channel, json, id)

    /** Tell the client about connectivity (NET-1..3), e.g. from `ConnectivityManager`. */
    fun setNetwork(network: Network) = ffi.setNetwork(network)

    /** The state right now, read from the client (not through [state]). */
    val currentState: State get() = ffi.state()

    /**
     * The client's events from this call on, as a cold [Flow] that can be collected once
     * (call [events] again for another, independent stream). Cancelling the collector stops
     * the subscription; the flow completes when the client is released.
     */
    fun events(): Flow<ClientEvent> {
        val sub = ffi.events()
        val taken = AtomicBoolean(false)
        return flow {
            check(taken.compareAndSet(false, true)) {
                "this events() flow was collected already; call events() again"
            }
            sub.use { s ->
                try {
                    while (true) emit(s.next() ?: break)
                } finally {
                    s.cancel()
                }
            }
        }
    }

    /**
     * The low-level subscription behind [events]: `next()`, `ready()` + `tryNext()`, `cancel()`.
     * One consumer at a time; close it with `cancel()` then `close()`.
     */
    fun subscription(): EventSubscription = ffi.events()

    /**
     * Release the native client: its driver ends (closing the connection with 1000, like a
     * process exit) and [state] stops updating. Call [close] first for a clean close.
     */
    fun release() {
        if (released.compareAndSet(false, true)) {
            stateJob.cancel()
            ffi.destroy()
        }
    }

    /** Settings of [TetherClient.build]; unset values keep the client's defaults. */
    class Builder internal constructor(private val endpoint: String) {
        /** The allowed transports (ladder order is kept). Default: all three. */
        var transports: List<TransportKind>? = null
        /** The app's policy overrides (BACKOFF-9), e.g. `PolicyOverrides(baseMs = 500.0)`. */
        var policy: PolicyOverrides = PolicyOverrides()
        /** Where the outbox lives: [StoreConfig.Memory] (default) or `StoreConfig.File(path)`. */
        var store: StoreConfig = StoreConfig.Memory
        /** Seed of the engine's random generator (BACKOFF-7). */
        var seed: ULong? = null
        /** What a full outbox does (OUTBOX-6). */
        var dropPolicy: DropPolicy? = null
        /** Largest frame accepted or sent (LIMIT-1), at least 1024. */
        var maxFrameBytes: UInt? = null
        /** The scope [state] is updated in (one coroutine, cancelled by [release]). Default: its own. */
        var scope: CoroutineScope? = null
        private var tokens: TokenProvider? = null

        /** Ask [provider] for a token before every attempt; throw [tokenFailure] to fail. */
        fun tokenProvider(provider: suspend (forced: Boolean) -> String) {
            tokens = object : TokenProvider {
                override suspend fun token(forced: Boolean): String = provider(forced)
            }
        }

        internal fun build(): TetherClient {
            var b = ClientBuilder(endpoint).policy(policy).store(store)
            transports?.let { b = b.transports(it) }
            tokens?.let { b = b.tokenProvider(it) }
            seed?.let { b = b.seed(it) }
            dropPolicy?.let { b = b.dropPolicy(it) }
            maxFrameBytes?.let { b = b.maxFrameBytes(it) }
            val client = b.build()
            return TetherClient(client, scope ?: CoroutineScope(SupervisorJob() + Dispatchers.Default))
        }
    }

    companion object {
        /** Build a client for [endpoint]; it stays `Idle` until [connect]. */
        fun build(endpoint: String, configure: Builder.() -> Unit = {}): TetherClient =
            Builder(endpoint).apply(configure).build()
    }
}

/** The SPEC name of a state (`connected`, `reconnecting`, ...). */
val State.name: String get() = stableName()

/**
 * The SPEC name of a cause (`user_connect`, `transport_closed`, `ready`, `send_timeout`, ...);
 * [causeNames] lists every cause the engine reports.
 */
val Cause.name: String get() = stableName()
