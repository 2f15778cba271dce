// The Kotlin conformance adapter: speaks the adapter protocol (conformance/ADAPTERS.md) on
// stdin/stdout and drives the Kotlin binding (dev.tether.TetherClient), never the Rust API
// underneath. It only translates: every decision stays in the client.
//
// Everything runs on one thread (a single-threaded coroutine dispatcher): commands, the event
// pump and the writer. Events are taken from the binding's subscription only synchronously
// (`ready()` waits without taking, `tryNext()` takes), so a barrier flushes exactly what the
// client reported before it, in order.
package dev.tether.conformance

import dev.tether.Cause
import dev.tether.ClientEvent
import dev.tether.DropPolicy
import dev.tether.Event
import dev.tether.EventSubscription
import dev.tether.Network
import dev.tether.PolicyOverrides
import dev.tether.State
import dev.tether.StoreConfig
import dev.tether.TetherClient
import dev.tether.TetherException
import dev.tether.TransportKind
import dev.tether.code
import dev.tether.tokenFailure
import java.io.DataInputStream
import java.io.EOFException
import java.io.File
import java.nio.file.Files
import java.util.concurrent.Executors
import kotlin.system.exitProcess
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Job
import kotlinx.coroutines.asCoroutineDispatcher
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withContext
import kotlinx.coroutines.withTimeoutOrNull

private val CAPABILITIES = listOf(
    "websocket", "sse", "long_poll", "outbox", "auth", "network", "drain",
    "ready_probe", "persistence", "retry_after", "seed",
)

private val START = System.nanoTime()
private fun nowMs(): Double = (System.nanoTime() - START) / 1e6

/**
 * Event stamps: the client's own clock (build time + `atMs`) for its events, the adapter's for
 * `token_requested`. The two differ by the moment between the stamp taken before
 * `build()` and the client's clock origin inside it, so written stamps are kept monotonic.
 * Only touched on the adapter thread.
 */
private var lastStamp = 0.0
private fun stamp(t: Double): Double {
    if (t > lastStamp) lastStamp = t
    return lastStamp
}

/** A protocol-level failure of one command: the reply's code and message. */
private class Refusal(val code: String, message: String) : Exception(message)

/** What `configure` said, kept to rebuild clients on `restart`. */
private class Setup(
    val endpoint: String,
    val transports: List<TransportKind>,
    val policy: PolicyOverrides,
    val seed: ULong?,
    val tokens: List<Any?>?,
    val dropPolicy: DropPolicy,
    val maxFrameBytes: UInt?,
)

/** The live client, its event subscription and its pump. */
private class Session(
    val setup: Setup,
    val storeDir: File,
    val client: TetherClient,
    val sub: EventSubscription,
    val builtMs: Double,
) {
    var pump: Job? = null
}

private object Out {
    private val stdout = System.out

    fun write(frame: Map<String, Any?>) {
        val body = toJson(frame).toByteArray(Charsets.UTF_8)
        val buf = ByteArray(4 + body.size)
        buf[0] = (body.size ushr 24).toByte()
        buf[1] = (body.size ushr 16).toByte()
        buf[2] = (body.size ushr 8).toByte()
        buf[3] = body.size.toByte()
        System.arraycopy(body, 0, buf, 4, body.size)
        synchronized(this) {
            stdout.write(buf)
            stdout.flush()
        }
    }
}

private class Adapter(private val scope: CoroutineScope) {
    private var session: Session? = null
    private val tmpRoot: File = Files.createTempDirectory("tether-kotlin-adapter-").toFile()

    // ---- events ------------------------------------------------------------------------

    /** Write every event the session's subscription holds now (never suspends). */
    fun drain(s: Session? = session) {
        if (s == null) return
        while (true) {
            val e = s.sub.tryNext() ?: break
            Out.write(eventJson(stamp(s.builtMs + e.atMs), e))
        }
    }

    private fun startPump(s: Session) {
        s.pump = scope.launch {
            while (s.sub.ready()) drain(s)
        }
    }

    // ---- commands ----------------------------------------------------------------------

