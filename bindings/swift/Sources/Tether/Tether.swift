// The Swift layer over the generated UniFFI bindings (module TetherFFI): `async` calls, an
// `AsyncStream` of events and of states. It adapts names and types only; every decision is
// the Rust engine's (SPEC.md). Payloads are JSON text.

import Foundation
@_exported import TetherFFI

/// A Tether client.
///
/// ```swift
/// let client = try TetherClient(endpoint: "https://rt.example.com/tether",
///                               store: .file(path: storeURL.path))
/// let events = client.events()          // subscribe first: nothing is missed
/// try await client.subscribe("lobby")
/// try await client.connect()
/// let ack = try await client.publish("lobby", json: #"{"text":"hi"}"#)
/// for await event in events { print(event.event) }
/// ```
public final class TetherClient: @unchecked Sendable {
    /// The generated client, for anything this layer does not wrap.
    public let ffi: Client

    /// Build a client; it stays `.idle` until `connect()`. Throws `TetherError.Invalid`
    /// (`bad_request`) or `TetherError.Store` (`store_failed`).
    public init(
        endpoint: String,
        transports: [TransportKind]? = nil,
        policy: PolicyOverrides = PolicyOverrides(),
        store: StoreConfig = .memory,
        seed: UInt64? = nil,
        dropPolicy: DropPolicy? = nil,
        maxFrameBytes: UInt32? = nil,
        tokenProvider: (@Sendable (_ forced: Bool) async throws -> String)? = nil
    ) throws {
        var builder = ClientBuilder(endpoint: endpoint)
            .policy(policy: policy)
            .store(store: store)
        if let transports { builder = builder.transports(transports: transports) }
        if let tokenProvider { builder = builder.tokenProvider(provider: ClosureTokenProvider(tokenProvider)) }
        if let seed { builder = builder.seed(seed: seed) }
        if let dropPolicy { builder = builder.dropPolicy(policy: dropPolicy) }
        if let maxFrameBytes { builder = builder.maxFrameBytes(bytes: maxFrameBytes) }
        ffi = try builder.build()
    }

    /// Start connecting (CONN-1).
    public func connect() async throws { try await ffi.connect() }

    /// Close for good (CONN-3); queued publishes stay in the store.
    public func close() async throws { try await ffi.close() }

    /// Subscribe to `channel` (WIRE-8 names).
    public func subscribe(_ channel: String) async throws { try await ffi.subscribe(channel: channel) }

    /// Stop receiving `channel`.
    public func unsubscribe(_ channel: String) async throws { try await ffi.unsubscribe(channel: channel) }

    /// Publish and wait for the ack; throws `TetherError.Dropped` when the outbox drops it.
    @discardableResult
    public func publish(_ channel: String, json: String) async throws -> Ack {
        try await ffi.publish(channel: channel, data: json)
    }

    /// Queue a publish; returns once it is in the store (OUTBOX-2). `id` is the app's own
    /// idempotency key (OUTBOX-1); `try await pending.ack()` is the outcome.
    public func enqueue(_ channel: String, json: String, id: String? = nil) async throws -> PendingPublish {
        try await ffi.enqueue(channel: channel, data: json, id: id)
    }

    /// Tell the client about connectivity (NET-1..3), e.g. from `NWPathMonitor`.
    public func setNetwork(_ network: Network) throws { try ffi.setNetwork(network: network) }

    /// The current state (STATE-1).
    public var state: State { ffi.state() }

    /// The events from this call on, in order. Cancelling the iterating task (or dropping
    /// the stream) closes the subscription; the stream finishes when the client is released.
    public func events() -> AsyncStream<ClientEvent> {
        let subscription = ffi.events()
        return AsyncStream(unfolding: { await subscription.next() }, onCancel: { subscription.close() })
    }

