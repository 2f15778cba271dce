// The Chromium keeper: one headless Chromium shared by the adapter processes of a conformance
// run (one adapter per case; a fresh browser context per case), so no case pays for a browser
// start. Started detached by the first adapter (browser.mjs); it writes its endpoint to a state
// file and exits, closing Chromium, once no adapter has held a lease for IDLE_MS.
//
// Leases: every adapter keeps a TCP connection to the keeper's lease port while it runs.
import { chromium } from "playwright-core";
import { createServer } from "node:net";
import { renameSync, rmSync, writeFileSync } from "node:fs";

const [stateFile, executablePath = "/usr/bin/chromium"] = process.argv.slice(2);
if (!stateFile) {
  console.error("usage: keeper.mjs STATE_FILE [CHROMIUM]");
  process.exit(2);
}
const IDLE_MS = Number(process.env.TETHER_BROWSER_IDLE_MS ?? 15000);

const server = await chromium.launchServer({
  executablePath,
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
  ],
});

let leases = 0;
let idleTimer;
const armIdle = () => {
  clearTimeout(idleTimer);
  idleTimer = setTimeout(stop, IDLE_MS);
};
const leaseServer = createServer((sock) => {
  leases += 1;
  clearTimeout(idleTimer);
  sock.on("error", () => {});
  sock.on("close", () => {
    leases -= 1;
    if (leases === 0) armIdle();
  });
});
await new Promise((r) => leaseServer.listen(0, "127.0.0.1", r));

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  try {
    rmSync(stateFile, { force: true });
  } catch {}
  leaseServer.close();
  await server.close().catch(() => {});
  process.exit(0);
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
server.process().on("exit", () => {
  // Chromium died: the state is stale, let the next adapter start a new keeper.
  stop();
});

const tmp = `${stateFile}.${process.pid}`;
writeFileSync(
  tmp,
  JSON.stringify({ pid: process.pid, wsEndpoint: server.wsEndpoint(), leasePort: leaseServer.address().port }),
);
renameSync(tmp, stateFile);
armIdle();