    suspend fun handle(cmd: Map<String, Any?>): Boolean {
        val id = (cmd["id"] as? Number)?.toLong() ?: 0L
        val type = cmd["type"] as? String
        val reply: Map<String, Any?> = try {
            val result = execute(type, cmd)
            drain()
            linkedMapOf<String, Any?>("type" to "ok", "id" to id).apply { putAll(result) }
        } catch (e: TetherException) {
            drain()
            mapOf("type" to "error", "id" to id, "code" to e.code, "message" to (e.message ?: ""))
        } catch (e: Refusal) {
            mapOf("type" to "error", "id" to id, "code" to e.code, "message" to (e.message ?: ""))
        } catch (e: Exception) {
            mapOf("type" to "error", "id" to id, "code" to "bad_command", "message" to e.toString())
        }
        Out.write(reply)
        return type != "shutdown"
    }

    private fun client(): TetherClient =
        session?.client ?: throw Refusal("closed", "send `configure` first")

    private fun str(cmd: Map<String, Any?>, key: String): String =
        cmd[key] as? String ?: throw Refusal("bad_command", "`$key` must be a string")

    private suspend fun execute(type: String?, cmd: Map<String, Any?>): Map<String, Any?> {
        when (type) {
            "configure" -> {
                teardown(close = true)
                val setup = parseSetup(cmd)
                val dir = Files.createTempDirectory(tmpRoot.toPath(), "store-").toFile()
                session = build(setup, dir)
            }
            "connect" -> client().connect()
            "subscribe" -> client().subscribe(str(cmd, "channel"))
            "unsubscribe" -> client().unsubscribe(str(cmd, "channel"))
            "publish" -> {
                val data = if (cmd.containsKey("data")) toJson(cmd["data"]) else "null"
                val pending = client().enqueue(str(cmd, "channel"), data, cmd["key"] as? String)
                return mapOf("key" to pending.id())
            }
            "set_network" -> client().setNetwork(
                when (val n = cmd["state"]) {
                    "online" -> Network.ONLINE
                    "offline" -> Network.OFFLINE
                    "changed" -> Network.CHANGED
                    else -> throw Refusal("bad_request", "network $n")
                },
            )
            "close" -> client().close()
            "barrier" -> drain()
            "state" -> {
                val st = client().currentState
                drain()
                return mapOf("state" to stateJson(st))
            }
            "restart" -> {
                val old = session ?: throw Refusal("closed", "not configured")
                session = null
                // A crash, not a close: release the client and let its driver end on its own;
                // its last events are still forwarded. Then a new client on the same store.
                old.client.release()
                withTimeoutOrNull(3000) { old.pump?.join() }
                drain(old)
                old.sub.cancel()
                session = build(old.setup, old.storeDir)
            }
            "shutdown" -> {
                teardown(close = true)
                tmpRoot.deleteRecursively()
            }
            else -> throw Refusal("bad_command", "unknown command $type")
        }
        return emptyMap()
    }

    suspend fun teardown(close: Boolean) {
        val s = session ?: return
        session = null
        if (close) {
            try {
                withTimeoutOrNull(2000) { s.client.close() }
            } catch (_: TetherException) {
            }
        }
        // Release the client and let its driver end (its last events are still forwarded)
        // before its store directory goes.
        s.client.release()
        withTimeoutOrNull(3000) { s.pump?.join() }
        drain(s)
        s.pump?.cancel()
        s.sub.cancel()
        s.storeDir.deleteRecursively()
    }

