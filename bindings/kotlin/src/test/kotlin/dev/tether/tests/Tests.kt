// Tests of the Kotlin binding on a real JVM against the reference server on loopback.
// `main` runs every test (or those whose name contains an argument) and exits non-zero on a
// failure; bindings/kotlin/test.sh compiles and runs it.
package dev.tether.tests

import dev.tether.Ack
import dev.tether.Cause
import dev.tether.ClientEvent
import dev.tether.DropPolicy
import dev.tether.DropReason
import dev.tether.ErrorCode
import dev.tether.Event
import dev.tether.Network
import dev.tether.PolicyOverrides
import dev.tether.State
import dev.tether.StoreConfig
import dev.tether.TetherClient
import dev.tether.TetherException
import dev.tether.TransportKind
import dev.tether.causeNames
import dev.tether.code
import dev.tether.errorCode
import dev.tether.errorCodes
import dev.tether.name
import dev.tether.tokenFailure
import java.nio.file.Files
import java.util.Collections
import kotlin.system.exitProcess
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertNotNull
import kotlin.test.assertNull
import kotlin.test.assertTrue
import kotlin.test.fail
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.flow.takeWhile
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import kotlinx.coroutines.withTimeoutOrNull

/** Fast timings (BACKOFF-9 overrides are not clamped). */
private val FAST = PolicyOverrides(floorMs = 5.0, baseMs = 50.0, capMs = 300.0, heartbeatGraceMs = 1000.0)

private fun client(endpoint: String, configure: TetherClient.Builder.() -> Unit = {}): TetherClient =
    TetherClient.build(endpoint) {
        policy = FAST
        configure()
    }

/** Collect [events] in the background; [events] waits until [pred] matched an event. */
private class Recorder(scope: CoroutineScope, flow: Flow<ClientEvent>) {
    val seen: MutableList<Event> = Collections.synchronizedList(mutableListOf())
    private val job = scope.launch(Dispatchers.Default) { flow.collect { seen.add(it.event) } }

    /** The first event at index [from] or later matching [pred]; fails after [timeoutMs]. */
    suspend fun await(what: String, timeoutMs: Long = 10_000, from: Int = 0, pred: (Event) -> Boolean): Event {
        val found = withTimeoutOrNull(timeoutMs) {
            var e: Event? = null
            while (e == null) {
                e = synchronized(seen) { seen.drop(from).firstOrNull(pred) }
                if (e == null) delay(5)
            }
            e
        }
        return found ?: fail("timed out waiting for $what; saw ${synchronized(seen) { seen.toList() }}")
    }

    fun stop() = job.cancel()
}

private suspend fun TetherClient.awaitState(timeoutMs: Long = 10_000, pred: (State) -> Boolean): State =
    withTimeout(timeoutMs) { state.first(pred) }

private fun tempDir(): String = Files.createTempDirectory("tether-kotlin-test-").toString()

/** `SendTimeout` -> `send_timeout`: a generated variant's class name as a SPEC name. */
private fun snake(name: String): String =
    name.replace(Regex("([a-z0-9])([A-Z])"), "$1_$2").lowercase()

