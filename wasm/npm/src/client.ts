// TetherClient: the idiomatic API over the wasm exports. It adapts names and types only:
// every decision (when to connect, retry, fall back, resend) is the Rust engine's.

import initWasm, { createClient as createWasmClient, type WasmClient } from "./wasm/tether_wasm.js";
import { PublishDroppedError, TetherError, toTetherError } from "./errors.js";
import { toEvent, type RawEvent, type TetherEventMap, type TetherMessageEvent } from "./events.js";
import type {
  Ack,
  ClientOptions,
  Message,
  NetworkState,
  PolicyOverrides,
  PublishOptions,
  Queued,
  State,
} from "./types.js";

/** Where the WebAssembly module comes from: what `init` accepts. */
export type WasmSource =
  | string
  | URL
  | Request
  | Response
  | BufferSource
  | WebAssembly.Module
  | Promise<Response>;

let loading: Promise<void> | undefined;

/**
 * Load and instantiate the WebAssembly module (once; later calls return the same promise).
 * Without an argument it is fetched next to the package's JavaScript
 * (`tether_wasm_bg.wasm`, resolved with `import.meta.url`, which bundlers understand).
 * `createClient` calls it, so calling it yourself is only needed to choose the source or to
 * load early.
 */
export function init(source?: WasmSource): Promise<void> {
  loading ??= initWasm(source === undefined ? undefined : { module_or_path: source }).then(
    () => undefined,
    (e: unknown) => {
      loading = undefined;
      throw new TetherError("closed", `the Tether WebAssembly module did not load: ${String(e)}`, {
        cause: e,
      });
    },
  );
  return loading;
}

const POLICY_FIELDS: ReadonlyArray<readonly [keyof PolicyOverrides, string]> = [
  ["floorMs", "floor_ms"],
  ["baseMs", "base_ms"],
  ["capMs", "cap_ms"],
  ["multiplier", "multiplier"],
  ["maxAttempts", "max_attempts"],
  ["maxElapsedMs", "max_elapsed_ms"],
  ["heartbeatMs", "heartbeat_ms"],
  ["heartbeatGraceMs", "heartbeat_grace_ms"],
  ["openTimeoutMs", "open_timeout_ms"],
  ["pollHoldMs", "poll_hold_ms"],
  ["probeIntervalMs", "probe_interval_ms"],
  ["upgradeAfterMs", "upgrade_after_ms"],
  ["outboxMaxCount", "outbox_max_count"],
  ["outboxMaxBytes", "outbox_max_bytes"],
  ["outboxMaxAgeMs", "outbox_max_age_ms"],
];

/** The options as the wasm module reads them (snake_case JSON). */
function optionsJson(endpoint: string, o: ClientOptions): string {
  const policy: Record<string, number> = {};
  for (const [camel, snake] of POLICY_FIELDS) {
    const v = o.policy?.[camel];
    if (v !== undefined) policy[snake] = v;
  }
  const store = o.store === undefined || o.store === "memory" ? "memory" : o.store.indexedDB;
  return JSON.stringify({
    endpoint,
    transports: o.transports,
    policy,
    seed: o.seed === undefined ? undefined : String(o.seed),
    drop_policy: o.dropPolicy,
    max_frame_bytes: o.maxFrameBytes,
    store,
    watch_network: o.watchNetwork ?? true,
    auth: o.token !== undefined,
  });
}

/**
 * Build a client for `endpoint` (e.g. `https://rt.example.com/tether`). It stays `idle` until
 * {@link TetherClient.connect}. With an IndexedDB store, the outbox and the memo are read first
 * (the returned promise waits for it): queued publishes of an earlier page are sent again.
 * Rejects with a {@link TetherError} (`bad_request` for bad options, `store_failed` when the
 * store cannot be opened).
 */
export async function createClient(
  endpoint: string | URL,
  options: ClientOptions = {},
): Promise<TetherClient> {
  await init();
  const client = new TetherClient(PRIVATE);
  const token = options.token;
  const provider =
    token === undefined ? undefined : (forced: boolean) => Promise.resolve(token(forced));
  try {
    const wasm = await createWasmClient(
      optionsJson(String(endpoint), options),
      (raw: RawEvent) => client[RECEIVE](raw),
      provider,
    );
    client[ATTACH](wasm);
  } catch (e) {
    throw toTetherError(e);
  }
  return client;
}