    private fun parseSetup(cmd: Map<String, Any?>): Setup {
        val transports = (cmd["transports"] as? List<*> ?: throw Refusal("bad_request", "transports"))
            .map {
                when (it) {
                    "websocket" -> TransportKind.WEB_SOCKET
                    "sse" -> TransportKind.SSE
                    "long_poll" -> TransportKind.LONG_POLL
                    else -> throw Refusal("bad_request", "unknown transport $it")
                }
            }
        val p = cmd["policy"] as? Map<*, *> ?: emptyMap<String, Any?>()
        fun f(k: String): Double? = (p[k] as? Number)?.toDouble()
        val policy = PolicyOverrides(
            floorMs = f("floor_ms"), baseMs = f("base_ms"), capMs = f("cap_ms"),
            multiplier = f("multiplier"), maxAttempts = f("max_attempts"),
            maxElapsedMs = f("max_elapsed_ms"), heartbeatMs = f("heartbeat_ms"),
            heartbeatGraceMs = f("heartbeat_grace_ms"), openTimeoutMs = f("open_timeout_ms"),
            pollHoldMs = f("poll_hold_ms"), probeIntervalMs = f("probe_interval_ms"),
            upgradeAfterMs = f("upgrade_after_ms"), outboxMaxCount = f("outbox_max_count"),
            outboxMaxBytes = f("outbox_max_bytes"), outboxMaxAgeMs = f("outbox_max_age_ms"),
        )
        val drop = when (val d = cmd["drop_policy"]) {
            null, "drop_oldest" -> DropPolicy.DROP_OLDEST
            "reject_new" -> DropPolicy.REJECT_NEW
            else -> throw Refusal("bad_request", "drop_policy $d")
        }
        val tokens = ((cmd["auth"] as? Map<*, *>)?.get("tokens") as? List<*>)?.toList()
        return Setup(
            endpoint = str(cmd, "endpoint"),
            transports = transports,
            policy = policy,
            seed = (cmd["seed"] as? Number)?.toLong()?.toULong(),
            tokens = tokens,
            dropPolicy = drop,
            maxFrameBytes = (cmd["max_frame_bytes"] as? Number)?.toLong()?.toUInt(),
        )
    }

    private fun build(setup: Setup, dir: File): Session {
        // The client's clock starts inside build(): stamp before it, so t_ms never runs ahead
        // of real time and stays monotonic across restarts.
        val builtMs = nowMs()
        val client = TetherClient.build(setup.endpoint) {
            transports = setup.transports
            policy = setup.policy
            store = StoreConfig.File(dir.path)
            seed = setup.seed
            dropPolicy = setup.dropPolicy
            maxFrameBytes = setup.maxFrameBytes
            setup.tokens?.let { script ->
                var calls = 0
                tokenProvider { forced ->
                    // Runs on a binding thread: hop to the adapter's thread to count and report.
                    val step = withContext(dispatcher) {
                        Out.write(mapOf("type" to "token_requested", "t_ms" to stamp(nowMs()), "forced" to forced))
                        script.getOrElse(calls++) { script.lastOrNull() }
                    }
                    when (step) {
                        is String -> step
                        is Map<*, *> -> throw tokenFailure(
                            step["error"]?.toString() ?: "token error",
                            step["fatal"] == true,
                        )
                        else -> throw tokenFailure("empty token script", true)
                    }
                }
            }
        }
        val sub = client.subscription()
        val s = Session(setup, dir, client, sub, builtMs)
        startPump(s)
        return s
    }
}

// ---- protocol JSON ----------------------------------------------------------------------

private fun stateJson(s: State): Map<String, Any?> {
    val m = linkedMapOf<String, Any?>("name" to s.stableName())
    when (s) {
        is State.Connecting -> {
            m["attempt"] = s.attempt
            m["transport"] = s.transport.stableName()
        }
        is State.Connected -> m["transport"] = s.transport.stableName()
        is State.Degraded -> {
            m["transport"] = s.transport.stableName()
            m["reason"] = s.reason
        }
        is State.Reconnecting -> {
            m["attempt"] = s.attempt
            m["delay_ms"] = s.delayMs
            m["cause"] = s.cause.stableName()
        }
        is State.Failed -> m["reason"] = s.reason
        else -> {}
    }
    return m
}

private fun causeCode(c: Cause): Pair<Boolean, Any?> = when (c) {
    is Cause.TransportClosed -> true to c.code?.toInt()
    is Cause.Terminal -> true to c.code
    else -> false to null
}

