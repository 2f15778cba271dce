#!/usr/bin/env node
// The conformance adapter of @tether/browser (conformance/ADAPTERS.md): the adapter protocol on
// stdin/stdout, the client itself in headless Chromium. Run it from the repository root:
//
//   cargo run --release -p tether-conformance -- run --adapter "node conformance/adapters/browser/adapter.mjs"
//
// It builds the npm package and installs its node modules when they are missing, shares one
// Chromium across the run's adapter processes (keeper.mjs; a fresh browser context, so a fresh
// IndexedDB, per case), serves a harness page that loads the package from loopback (a page on
// another origin than the server: CORS is exercised), and relays commands and events through
// one ordered channel. `restart` reloads the page over the same storage. It only translates:
// every decision stays in the client.
//
// `--stop-browser` stops the shared Chromium and exits (end of a test run).
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize } from "node:path";
import { connectBrowser, dist, here, prepare, stopKeeper } from "./browser.mjs";

const log = (m) => process.stderr.write(`browser-adapter: ${redact(m)}\n`);
// AUTH-4: nothing this adapter writes may show a token.
const redact = (s) => String(s).replace(/access_token=[^&\s'"]*/g, "access_token=***");

if (process.argv.includes("--stop-browser")) {
  stopKeeper();
  process.exit(0);
}

// ---- framing (ADAPTERS.md §1) ----
function write(msg) {
  const body = Buffer.from(JSON.stringify(msg));
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  process.stdout.write(Buffer.concat([len, body]));
}
const t0 = performance.timeOrigin + performance.now();
let lastT = 0;
/** Page time (epoch ms) on the adapter's clock, never going backwards. */
function clock(epochMs) {
  lastT = Math.max(lastT, epochMs - t0);
  return lastT;
}

try {
  prepare();
} catch (e) {
  log(`cannot prepare the package: ${e.message}`);
  process.exit(1);
}

const { chromium } = await import("playwright-core");

// ---- the page's origin: a static server on loopback ----
const TYPES = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm", ".json": "application/json" };
async function serve(req, res) {
  const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
  let file;
  if (path === "/" || path === "/index.html") file = join(here, "page", "harness.html");
  else if (path === "/harness.js") file = join(here, "page", "harness.js");
  else if (path.startsWith("/pkg/")) file = join(dist, normalize(path.slice(5)).replace(/^(\.\.[/\\])+/, ""));
  try {
    if (!file) throw new Error("not found");
    const body = await readFile(file);
    res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream", "cache-control": "no-store" });
    res.end(body);
  } catch {
    res.writeHead(404);
    res.end();
  }
}
const http = createServer(serve);
await new Promise((r) => http.listen(0, "127.0.0.1", r));
const port = http.address().port;
// Chrome throttles a renderer process's WebSocket connections after repeated failures (up
// to seconds per connection). Each `configure` therefore loads the page from a new site,
// 127.0.0.k (a new renderer process); `restart` reloads the same one (same storage).
const servers = [http];
let site = 1;
async function nextOrigin() {
  site = site >= 254 ? 2 : site + 1;
  const s = createServer(serve);
  await new Promise((resolve, reject) => {
    s.once("error", reject);
    s.listen(port, `127.0.0.${site}`, resolve);
  }).catch(() => new Promise((r) => s.listen(0, `127.0.0.${site}`, r)));
  servers.push(s);
  return `http://127.0.0.${site}:${s.address().port}/`;
}
let pageUrl = `http://127.0.0.1:${port}/`;

// ---- the browser, ready in the background while the runner sends its first command ----
let context;
let page;
let lease;
let storeSeq = 0;
let lastSetup;
const ready = (async () => {
  const t = performance.now();
  const { browser, sock } = await connectBrowser(chromium);
  lease = sock;
  const t1 = performance.now();
  context = await browser.newContext();
  page = await context.newPage();
  const t2 = performance.now();
  await page.exposeBinding("__tether_out", (_src, text) => relay(text));
  page.on("pageerror", (e) => log(`page error: ${e.message}`));
  const trace = Boolean(process.env.TETHER_ADAPTER_TRACE);
  page.on("console", (m) => {
    if (trace || m.type() === "error" || m.type() === "warning") log(`console ${m.type()}: ${m.text()}`);
  });
  if (trace) await page.addInitScript({ path: join(here, "page", "trace.js") });
  await load();
  const ms = (a, b) => (b - a).toFixed(0);
  log(`browser ready: connect ${ms(t, t1)} ms, context+page ${ms(t1, t2)} ms, page load ${ms(t2, performance.now())} ms`);
})();
// Hello once the page is up (ADAPTERS.md §2: the runner waits 30 s for it), so the first
// command does not wait for the browser. Commands that arrive anyway wait for `ready`.
ready.then(
  () => sayHello(),
  (e) => {
    log(`browser setup failed: ${e.message}`);
    process.exit(1);
  },
);

function sayHello() {
  write({
    type: "hello",
    adapter: "tether-browser",
    version: "0.1.0",
    protocol: 1,
    capabilities: [
      "websocket",
      "sse",
      "long_poll",
      "outbox",
      "auth",
      "network",
      "drain",
      "retry_after",
      "ready_probe",
      "persistence",
      "seed",
      // Forms that differ in a browser (ADAPTERS.md): AUTH-3's query token, a WebSocket
      // that fails invalid UTF-8 itself without saying why and hides a message until it is
      // complete, and a fetch that resends a request cut on a pooled connection (BACKOFF-11).
      "token_query",
      "opaque_websocket",
      "http_resend",
    ],
  });
}

async function load() {
  await page.goto(pageUrl, { waitUntil: "load" });
  await page.waitForFunction(() => window.__tether_ready === true, null, { timeout: 10000 });
}

/** Replies waiting for the page, by command id (for `restart`, which the Node side handles). */
const waiting = new Map();

function relay(text) {
  for (const msg of JSON.parse(text)) relayOne(msg);
}

function relayOne(msg) {
  if (process.env.TETHER_ADAPTER_TRACE) log(`relay ${msg.type} ${msg.id ?? ""} at ${performance.now().toFixed(0)}`);
  if (msg.type === "ok" || (msg.type === "error" && msg.id !== undefined)) {
    const w = waiting.get(msg.id);
    if (w) {
      waiting.delete(msg.id);
      w(msg);
      return;
    }
    write(msg);
    return;
  }
  if (typeof msg.t_ms === "number") msg.t_ms = clock(msg.t_ms);
  write(msg);
}

/** Send a command to the page; its reply comes back through the binding, after its events. */
function toPage(cmd) {
  if (process.env.TETHER_ADAPTER_TRACE) log(`toPage ${cmd.type} ${cmd.id} at ${performance.now().toFixed(0)}`);
  page.evaluate((t) => window.__tether_cmd(t), JSON.stringify(cmd)).catch((e) => {
    write({ type: "error", id: cmd.id, code: "bad_request", message: redact(`page: ${e.message}`) });
  });
}

/** A command whose reply the Node side needs first. */
function ask(cmd) {
  return new Promise((resolve) => {
    waiting.set(cmd.id, resolve);
    toPage(cmd);
  });
}

let internalId = 1_000_000_000;

async function handle(cmd) {
  try {
    await ready;
  } catch (e) {
    write({ type: "error", id: cmd.id, code: "bad_request", message: `browser unavailable: ${e.message}` });
    return;
  }
  switch (cmd.type) {
    case "configure": {
      // A fresh, empty store per configure (ADAPTERS.md): a new IndexedDB name.
      const setupCmd = { ...cmd, store: `case-${process.pid}-${++storeSeq}` };
      lastSetup = setupCmd;
      if (storeSeq > 1) {
        // The previous client first (its events flushed), then a page on a new site.
        await ask({ type: "close", id: internalId++ });
        pageUrl = await nextOrigin();
        await load();
      }
      toPage(setupCmd);
      return;
    }
    case "restart": {
      if (!lastSetup) {
        write({ type: "error", id: cmd.id, code: "closed", message: "not configured" });
        return;
      }
      // As if the tab died: reload over the same storage, then the same configuration.
      const got = await ask({ type: "setup", id: internalId++ });
      await load();
      const r = await ask({ type: "rebuild", id: internalId++, setup: got.setup });
      write(r.type === "ok" ? { type: "ok", id: cmd.id } : { ...r, id: cmd.id });
      return;
    }
    case "shutdown": {
      await ask({ type: "close", id: internalId++ }).catch(() => {});
      write({ type: "ok", id: cmd.id });
      await finish();
      return;
    }
    default:
      toPage(cmd);
  }
}

async function finish() {
  try {
    await context?.close();
  } catch {}
  lease?.destroy();
  for (const s of servers) s.close();
  process.exit(0);
}

// ---- stdin: length-prefixed commands, handled one after the other ----
let buf = Buffer.alloc(0);
let chain = Promise.resolve();
process.stdin.on("data", (chunk) => {
  buf = Buffer.concat([buf, chunk]);
  while (buf.length >= 4) {
    const n = buf.readUInt32BE(0);
    if (buf.length < 4 + n) break;
    const body = buf.subarray(4, 4 + n);
    buf = buf.subarray(4 + n);
    let cmd;
    try {
      cmd = JSON.parse(body.toString("utf8"));
    } catch {
      write({ type: "error", id: 0, code: "bad_command", message: "not JSON" });
      continue;
    }
    log(`command ${cmd.type} ${cmd.id}`);
    chain = chain.then(() => handle(cmd)).catch((e) => log(`command failed: ${e.message}`));
  }
});
process.stdin.on("end", () => {
  chain.then(finish, finish);
});
