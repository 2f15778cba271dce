#!/usr/bin/env python3
"""Checks that every requirement ID in SPEC.md is named by at least one test or
conformance scenario, and prints the ID -> places table (--table)."""
import os, re, sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = open(os.path.join(root, "SPEC.md"), encoding="utf-8").read()
ids = re.findall(r"\*\*([A-Z]+-\d+)\*\*", spec)
if not ids:
    sys.exit("no requirement IDs found in SPEC.md")

places = {i: set() for i in ids}
test_fn = re.compile(r"fn\s+([a-z0-9_]+)\s*\(")
for dirpath, dirnames, filenames in os.walk(root):
    dirnames[:] = [d for d in dirnames if d not in ("target", "node_modules", ".git")]
    for f in filenames:
        path = os.path.join(dirpath, f)
        rel = os.path.relpath(path, root)
        if f.endswith(".rs"):
            text = open(path, encoding="utf-8", errors="replace").read()
            # Only test functions count: names after #[test]/#[tokio::test]/#[wasm_bindgen_test]/proptest.
            for m in re.finditer(r"#\[(?:tokio::|wasm_bindgen_test::)?(?:test|wasm_bindgen_test)[^\]]*\][^{]*?fn\s+([a-z0-9_]+)|proptest!\s*\{[^}]*?fn\s+([a-z0-9_]+)", text, re.S):
                name = m.group(1) or m.group(2)
                for i in ids:
                    p = i.lower().replace("-", "_")
                    if name.startswith(p + "_") or name == p or ("_" + p + "_") in name:
                        places[i].add(f"{rel}::{name}")
        elif f.endswith(".json") and "scenarios" in rel:
            text = open(path, encoding="utf-8").read()
            for i in ids:
                if re.search(r'"' + re.escape(i) + r'"', text):
                    places[i].add(rel)

missing = [i for i in ids if not places[i]]
if "--table" in sys.argv:
    for i in ids:
        print(f"{i}\t{len(places[i])}\t" + ", ".join(sorted(places[i])[:4]))
print(f"{len(ids) - len(missing)} of {len(ids)} SPEC requirements are named by a test or scenario")
if missing:
    print("not covered: " + " ".join(missing))
    sys.exit(1)
