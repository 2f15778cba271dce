#!/usr/bin/env node
// The example's test: the chat page in headless Chromium against the reference server
// (target/release/tether-server). It sends messages, restarts the server while the page is
// open (messages typed meanwhile wait in the outbox), checks that the page showed the state
// changes and shows every message exactly once, and saves a screenshot (out/screenshot.png).
//
//   cargo build --release -p tether-server && ./wasm/build.sh && (cd examples/browser && npm install && node test.mjs)
import { chromium } from "playwright-core";
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { createServer as netServer } from "node:net";
import { mkdirSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..");
const serverBin = process.env.TETHER_SERVER ?? join(root, "target", "release", "tether-server");
let failures = 0;
let passed = 0;
const check = (ok, what) => {
  console.log(`${ok ? "ok" : "FAIL"} - ${what}`);
  if (ok) passed++;
  else failures++;
};

async function freePort() {
  const s = netServer();
  await new Promise((r) => s.listen(0, "127.0.0.1", r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

function startServer(port) {
  const p = spawn(serverBin, ["--listen", `127.0.0.1:${port}`, "--heartbeat-ms", "1000"], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  return p;
}
async function stopServer(p) {
  if (p.exitCode !== null) return;
  const gone = new Promise((r) => p.once("exit", r));
  p.kill("SIGTERM");
  await gone;
}

// The page and the package, from loopback (another origin than the server: CORS).
const TYPES = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm" };
const web = createServer(async (req, res) => {
  const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname)).replace(/^(\.\.[/\\])+/, "");
  const file = join(here, path === "/" ? "index.html" : path);
  try {
    const body = await readFile(file);
    res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" });
    res.end(body);
  } catch {
    res.writeHead(404);
    res.end();
  }
});
await new Promise((r) => web.listen(0, "127.0.0.1", r));

const port = await freePort();
let server = startServer(port);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const outDir = join(here, "out");
mkdirSync(outDir, { recursive: true });
try {
  const page = await browser.newPage({ viewport: { width: 900, height: 800 } });
  page.on("pageerror", (e) => console.error(`page error: ${e.message}`));
  const endpoint = `http://127.0.0.1:${port}/tether`;
  await page.goto(`http://127.0.0.1:${web.address().port}/?endpoint=${encodeURIComponent(endpoint)}`);
  const state = () => page.locator("#state").getAttribute("data-name");
  const waitState = (name, timeout = 15000) =>
    page.waitForFunction((n) => document.getElementById("state").dataset.name === n, name, { timeout });
  const send = async (text) => {
    await page.fill("#text", text);
    await page.press("#text", "Enter");
  };
  const texts = () => page.$$eval("#messages li", (lis) => lis.map((li) => li.lastChild.textContent));
  const waitTexts = (n) =>
    page.waitForFunction((k) => document.querySelectorAll("#messages li").length >= k, n, { timeout: 15000 });

  await waitState("connected");
  check(true, "the page connected");
  for (const t of ["hello", "from", "the browser"]) await send(t);
  await waitTexts(3);
  check((await texts()).join("|") === "hello|from|the browser", "three messages shown once, in order");

  // The server goes away while the page is open.
  await stopServer(server);
  await waitState("reconnecting");
  check(true, "the page shows reconnecting while the server is down");
  await send("sent while");
  await send("the server was down");
  await page.waitForFunction(() => /2 waiting/.test(document.getElementById("pending").textContent), null, {
    timeout: 5000,
  });
  check(true, "two messages wait in the outbox");

  server = startServer(port);
  await waitState("connected", 20000);
  check(true, "the page reconnected after the restart");
  await waitTexts(5);
  await page.waitForTimeout(500);
  const all = await texts();
  const once = ["hello", "from", "the browser", "sent while", "the server was down"].every(
    (t) => all.filter((x) => x === t).length === 1,
  );
  check(once && all.length === 5, `every message exactly once (${all.join(" | ")})`);
  const log = await page.$$eval("#log li", (lis) => lis.map((li) => li.textContent));
  check(log.some((l) => l.includes("connected → reconnecting")), "the log shows connected → reconnecting");
  check(log.some((l) => l.includes("connecting → connected")), "the log shows the reconnect");
  check((await state()) === "connected", "connected at the end");
  const shot = join(outDir, "screenshot.png");
  await page.screenshot({ path: shot, fullPage: true });
  console.log(`screenshot: ${shot}`);
} catch (e) {
  check(false, `unexpected: ${e.message}`);
} finally {
  await browser.close();
  await stopServer(server);
  web.close();
}
console.log(`${passed} passed, ${failures} failed`);
process.exit(failures === 0 ? 0 : 1);
