#!/usr/bin/env node
// The public declarations (dist/*.d.ts, not the wasm-bindgen glue under dist/wasm) must not
// use `any`: comments are ignored, every type position is checked.
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const dist = join(dirname(fileURLToPath(import.meta.url)), "..", "dist");
let bad = 0;
for (const f of readdirSync(dist).filter((f) => f.endsWith(".d.ts"))) {
  const code = readFileSync(join(dist, f), "utf8")
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .replace(/\/\/.*$/gm, "");
  for (const [i, line] of code.split("\n").entries()) {
    if (/\bany\b/.test(line)) {
      console.error(`${f}:${i + 1}: ${line.trim()}`);
      bad++;
    }
  }
}
if (bad > 0) {
  console.error(`no-any: ${bad} use(s) of \`any\` in the public declarations`);
  process.exit(1);
}
console.log("no-any: the public declarations use no `any`");
