// A live chat on @tether/browser: every state change is shown with its cause, every message
// once, in order; what is typed while offline waits in the durable outbox.
import { createClient, TetherError } from "./node_modules/@tether/browser/dist/index.js";

const params = new URLSearchParams(location.search);
const endpoint = params.get("endpoint") ?? "http://127.0.0.1:8787/tether";
const $ = (id) => document.getElementById(id);

const client = await createClient(endpoint, {
  store: { indexedDB: "chat-example" },
  policy: { baseMs: 300, capMs: 2000, heartbeatMs: 2000, heartbeatGraceMs: 1000 },
});
window.chat = client;

const log = (text) => {
  const li = document.createElement("li");
  li.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  $("log").prepend(li);
};
const pending = () => {
  const n = client.outboxLength;
  $("pending").textContent = n > 0 ? `${n} waiting to send` : "";
};

client.addEventListener("statechange", (e) => {
  const s = e.to;
  const detail = s.name === "reconnecting" && s.delayMs !== null ? ` in ${Math.round(s.delayMs)} ms` : "transport" in s ? ` (${s.transport})` : "";
  $("state").textContent = s.name + detail;
  $("state").dataset.name = s.name;
  log(`${e.from.name} → ${s.name}${detail} · ${e.cause.name}`);
  pending();
});
client.addEventListener("reset", (e) => log(`channel ${e.channel} reset (${e.reason}): history before this point may be missing`));
client.addEventListener("ack", pending);
client.addEventListener("drop", (e) => log(`a message was dropped (${e.reason})`));

$("send").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const text = $("text").value.trim();
  if (!text) return;
  $("text").value = "";
  try {
    await client.enqueue("lobby", { text });
    pending();
  } catch (e) {
    log(e instanceof TetherError ? `not sent: ${e.code}` : String(e));
  }
});

await client.subscribe("lobby");
client.connect();
for await (const m of client.messages("lobby")) {
  const li = document.createElement("li");
  li.dataset.seq = String(m.seq);
  const seq = document.createElement("span");
  seq.className = "seq";
  seq.textContent = `#${m.seq}`;
  li.append(seq, typeof m.data === "object" && m.data !== null && "text" in m.data ? String(m.data.text) : JSON.stringify(m.data));
  $("messages").append(li);
  pending();
}