private val TESTS: List<Pair<String, suspend CoroutineScope.() -> Unit>> = listOf(
    "err_1_the_layer_names_exactly_the_engine_error_codes" to {
        // errorCodes() comes from the engine (tether::ErrorCode::ALL) through the FFI.
        assertEquals(errorCodes(), ErrorCode.entries.map { it.code }, "ErrorCode and the engine's ERR-1 codes differ")
        assertEquals(ErrorCode.SEND_TIMEOUT, ErrorCode.of("send_timeout"))
        assertNull(ErrorCode.of("no_such_code"))
    },
    "state_2_the_generated_cause_names_exactly_the_engine_causes" to {
        // causeNames() comes from the engine (tether::Cause::KINDS) through the FFI; the
        // variants of the generated sealed class come from tether-ffi's own list.
        val kinds = Cause::class.java.declaredClasses.filter {
            Cause::class.java.isAssignableFrom(it) && it.simpleName != "Other"
        }
        assertEquals(
            causeNames().sorted(),
            kinds.map { snake(it.simpleName) }.sorted(),
            "the generated Cause and the engine's causes differ",
        )
        for (k in kinds) {
            val unit = k.fields.firstOrNull { it.name == "INSTANCE" }?.get(null) as Cause? ?: continue
            assertEquals(snake(k.simpleName), unit.name, "stableName() of $k")
        }
        assertEquals("ready", Cause.Ready.name)
        assertEquals("send_timeout", Cause.SendTimeout.name)
    },
    "conn_2_connect_reaches_connected_and_the_state_flow_follows" to {
        val server = RefServer.start()
        val c = client(server.endpoint) { transports = listOf(TransportKind.WEB_SOCKET) }
        try {
            assertEquals(State.Idle, c.state.value)
            val rec = Recorder(this, c.events())
            c.connect()
            val up = c.awaitState { it is State.Connected }
            assertEquals(State.Connected(TransportKind.WEB_SOCKET), up)
            assertEquals("connected", up.name)
            val hello = rec.await("hello transition") {
                it is Event.StateChanged && it.to is State.Connected
            } as Event.StateChanged
            assertEquals(Cause.Hello, hello.cause)
            val first = rec.await("first transition") { it is Event.StateChanged } as Event.StateChanged
            assertEquals(State.Idle, first.from)
            assertEquals("user_connect", first.cause.name)
            rec.stop()
        } finally {
            c.release()
            server.stop()
        }
    },
    "outbox_3_publish_resolves_with_the_ack_and_the_message_arrives_once" to {
        val server = RefServer.start()
        val c = client(server.endpoint)
        try {
            val rec = Recorder(this, c.events())
            c.subscribe("lobby")
            c.connect()
            val ack: Ack = c.publish("lobby", """{"text":"hi","n":1}""")
            assertNotNull(ack.seq, "the server gives a seq")
            val pending = c.enqueue("lobby", """{"n":2}""", id = "app-key-2")
            assertEquals("app-key-2", pending.id())
            assertEquals("app-key-2", pending.ack().id)
            assertEquals(pending.ack(), pending.ack(), "ack() can be awaited again")
            val m = rec.await("message 2") { it is Event.Message && it.data.contains("\"n\":2") } as Event.Message
            assertEquals("lobby", m.channel)
            assertEquals(ack.seq!! + 1u, m.seq)
            val msgs = rec.seen.filterIsInstance<Event.Message>()
            assertEquals(2, msgs.size, "each message once: $msgs")
            rec.await("acked event") { it is Event.Acked && it.id == "app-key-2" }
            rec.stop()
        } finally {
            c.release()
            server.stop()
        }
    },
    "err_1_refused_calls_carry_their_spec_codes" to {
        val e = assertFailsWith<TetherException.Invalid> { TetherClient.build("ftp://example.com/x") }
        assertEquals("bad_request", e.code)
        val c = client("http://127.0.0.1:9/tether")
        try {
            val bad = assertFailsWith<TetherException.Refused> { c.subscribe("not a channel!") }
            assertEquals("invalid_channel", bad.code)
            assertEquals(ErrorCode.INVALID_CHANNEL, bad.errorCode)
            val json = assertFailsWith<TetherException.Invalid> { c.enqueue("c", "{not json") }
            assertEquals("bad_request", json.code)
            val big = assertFailsWith<TetherException.Refused> {
                c.enqueue("c", "\"" + "x".repeat(2 * 1024 * 1024) + "\"")
            }
            assertEquals("message_too_large", big.code)
        } finally {
            c.release()
        }
    },
    "auth_2_an_expired_token_is_fetched_again_with_forced" to {
        val server = RefServer.start("--token", "good-token")
        val asked = Collections.synchronizedList(mutableListOf<Boolean>())
        val c = client(server.endpoint) {
            tokenProvider { forced ->
                asked.add(forced)
                delay(1) // a real suspend point inside the provider
                if (forced) "good-token" else "stale-token"
            }
        }
        try {
            c.connect()
            c.awaitState { it is State.Connected }
            assertEquals(listOf(false, true), asked.toList().take(2), "stale, then a forced fetch")
        } finally {
            c.release()
            server.stop()
        }
    },
    "auth_1_a_fatal_provider_error_fails_the_client" to {
        val server = RefServer.start("--token", "good-token")
        val c = client(server.endpoint) {
            tokenProvider { throw tokenFailure("account locked", fatal = true) }
        }
        try {
            c.connect()
            assertEquals(State.Failed("auth_failed"), c.awaitState { it is State.Failed })
        } finally {
            c.release()
            server.stop()
        }
    },
    "outbox_6_full_outbox_rejects_or_drops_with_codes" to {
        val small = FAST.copy(outboxMaxCount = 1.0)
        val reject = client("http://127.0.0.1:9/tether") {
            policy = small
            dropPolicy = DropPolicy.REJECT_NEW
        }
        try {
            reject.enqueue("c", "1")
            val full = assertFailsWith<TetherException.Refused> { reject.enqueue("c", "2") }
            assertEquals("outbox_full", full.code)
        } finally {
            reject.release()
        }
        val oldest = client("http://127.0.0.1:9/tether") { policy = small }
        try {
            val first = oldest.enqueue("c", "1")
            oldest.enqueue("c", "2")
            val dropped = assertFailsWith<TetherException.Dropped> { first.ack() }
            assertEquals("outbox_full", dropped.code)
            assertEquals(DropReason.Overflow, dropped.reason)
            assertEquals(first.id(), dropped.id)
        } finally {
            oldest.release()
        }
    },
    "outbox_8_a_file_store_keeps_publishes_for_the_next_client" to {
        val dir = tempDir()
        val server = RefServer.start()
        val port = server.port
        server.stop()
        // Nothing listens: the publish waits in the file store.
        val a = client("http://127.0.0.1:$port/tether") { store = StoreConfig.File(dir) }
        val id = a.enqueue("c", """{"kept":true}""").id()
        a.connect()
        a.close()
        // Release it and wait for its driver to end before another client opens the store.
        val tail = a.events()
        a.release()
        withTimeout(5_000) { tail.toList() }
        val again = RefServer.start(port = port)
        val b = client(again.endpoint) { store = StoreConfig.File(dir) }
        try {
            val rec = Recorder(this, b.events())
            b.connect()
            val acked = rec.await("the stored publish is sent and acked") { it is Event.Acked } as Event.Acked
            assertEquals(id, acked.id)
            rec.stop()
        } finally {
            b.release()
            again.stop()
        }
    },
    "resume_5_a_server_restart_reconnects_and_reports_the_reset" to {
        val server = RefServer.start("--tick", "t:20")
        val c = client(server.endpoint) { transports = listOf(TransportKind.WEB_SOCKET) }
        var again: RefServer? = null
        try {
            val rec = Recorder(this, c.events())
            c.subscribe("t")
            c.connect()
            rec.await("ticks flow") { it is Event.Message }
            server.stop()
            c.awaitState { it is State.Reconnecting }
            again = RefServer.start("--tick", "t:20", port = server.port)
            // A new server process has a new epoch: the channel is reset, then ticks resume.
            rec.await("reset", 15_000) { it is Event.Reset && it.channel == "t" }
            c.awaitState(15_000) { it is State.Connected }
            rec.await("ticks after the restart", from = rec.seen.size) { it is Event.Message }
            rec.stop()
        } finally {
            c.release()
            server.stop()
            again?.stop()
        }
    },
    "net_1_offline_waits_without_a_delay_and_online_reconnects" to {
        val server = RefServer.start()
        val c = client(server.endpoint)
        try {
            c.connect()
            c.awaitState { it is State.Connected }
            c.setNetwork(Network.OFFLINE)
            val waiting = c.awaitState { it is State.Reconnecting } as State.Reconnecting
            assertNull(waiting.delayMs, "no delay while offline")
            assertEquals(Cause.NetworkOffline, waiting.cause)
            c.setNetwork(Network.ONLINE)
            c.awaitState { it is State.Connected }
        } finally {
            c.release()
            server.stop()
        }
    },
    "conn_3_close_ends_in_closed_and_listeners_stop" to {
        val server = RefServer.start()
        val c = client(server.endpoint)
        try {
            val flow = c.events()
            val all = async(Dispatchers.Default) {
                flow.takeWhile { !(it.event is Event.StateChanged && (it.event as Event.StateChanged).to is State.Closed) }.toList()
            }
            c.connect()
            c.awaitState { it is State.Connected }
            c.close()
            assertEquals(State.Closed, c.awaitState { it is State.Closed })
            val events = withTimeout(5_000) { all.await() }
            assertTrue(events.any { it.event is Event.StateChanged }, "transitions were delivered")
            // A low-level subscription: cancel() ends a pending next().
            val sub = c.subscription()
            val next = async(Dispatchers.Default) { sub.next() }
            delay(50)
            sub.cancel()
            assertNull(withTimeout(5_000) { next.await() })
            assertTrue(sub.isClosed())
            sub.close()
            // Releasing the client ends every flow.
            val tail = c.events()
            val done = async(Dispatchers.Default) { tail.toList() }
            c.release()
            withTimeout(5_000) { done.await() }
        } finally {
            c.release()
            server.stop()
        }
    },
)

fun main(args: Array<String>) {
    val selected = TESTS.filter { (name, _) -> args.isEmpty() || args.any { name.contains(it) } }
    var failed = 0
    for ((name, body) in selected) {
        val t0 = System.nanoTime()
        try {
            runBlocking { withTimeout(60_000) { body() } }
            println("ok   $name (${(System.nanoTime() - t0) / 1_000_000} ms)")
        } catch (e: Throwable) {
            failed++
            println("FAIL $name (${(System.nanoTime() - t0) / 1_000_000} ms): $e")
            e.printStackTrace(System.out)
        }
    }
    println("kotlin: ${selected.size - failed} passed, $failed failed")
    exitProcess(if (failed == 0) 0 else 1)
}
