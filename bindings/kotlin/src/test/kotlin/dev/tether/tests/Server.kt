// The reference server (target/release/tether-server) as a child process on loopback.
package dev.tether.tests

import java.io.File
import java.util.concurrent.TimeUnit

class RefServer private constructor(private val proc: Process, val endpoint: String, val port: Int) {
    fun stop() {
        proc.destroyForcibly()
        proc.waitFor(5, TimeUnit.SECONDS)
    }

    companion object {
        private val binary: String by lazy {
            val root = System.getProperty("tether.root") ?: error("-Dtether.root=<repo root> is required")
            File(root, "target/release/tether-server").path
        }

        /** Start on [port] (0 = any free port) with extra flags (`--token`, `--tick`, ...). */
        fun start(vararg flags: String, port: Int = 0): RefServer {
            val cmd = listOf(binary, "--listen", "127.0.0.1:$port", "--heartbeat-ms", "1000") + flags
            val proc = ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.INHERIT).start()
            val line = proc.inputStream.bufferedReader().readLine()
                ?: error("tether-server printed nothing: $cmd")
            val m = Regex("listening on (http://[^ ]+)").find(line) ?: error("unexpected output: $line")
            val endpoint = m.groupValues[1]
            val p = Regex(":(\\d+)/").find(endpoint)?.groupValues?.get(1)?.toInt() ?: error(endpoint)
            // Keep draining stdout so the server never blocks on a full pipe.
            Thread { runCatching { proc.inputStream.readBytes() } }.apply { isDaemon = true }.start()
            return RefServer(proc, endpoint, p)
        }
    }
}