private fun eventJson(tMs: Double, ce: ClientEvent): Map<String, Any?> {
    val m = linkedMapOf<String, Any?>()
    when (val e = ce.event) {
        is Event.StateChanged -> {
            m["type"] = "state"
            m["from"] = e.from.stableName()
            m["to"] = e.to.stableName()
            m["cause"] = e.cause.stableName()
            val (has, code) = causeCode(e.cause)
            if (has) m["cause_code"] = code
            for ((k, v) in stateJson(e.to)) if (k != "name" && k != "cause") m[k] = v
        }
        is Event.ReconnectScheduled -> {
            m["type"] = "reconnect_scheduled"
            m["attempt"] = e.attempt
            m["delay_ms"] = e.delayMs
            m["cause"] = e.cause.stableName()
        }
        is Event.TransportSelected -> {
            m["type"] = "transport_selected"
            m["transport"] = e.transport.stableName()
        }
        is Event.Message -> {
            m["type"] = "message"
            m["channel"] = e.channel
            m["seq"] = e.seq
            m["data"] = RawJson(e.data)
        }
        is Event.Reset -> {
            m["type"] = "reset"
            m["channel"] = e.channel
            m["reason"] = e.reason.stableName()
        }
        is Event.Acked -> {
            m["type"] = "acked"
            m["id"] = e.id
            m["seq"] = e.seq
        }
        is Event.Dropped -> {
            m["type"] = "dropped"
            m["id"] = e.id
            m["reason"] = e.reason.stableName()
            (e.reason as? dev.tether.DropReason.Rejected)?.let { m["code"] = it.code }
        }
        is Event.Fallback -> {
            m["type"] = "fallback"
            m["from"] = e.from.stableName()
            m["to"] = e.to.stableName()
            m["reason"] = e.reason.stableName()
        }
        is Event.PolicyApplied -> {
            m["type"] = "policy_applied"
            m["clamped"] = e.clamped.map {
                mapOf("field" to it.field, "requested" to it.requested, "applied" to it.applied)
            }
        }
        is Event.Error -> {
            m["type"] = "error"
            m["code"] = e.code
            m["detail"] = e.detail
        }
        is Event.Other -> {
            m["type"] = "x_kotlin_unknown_event"
            m["name"] = e.name
        }
    }
    m["t_ms"] = tMs
    return m
}

// ---- main -------------------------------------------------------------------------------

private val executor = Executors.newSingleThreadExecutor { r -> Thread(r, "adapter").apply { isDaemon = true } }
private val dispatcher = executor.asCoroutineDispatcher()

fun main() {
    Out.write(
        mapOf(
            "type" to "hello", "adapter" to "tether-kotlin", "version" to dev.tether.version(),
            "protocol" to 1, "capabilities" to CAPABILITIES,
        ),
    )
    val commands = Channel<Any>(Channel.UNLIMITED)
    // stdin is read on a thread of its own (blocking reads), one frame at a time.
    Thread({
        val input = DataInputStream(System.`in`.buffered())
        try {
            while (true) {
                val len = input.readInt()
                if (len < 0 || len > 16 * 1024 * 1024) break
                val body = ByteArray(len)
                input.readFully(body)
                commands.trySend(
                    try {
                        parseJson(String(body, Charsets.UTF_8)) ?: emptyMap<String, Any?>()
                    } catch (e: JsonError) {
                        e
                    },
                )
            }
        } catch (_: EOFException) {
        } catch (e: Exception) {
            System.err.println("tether-kotlin adapter: stdin: $e")
        }
        commands.close()
    }, "stdin").apply { isDaemon = true }.start()

    runBlocking(dispatcher) {
        val adapter = Adapter(this)
        for (c in commands) {
            if (c is JsonError) {
                Out.write(mapOf("type" to "error", "id" to 0, "code" to "bad_command", "message" to c.toString()))
                continue
            }
            @Suppress("UNCHECKED_CAST")
            if (!adapter.handle(c as Map<String, Any?>)) break
        }
        adapter.teardown(close = true)
        System.out.flush()
        exitProcess(0)
    }
}
