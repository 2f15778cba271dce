// The page half of the browser adapter: the adapter protocol's commands as calls on the
// public API of @tether/browser, and its events as protocol events. It only translates.
// Everything leaves through one binding, window.__tether_out (events and replies in order).
import { createClient, TokenProviderError } from "/pkg/index.js";

// Messages leave in order, batched per event-loop turn (one binding call per batch).
let batch = [];
const out = (msg) => {
  batch.push(msg);
  if (batch.length === 1) {
    queueMicrotask(() => {
      const b = batch;
      batch = [];
      window.__tether_out(JSON.stringify(b));
    });
  }
};
// The adapter's monotonic clock, in epoch milliseconds (the Node side subtracts its start).
const stamp = (ev) => performance.timeOrigin + (ev ? ev.timeStamp : performance.now());

let client;
let setup;

const POLICY = {
  floor_ms: "floorMs",
  base_ms: "baseMs",
  cap_ms: "capMs",
  multiplier: "multiplier",
  max_attempts: "maxAttempts",
  max_elapsed_ms: "maxElapsedMs",
  heartbeat_ms: "heartbeatMs",
  heartbeat_grace_ms: "heartbeatGraceMs",
  open_timeout_ms: "openTimeoutMs",
  poll_hold_ms: "pollHoldMs",
  probe_interval_ms: "probeIntervalMs",
  upgrade_after_ms: "upgradeAfterMs",
  outbox_max_count: "outboxMaxCount",
  outbox_max_bytes: "outboxMaxBytes",
  outbox_max_age_ms: "outboxMaxAgeMs",
};

function causeCode(cause) {
  return cause.name === "transport_closed" || cause.name === "terminal" ? { cause_code: cause.code ?? null } : {};
}

/** A state as the protocol's state object. */
function stateJson(s) {
  const o = { name: s.name };
  if ("attempt" in s) o.attempt = s.attempt;
  if ("transport" in s) o.transport = s.transport;
  if ("reason" in s) o.reason = s.reason;
  if ("delayMs" in s) o.delay_ms = s.delayMs;
  if ("cause" in s) o.cause = s.cause.name;
  return o;
}

function listen(c) {
  c.addEventListener("statechange", (e) => {
    const { name: _n, cause: _c, ...fields } = stateJson(e.to);
    out({ type: "state", t_ms: stamp(e), from: e.from.name, to: e.to.name, cause: e.cause.name, ...causeCode(e.cause), ...fields });
  });
  c.addEventListener("reconnectscheduled", (e) =>
    out({ type: "reconnect_scheduled", t_ms: stamp(e), attempt: e.attempt, delay_ms: e.delayMs, cause: e.cause.name }),
  );
  c.addEventListener("transport", (e) => out({ type: "transport_selected", t_ms: stamp(e), transport: e.transport }));
  c.addEventListener("message", (e) => out({ type: "message", t_ms: stamp(e), channel: e.channel, seq: e.seq, data: e.data }));
  c.addEventListener("reset", (e) => out({ type: "reset", t_ms: stamp(e), channel: e.channel, reason: e.reason }));
  c.addEventListener("ack", (e) => out({ type: "acked", t_ms: stamp(e), id: e.id, seq: e.seq }));
  c.addEventListener("drop", (e) => {
    const m = { type: "dropped", t_ms: stamp(e), id: e.id, reason: e.reason };
    if (e.code !== undefined) m.code = e.code;
    out(m);
  });
  c.addEventListener("fallback", (e) => out({ type: "fallback", t_ms: stamp(e), from: e.from, to: e.to, reason: e.reason }));
  c.addEventListener("policy", (e) => out({ type: "policy_applied", t_ms: stamp(e), clamped: e.clamped }));
  c.addEventListener("error", (e) => out({ type: "error", t_ms: stamp(e), code: e.code, detail: e.detail }));
}

/** The token script of `configure.auth`: the n-th fetch gets tokens[n], the last repeats. */
function tokenProvider(script) {
  let n = 0;
  return (forced) => {
    out({ type: "token_requested", t_ms: stamp(), forced });
    const tokens = script.tokens ?? [];
    const step = tokens[Math.min(n++, tokens.length - 1)];
    if (typeof step === "string") return Promise.resolve(step);
    const e = step ?? { error: "empty token script", fatal: true };
    return Promise.reject(new TokenProviderError(e.error, { fatal: e.fatal === true }));
  };
}

async function build(s) {
  const policy = {};
  for (const [k, v] of Object.entries(s.policy ?? {})) {
    if (v !== null && v !== undefined && POLICY[k]) policy[POLICY[k]] = v;
  }
  const options = { transports: s.transports, policy, store: { indexedDB: s.store } };
  if (s.seed !== undefined && s.seed !== null) options.seed = BigInt(s.seed);
  if (s.auth) options.token = tokenProvider(s.auth);
  if (s.drop_policy) options.dropPolicy = s.drop_policy;
  if (s.max_frame_bytes) options.maxFrameBytes = s.max_frame_bytes;
  const t = performance.now();
  const c = await createClient(s.endpoint, options);
  console.warn(`createClient took ${(performance.now() - t).toFixed(0)} ms`);
  listen(c);
  return c;
}

function need() {
  if (!client) throw Object.assign(new Error("send `configure` first"), { code: "closed" });
  return client;
}

const commands = {
  async configure(cmd) {
    if (client) {
      await client.close().catch(() => {});
      client = undefined;
    }
    setup = {
      endpoint: cmd.endpoint,
      transports: cmd.transports,
      policy: cmd.policy,
      seed: cmd.seed,
      auth: cmd.auth,
      drop_policy: cmd.drop_policy,
      max_frame_bytes: cmd.max_frame_bytes,
      store: cmd.store,
    };
    client = await build(setup);
    return {};
  },
  // After a page reload (`restart`): the same configuration over the same store.
  async rebuild(cmd) {
    setup = cmd.setup;
    client = await build(setup);
    return {};
  },
  async connect() {
    need().connect();
    return {};
  },
  async subscribe(cmd) {
    await need().subscribe(cmd.channel);
    return {};
  },
  async unsubscribe(cmd) {
    await need().unsubscribe(cmd.channel);
    return {};
  },
  async publish(cmd) {
    const q = await need().enqueue(cmd.channel, cmd.data, cmd.key === undefined || cmd.key === null ? undefined : { key: cmd.key });
    return { key: q.id };
  },
  async set_network(cmd) {
    need().setNetwork(cmd.state);
    return {};
  },
  async close() {
    await need().close();
    return {};
  },
  async barrier() {
    return {};
  },
  async state() {
    return { state: stateJson(need().state) };
  },
  async setup() {
    return { setup };
  },
};

window.__tether_cmd = async (text) => {
  const cmd = JSON.parse(text);
  const f = commands[cmd.type];
  if (!f) {
    out({ type: "error", id: cmd.id, code: "bad_command", message: `unknown command ${cmd.type}` });
    return;
  }
  try {
    const r = await f(cmd);
    out({ type: "ok", id: cmd.id, ...r });
  } catch (e) {
    out({ type: "error", id: cmd.id, code: typeof e?.code === "string" ? e.code : "bad_request", message: String(e?.message ?? e) });
  }
};
window.__tether_ready = true;
