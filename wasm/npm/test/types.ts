// Compile-time checks of the public API, against the built declarations (dist/*.d.ts):
// what an application writes type-checks strictly, and what it must not write does not.
import {
  createClient,
  init,
  PublishDroppedError,
  TetherError,
  TokenProviderError,
  type Ack,
  type ErrorCode,
  type Message,
  type Queued,
  type State,
  type TetherClient,
} from "../dist/index.js";

export async function app(): Promise<void> {
  await init();
  const client: TetherClient = await createClient("https://rt.example.com/tether", {
    transports: ["websocket", "sse"],
    policy: { baseMs: 500, capMs: 10_000 },
    store: { indexedDB: "chat" },
    seed: 42n,
    dropPolicy: "reject_new",
    token: async (forced: boolean) => (forced ? "fresh" : "cached"),
  });
  client.addEventListener("statechange", (e) => {
    const from: State = e.from;
    const to: State = e.to;
    if (to.name === "reconnecting") {
      const d: number | null = to.delayMs;
      const c: string = to.cause.name;
      void d;
      void c;
    }
    if (e.cause.name === "transport_closed") {
      const code: number | null = e.cause.code;
      void code;
    }
    void from;
  });
  client.addEventListener("message", (e) => {
    const ch: string = e.channel;
    const seq: number = e.seq;
    void ch;
    void seq;
  });
  client.addEventListener("error", (e) => {
    const code: ErrorCode = e.code;
    void code;
  });
  const stop = client.on("ack", (e) => {
    const id: string = e.id;
    void id;
  });
  stop();
  client.connect();
  await client.subscribe("room");
  const ack: Ack = await client.publish("room", { text: "hi" }, { key: "k1" });
  const q: Queued = await client.enqueue("room", [1, 2, 3]);
  const acked: Ack = await q.acked;
  for await (const m of client.messages("room")) {
    const msg: Message = m;
    void msg;
    break;
  }
  try {
    await client.publish("bad name", 1);
  } catch (e) {
    if (e instanceof PublishDroppedError) {
      const r: "overflow" | "expired" | "rejected" | "too_large" | "closed" = e.reason;
      void r;
    } else if (e instanceof TetherError) {
      const code: ErrorCode = e.code;
      void code;
    }
  }
  client.setNetwork("offline");
  await client.close();
  void ack;
  void acked;
  void new TokenProviderError("no credentials", { fatal: true });

  // @ts-expect-error: not a transport
  await createClient("https://x", { transports: ["carrier_pigeon"] });
  // @ts-expect-error: not a network state
  client.setNetwork("sideways");
  // @ts-expect-error: the state is read-only
  client.state = { name: "idle" };
  // @ts-expect-error: codes are the ERR-1 codes
  const bad: ErrorCode = "oops";
  void bad;
  // @ts-expect-error: policy fields are camelCase numbers
  await createClient("https://x", { policy: { base_ms: 5 } });
}
