#!/usr/bin/env node
// The size of @tether/browser as a page loads it: the wasm module plus every JavaScript file
// of the package (the wasm-bindgen glue, its snippets and the TypeScript API), raw, gzip -9
// and brotli (quality 11). Writes wasm/size-report.json; with --check, fails when the gzip
// total exceeds wasm/size-budget.json (growth must be a deliberate change of the budget).
import { brotliCompressSync, constants, gzipSync } from "node:zlib";
import { readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "npm", "dist");

function files(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? files(p) : [p];
  });
}

const shipped = files(dist).filter((p) => p.endsWith(".js") || p.endsWith(".wasm")).sort();
if (shipped.length === 0) {
  console.error(`size.mjs: nothing built in ${dist} (run wasm/build.sh)`);
  process.exit(1);
}
const measure = (bytes) => ({
  raw: bytes.length,
  gzip: gzipSync(bytes, { level: 9 }).length,
  brotli: brotliCompressSync(bytes, {
    params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: bytes.length },
  }).length,
});

const rows = shipped.map((p) => ({ file: relative(dist, p), ...measure(readFileSync(p)) }));
const sum = (pick) => {
  const part = rows.filter(pick);
  return {
    raw: part.reduce((a, r) => a + r.raw, 0),
    gzip: part.reduce((a, r) => a + r.gzip, 0),
    brotli: part.reduce((a, r) => a + r.brotli, 0),
  };
};
const report = {
  files: rows,
  wasm: sum((r) => r.file.endsWith(".wasm")),
  js: sum((r) => r.file.endsWith(".js")),
  total: sum(() => true),
};
writeFileSync(join(here, "size-report.json"), JSON.stringify(report, null, 2) + "\n");

const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;
const line = (name, s) =>
  `${name.padEnd(34)} ${String(s.raw).padStart(8)} B  gzip ${kib(s.gzip).padStart(10)}  brotli ${kib(s.brotli).padStart(10)}`;
for (const r of rows) console.log(line(r.file, r));
console.log(line("wasm", report.wasm));
console.log(line("js (glue + API)", report.js));
console.log(line("total", report.total));

if (process.argv.includes("--check")) {
  const budget = JSON.parse(readFileSync(join(here, "size-budget.json"), "utf8"));
  const limit = budget.total_gzip_bytes;
  if (!Number.isInteger(limit) || limit <= 0) {
    console.error("size.mjs: size-budget.json needs a positive integer total_gzip_bytes");
    process.exit(1);
  }
  if (report.total.gzip > limit) {
    console.error(
      `size.mjs: FAIL: ${report.total.gzip} bytes gzip exceed the budget of ${limit} (wasm/size-budget.json); ` +
        "shrink it, or raise the budget deliberately in the same commit as the growth",
    );
    process.exit(1);
  }
  console.log(`size budget: ${report.total.gzip} of ${limit} bytes gzip (${((100 * report.total.gzip) / limit).toFixed(1)} %)`);
}