    /// The current state, then each new one (conflated: a slow reader sees the latest).
    public func states() -> AsyncStream<State> {
        let watcher = ffi.stateWatcher()
        return AsyncStream { continuation in
            let task = Task {
                continuation.yield(watcher.current())
                while let state = await watcher.changed() {
                    continuation.yield(state)
                }
                continuation.finish()
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}

/// A closure as the generated `TokenProvider` protocol. Throw `TokenError.Failed(detail:fatal:)`.
final class ClosureTokenProvider: TokenProvider, @unchecked Sendable {
    private let fetch: @Sendable (Bool) async throws -> String

    init(_ fetch: @escaping @Sendable (Bool) async throws -> String) { self.fetch = fetch }

    func token(forced: Bool) async throws -> String { try await fetch(forced) }
}

extension TetherError {
    /// The SPEC ERR-1 code every error carries.
    public var code: String {
        switch self {
        case let .Refused(code, _), let .Invalid(code, _), let .Closed(code, _),
             let .Store(code, _), let .Transport(code, _), let .Dropped(code, _, _, _):
            return code
        }
    }

    /// `code` as an `ErrorCode` (nil only for a code newer than this layer).
    public var errorCode: ErrorCode? { ErrorCode(rawValue: code) }
}

/// The stable error codes of SPEC ERR-1, in SPEC order: every `TetherError.code`,
/// `Event.error` code, `State.failed` and `State.degraded` reason is one of them
/// (`errorCodes()` is the engine's list).
public enum ErrorCode: String, CaseIterable, Sendable {
    /// Bad JSON or fields, or a bad cursor: the frame is skipped.
    case frameMalformed = "frame_malformed"
    /// An inbound frame or body over the limit: reconnect.
    case frameTooLarge = "frame_too_large"
    /// An SSE line over the limit: reconnect.
    case sseLineTooLong = "sse_line_too_long"
    /// An SSE event's data over the limit: reconnect.
    case sseEventTooLarge = "sse_event_too_large"
    /// A transport delivered non-UTF-8 text: skipped, or the WebSocket failed with 1007.
    case invalidUtf8 = "invalid_utf8"
    /// A server policy value was replaced by its bound (BACKOFF-8): a warning.
    case policyClamped = "policy_clamped"
    /// A publish over `maxFrameBytes`: refused.
    case messageTooLarge = "message_too_large"
    /// A channel name that fails WIRE-8: refused.
    case invalidChannel = "invalid_channel"
    /// The outbox is full under `.rejectNew` (or a publish was dropped from it): refused.
    case outboxFull = "outbox_full"
    /// The outbox store failed (OUTBOX-8): refused.
    case storeFailed = "store_failed"
    /// A call on a closed client: refused.
    case closed = "closed"
    /// The server says the token expired: fetched again with `forced` (AUTH-2).
    case authExpired = "auth_expired"
    /// The token provider failed fatally: `.failed`.
    case authFailed = "auth_failed"
    /// The server refuses this client: `.failed`.
    case forbidden = "forbidden"
    /// The endpoint is unknown to the server: `.failed`.
    case notFound = "not_found"
    /// The server does not speak protocol v1: `.failed`.
    case protocolVersion = "protocol_version"
    /// The server says the client is broken (or a setting is invalid): `.failed`.
    case badRequest = "bad_request"
    /// `maxAttempts` or `maxElapsedMs` reached (BACKOFF-6): `.failed`.
    case attemptsExhausted = "attempts_exhausted"
    /// No frame within heartbeat plus grace (HEARTBEAT-2): reconnect.
    case heartbeatTimeout = "heartbeat_timeout"
    /// A `POST /send` got no answer within its deadline (OUTBOX-9): reconnect and resend.
    case sendTimeout = "send_timeout"
    /// This transport is blocked here (FALLBACK-2): the next rung.
    case transportBlocked = "transport_blocked"
    /// I/O, refused, DNS, TLS or a gateway's 5xx (FALLBACK-2): reconnect.
    case transportError = "transport_error"
    /// An `error` frame that is not terminal: reported.
    case serverError = "server_error"
}
