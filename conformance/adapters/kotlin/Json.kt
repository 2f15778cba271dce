// A small JSON reader and writer for the adapter protocol (the JVM has no JSON built in, and
// the adapter keeps to the Kotlin standard library, coroutines and the bindings).
package dev.tether.conformance

/** JSON text kept as is when written (message payloads cross the bindings as JSON text). */
class RawJson(val text: String)

class JsonError(message: String) : Exception(message)

/** Parse one JSON value: Map<String, Any?>, List<Any?>, String, Long, Double, Boolean or null. */
fun parseJson(text: String): Any? {
    val p = JsonParser(text)
    p.ws()
    val v = p.value()
    p.ws()
    if (p.i != text.length) throw JsonError("trailing characters at ${p.i}")
    return v
}

private class JsonParser(val s: String) {
    var i = 0

    fun ws() {
        while (i < s.length && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t')) i++
    }

    fun value(): Any? {
        if (i >= s.length) throw JsonError("unexpected end")
        return when (val c = s[i]) {
            '{' -> obj()
            '[' -> arr()
            '"' -> str()
            't' -> lit("true", true)
            'f' -> lit("false", false)
            'n' -> lit("null", null)
            else -> if (c == '-' || c.isDigit()) num() else throw JsonError("unexpected '$c' at $i")
        }
    }

    fun lit(word: String, v: Any?): Any? {
        if (!s.startsWith(word, i)) throw JsonError("bad literal at $i")
        i += word.length
        return v
    }

    fun obj(): Map<String, Any?> {
        val m = LinkedHashMap<String, Any?>()
        i++
        ws()
        if (i < s.length && s[i] == '}') { i++; return m }
        while (true) {
            ws()
            if (i >= s.length || s[i] != '"') throw JsonError("expected a key at $i")
            val k = str()
            ws()
            if (i >= s.length || s[i] != ':') throw JsonError("expected ':' at $i")
            i++
            ws()
            m[k] = value()
            ws()
            if (i >= s.length) throw JsonError("unexpected end")
            when (s[i++]) {
                ',' -> continue
                '}' -> return m
                else -> throw JsonError("expected ',' or '}' at ${i - 1}")
            }
        }
    }

    fun arr(): List<Any?> {
        val l = ArrayList<Any?>()
        i++
        ws()
        if (i < s.length && s[i] == ']') { i++; return l }
        while (true) {
            ws()
            l.add(value())
            ws()
            if (i >= s.length) throw JsonError("unexpected end")
            when (s[i++]) {
                ',' -> continue
                ']' -> return l
                else -> throw JsonError("expected ',' or ']' at ${i - 1}")
            }
        }
    }

    fun str(): String {
        val b = StringBuilder()
        i++
        while (true) {
            if (i >= s.length) throw JsonError("unterminated string")
            val c = s[i++]
            when (c) {
                '"' -> return b.toString()
                '\\' -> {
                    if (i >= s.length) throw JsonError("bad escape")
                    when (val e = s[i++]) {
                        '"' -> b.append('"')
                        '\\' -> b.append('\\')
                        '/' -> b.append('/')
                        'b' -> b.append('\b')
                        'f' -> b.append('\u000C')
                        'n' -> b.append('\n')
                        'r' -> b.append('\r')
                        't' -> b.append('\t')
                        'u' -> {
                            if (i + 4 > s.length) throw JsonError("bad \\u escape")
                            b.append(s.substring(i, i + 4).toInt(16).toChar())
                            i += 4
                        }
                        else -> throw JsonError("bad escape \\$e")
                    }
                }
                else -> b.append(c)
            }
        }
    }

    fun num(): Any {
        val start = i
        if (s[i] == '-') i++
        while (i < s.length && s[i].isDigit()) i++
        var integral = true
        if (i < s.length && s[i] == '.') {
            integral = false
            i++
            while (i < s.length && s[i].isDigit()) i++
        }
        if (i < s.length && (s[i] == 'e' || s[i] == 'E')) {
            integral = false
            i++
            if (i < s.length && (s[i] == '+' || s[i] == '-')) i++
            while (i < s.length && s[i].isDigit()) i++
        }
        val t = s.substring(start, i)
        if (integral) t.toLongOrNull()?.let { return it }
        return t.toDoubleOrNull() ?: throw JsonError("bad number $t")
    }
}

/** Write a value built of maps, lists, strings, numbers, booleans, null and [RawJson]. */
fun toJson(v: Any?): String = StringBuilder().also { write(it, v) }.toString()

private fun write(b: StringBuilder, v: Any?) {
    when (v) {
        null -> b.append("null")
        is RawJson -> b.append(v.text)
        is String -> quote(b, v)
        is Boolean -> b.append(v)
        is Double -> if (v.isFinite()) b.append(v) else b.append("null")
        is Float -> write(b, v.toDouble())
        is Number -> b.append(v.toString())
        is UInt -> b.append(v.toString())
        is ULong -> b.append(v.toString())
        is UShort -> b.append(v.toString())
        is Map<*, *> -> {
            b.append('{')
            var first = true
            for ((k, x) in v) {
                if (!first) b.append(',')
                first = false
                quote(b, k.toString())
                b.append(':')
                write(b, x)
            }
            b.append('}')
        }
        is Iterable<*> -> {
            b.append('[')
            var first = true
            for (x in v) {
                if (!first) b.append(',')
                first = false
                write(b, x)
            }
            b.append(']')
        }
        else -> quote(b, v.toString())
    }
}

private fun quote(b: StringBuilder, s: String) {
    b.append('"')
    for (c in s) {
        when {
            c == '"' -> b.append("\\\"")
            c == '\\' -> b.append("\\\\")
            c == '\n' -> b.append("\\n")
            c == '\r' -> b.append("\\r")
            c == '\t' -> b.append("\\t")
            c < ' ' -> b.append(String.format("\\u%04x", c.code))
            else -> b.append(c)
        }
    }
    b.append('"')
}