const PRIVATE = Symbol("tether-private");
const RECEIVE = Symbol("tether-receive");
const ATTACH = Symbol("tether-attach");

type Listener<K extends keyof TetherEventMap> =
  | ((this: TetherClient, ev: TetherEventMap[K]) => void)
  | { handleEvent(ev: TetherEventMap[K]): void };

/**
 * A Tether client. Events are DOM events (`statechange`, `message`, `reset`, `ack`, `drop`,
 * `fallback`, `reconnectscheduled`, `transport`, `policy`, `error`), dispatched in the order
 * the engine reports them; a listener may call the client.
 */
export class TetherClient extends EventTarget {
  #wasm: WasmClient | undefined;
  #state: State = { name: "idle" };
  #closedWaiters: Array<() => void> = [];

  /** @internal Use {@link createClient}. */
  constructor(token: typeof PRIVATE) {
    super();
    if (token !== PRIVATE) throw new TypeError("use createClient() to build a TetherClient");
  }

  /** @internal */
  [ATTACH](wasm: WasmClient): void {
    this.#wasm = wasm;
  }

  /** @internal */
  [RECEIVE](raw: RawEvent): void {
    const ev = toEvent(raw);
    if (ev === undefined) return;
    if (raw.type === "statechange") {
      this.#state = raw.to;
      if (raw.to.name === "closed") {
        for (const w of this.#closedWaiters.splice(0)) w();
      }
    }
    this.dispatchEvent(ev);
  }

  #client(): WasmClient {
    if (this.#wasm === undefined) throw new TetherError("closed", "the client is not ready");
    return this.#wasm;
  }

  #call<T>(f: (w: WasmClient) => T): T {
    try {
      return f(this.#client());
    } catch (e) {
      throw toTetherError(e);
    }
  }

  /** The current state (STATE-1): the `to` of the last `statechange` dispatched. */
  get state(): State {
    return this.#state;
  }

  /** Publishes waiting for an ack. */
  get outboxLength(): number {
    return this.#call((w) => w.outboxLength);
  }

  /**
   * Start connecting (CONN-1): the first attempt starts at once unless a remembered
   * retry-after deadline is still ahead (READY-2). From `failed` or `closed` it starts afresh.
   */
  connect(): void {
    this.#call((w) => w.connect());
  }

  /** Subscribe to `channel` (`[A-Za-z0-9_.:@-]{1,128}`, WIRE-8); takes effect on the live connection or the next. */
  subscribe(channel: string): Promise<void> {
    return this.#settle(() => this.#call((w) => w.subscribe(channel)));
  }

  /** Stop receiving `channel`. */
  unsubscribe(channel: string): Promise<void> {
    return this.#settle(() => this.#call((w) => w.unsubscribe(channel)));
  }

  #settle<T>(f: () => T): Promise<T> {
    try {
      return Promise.resolve(f());
    } catch (e) {
      return Promise.reject(e);
    }
  }

