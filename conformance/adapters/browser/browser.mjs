// Getting ready to run the client in Chromium: the package built (wasm/build.sh) and fresh,
// the adapter's node modules installed, and a connection to the shared Chromium of the
// keeper (keeper.mjs), started when none is running and replaced when a stale one is found.
import { spawn, spawnSync } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { connect as tcpConnect } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const here = dirname(fileURLToPath(import.meta.url));
export const root = join(here, "..", "..", "..");
export const dist = join(root, "wasm", "npm", "dist");
const stateDir = join(root, "target", "browser-adapter");
const stateFile = join(stateDir, "keeper.json");
const lockFile = join(stateDir, "keeper.lock");

const log = (m) => process.stderr.write(`browser-adapter: ${m}\n`);

function newest(dir, skip = new Set(["node_modules", "dist", "wasm", "target"])) {
  let t = 0;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const s = statSync(p);
    if (s.isDirectory()) {
      if (!skip.has(name)) t = Math.max(t, newest(p, skip));
    } else t = Math.max(t, s.mtimeMs);
  }
  return t;
}

/** True when the package is missing or older than its sources (engine, driver, API). */
function packageStale() {
  const wasm = join(dist, "wasm", "tether_wasm_bg.wasm");
  if (!existsSync(join(dist, "index.js")) || !existsSync(wasm)) return true;
  const built = statSync(wasm).mtimeMs;
  const sources = [
    join(root, "core", "engine", "src"),
    join(root, "wasm", "src"),
    join(root, "wasm", "npm", "src"),
  ];
  // wasm/npm/src/wasm is the build's own output: skipped by name.
  return sources.some((d) => newest(d) > built);
}

/** Build the package and install node modules when missing (output to stderr only). */
export function prepare() {
  if (!existsSync(join(here, "node_modules", "playwright-core"))) {
    log("installing playwright-core (npm ci)");
    const r = spawnSync("npm", ["ci", "--no-audit", "--no-fund", "--loglevel=error"], {
      cwd: here,
      stdio: ["ignore", 2, 2],
    });
    if (r.status !== 0) throw new Error("npm ci failed in conformance/adapters/browser");
  }
  if (packageStale()) {
    log("building the npm package (wasm/build.sh)");
    const r = spawnSync(join(root, "wasm", "build.sh"), ["--no-size-check"], { stdio: ["ignore", 2, 2] });
    if (r.status !== 0) throw new Error("wasm/build.sh failed");
  }
}

function readState() {
  try {
    return JSON.parse(readFileSync(stateFile, "utf8"));
  } catch {
    return undefined;
  }
}

/** A lease on the keeper: resolves to the socket, rejects when nobody listens. */
function lease(port) {
  return new Promise((resolve, reject) => {
    const s = tcpConnect({ port, host: "127.0.0.1" });
    s.once("connect", () => resolve(s));
    s.once("error", reject);
    s.setTimeout(2000, () => reject(new Error("lease timeout")));
  });
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function startKeeper() {
  mkdirSync(stateDir, { recursive: true });
  // One starter at a time; a lock older than 60 s is a dead starter's.
  for (;;) {
    try {
      closeSync(openSync(lockFile, "wx"));
      break;
    } catch {
      try {
        if (Date.now() - statSync(lockFile).mtimeMs > 60000) rmSync(lockFile, { force: true });
      } catch {}
      await sleep(100);
      const s = readState();
      if (s && alive(s.pid)) return;
    }
  }
  try {
    const s = readState();
    if (s && alive(s.pid)) return;
    rmSync(stateFile, { force: true });
    log("starting the shared Chromium (keeper.mjs)");
    const out = openSync(join(stateDir, "keeper.log"), "a");
    const child = spawn(process.execPath, [join(here, "keeper.mjs"), stateFile, process.env.CHROMIUM ?? "/usr/bin/chromium"], {
      detached: true,
      stdio: ["ignore", out, out],
    });
    child.unref();
    closeSync(out);
    const deadline = Date.now() + 30000;
    while (!readState()) {
      if (Date.now() > deadline) throw new Error(`the keeper did not start (see ${join(stateDir, "keeper.log")})`);
      await sleep(50);
    }
  } finally {
    rmSync(lockFile, { force: true });
  }
}

/** Connect to the shared Chromium; the lease socket must stay open while the browser is used. */
export async function connectBrowser(chromium) {
  for (let attempt = 0; attempt < 4; attempt++) {
    let s = readState();
    if (!s || !alive(s.pid)) {
      await startKeeper();
      s = readState();
      if (!s) continue;
    }
    try {
      const sock = await lease(s.leasePort);
      const browser = await chromium.connect(s.wsEndpoint, { timeout: 10000 });
      return { browser, sock };
    } catch (e) {
      // A stale keeper (its Chromium gone, or a state file left behind): replace it.
      log(`shared Chromium unreachable (${e.message}); replacing it`);
      if (alive(s.pid)) {
        try {
          process.kill(s.pid, "SIGTERM");
        } catch {}
        await sleep(300);
      }
      rmSync(stateFile, { force: true });
    }
  }
  throw new Error("could not reach a shared Chromium");
}

/** Stop the shared Chromium now (end of a test run). */
export function stopKeeper() {
  const s = readState();
  if (s && alive(s.pid)) process.kill(s.pid, "SIGTERM");
  rmSync(stateFile, { force: true });
}