  #publish(channel: string, data: unknown, options: PublishOptions | undefined) {
    const text = JSON.stringify(data);
    if (text === undefined) {
      throw new TetherError("bad_request", "publish data must be JSON-serialisable");
    }
    return this.#call((w) => w.publish(channel, text, options?.key));
  }

  /**
   * Publish `data` on `channel` and wait for the server's ack. The publish goes through the
   * outbox: queued (durably, with an IndexedDB store) and sent once connected, resent after
   * reconnects with the same idempotency key until acknowledged (OUTBOX-1..4). Rejects with a
   * {@link TetherError} when refused (`invalid_channel`, `message_too_large`, `outbox_full`,
   * `store_failed`, `closed`) or a {@link PublishDroppedError} when dropped.
   */
  async publish(channel: string, data: unknown, options?: PublishOptions): Promise<Ack> {
    const p = this.#publish(channel, data, options);
    try {
      return (await p.outcome) as Ack;
    } catch (e) {
      throw toTetherError(e);
    }
  }

  /**
   * Queue a publish and resolve once it is durable in the store (OUTBOX-2: with IndexedDB,
   * once the transaction that wrote it completed), with its key and a promise of its ack.
   */
  async enqueue(channel: string, data: unknown, options?: PublishOptions): Promise<Queued> {
    const p = this.#publish(channel, data, options);
    const acked = (p.outcome as Promise<Ack>).catch((e: unknown) => {
      throw toTetherError(e);
    });
    // Nobody may await `acked`: a drop must not surface as an unhandled rejection.
    acked.catch(() => undefined);
    try {
      await p.queued;
    } catch (e) {
      throw toTetherError(e);
    }
    return { id: p.id, acked };
  }

  /**
   * The messages of `channel` (or of every channel) from now on, as an async iterator. It
   * ends when the client closes or `signal` aborts; messages wait in memory until read, so
   * stop iterating (`break`) when you no longer read.
   */
  messages(channel?: string, options?: { readonly signal?: AbortSignal }): AsyncIterableIterator<Message> {
    const queue: Message[] = [];
    let wake: (() => void) | undefined;
    let done = this.#state.name === "closed";
    const signal = options?.signal;
    const onMessage = (ev: TetherMessageEvent) => {
      if (channel !== undefined && ev.channel !== channel) return;
      queue.push({ channel: ev.channel, seq: ev.seq, data: ev.data });
      wake?.();
    };
    const finish = () => {
      done = true;
      this.removeEventListener("message", onMessage);
      this.removeEventListener("statechange", onState);
      signal?.removeEventListener("abort", finish);
      wake?.();
    };
    const onState = (ev: Event) => {
      if ((ev as TetherEventMap["statechange"]).to.name === "closed") finish();
    };
    this.addEventListener("message", onMessage);
    this.addEventListener("statechange", onState);
    if (signal?.aborted) finish();
    signal?.addEventListener("abort", finish);
    const iterator: AsyncIterableIterator<Message> = {
      next: async (): Promise<IteratorResult<Message>> => {
        for (;;) {
          const m = queue.shift();
          if (m !== undefined) return { value: m, done: false };
          if (done) return { value: undefined, done: true };
          await new Promise<void>((r) => (wake = r));
          wake = undefined;
        }
      },
      return: async (): Promise<IteratorResult<Message>> => {
        finish();
        queue.length = 0;
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]() {
        return iterator;
      },
    };
    return iterator;
  }

  /**
   * Tell the client about connectivity (NET-1..3): `offline` stops attempts, `online`
   * schedules one at `U(0, base)`, `changed` reconnects make-before-break.
   */
  setNetwork(state: NetworkState): void {
    this.#call((w) => w.setNetwork(state));
  }

  /**
   * Close for good (CONN-3): the connection is closed with 1000, timers stop, the state ends
   * in `closed`; publishes still queued stay in the store, and their promises reject with
   * `closed`. Resolves once the state is `closed`.
   */
  close(): Promise<void> {
    try {
      this.#call((w) => w.close());
    } catch (e) {
      return Promise.reject(e);
    }
    if (this.#state.name === "closed") return Promise.resolve();
    return new Promise((r) => this.#closedWaiters.push(r));
  }

  /** Listen for `type`; returns a function that stops listening. */
  on<K extends keyof TetherEventMap>(type: K, listener: (ev: TetherEventMap[K]) => void): () => void {
    const l = (ev: Event) => listener(ev as TetherEventMap[K]);
    super.addEventListener(type, l);
    return () => super.removeEventListener(type, l);
  }

  override addEventListener<K extends keyof TetherEventMap>(
    type: K,
    listener: Listener<K> | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  override addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  override addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | ((ev: never) => void) | null,
    options?: boolean | AddEventListenerOptions,
  ): void {
    super.addEventListener(type, listener as EventListenerOrEventListenerObject | null, options);
  }

  override removeEventListener<K extends keyof TetherEventMap>(
    type: K,
    listener: Listener<K> | null,
    options?: boolean | EventListenerOptions,
  ): void;
  override removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
  override removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | ((ev: never) => void) | null,
    options?: boolean | EventListenerOptions,
  ): void {
    super.removeEventListener(type, listener as EventListenerOrEventListenerObject | null, options);
  }
}


