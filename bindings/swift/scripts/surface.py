#!/usr/bin/env python3
"""Extracts the public surface of the generated Swift bindings (TetherFFI.swift): every
public/open declaration a Swift app can use (types, cases, members, protocol requirements),
one normalised line each, without bodies, doc comments or the FfiConverter plumbing.

    surface.py TetherFFI.swift            print the surface
    surface.py TetherFFI.swift --check F  compare with the committed snapshot F (exit 1 on change)
    surface.py TetherFFI.swift --update F rewrite the snapshot
    surface.py TetherFFI.swift --layer L  check that every generated API the hand-written
                                          layer L calls (`x.name(label:`, `.Case(`) exists
    surface.py TetherFFI.swift --names L PYDIR LIB
                                          check that the generated `Cause` has a case for every
                                          cause of the engine and no other, and that the layer
                                          L's `ErrorCode` lists the engine's ERR-1 codes in
                                          order; the engine's lists come from the cdylib LIB
                                          through the generated Python module in PYDIR
"""
import re
import sys

DECL = re.compile(r"^(public|open)\s|^(case|func|var|init|static func|associatedtype)\b")
HIDDEN = re.compile(r"\b(FfiConverter\w*|uniffi\w*|NoHandle|UniffiInternal\w*)\b")


def strip_noise(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)  # doc comments
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)  # string literals (braces inside)
    return text


def surface(text):
    lines = strip_noise(text).splitlines()
    out = []
    stack = []  # for each open brace: (kind, visible)
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line or line.startswith("#") or line.startswith("@"):
            continue
        # `public` alone on its line modifies the next one.
        while line in ("public", "open") and i < len(lines):
            line += " " + lines[i].strip()
            i += 1
        # Join a declaration whose parentheses continue on the next lines.
        while line.count("(") > line.count(")") and i < len(lines):
            line += " " + lines[i].strip()
            i += 1
        depth_visible = all(v for _, v in stack)
        parent = stack[-1][0] if stack else "file"
        head = line.split("{", 1)[0].strip()
        is_decl = bool(DECL.match(head)) and not HIDDEN.search(head)
        in_protocol = parent == "protocol"
        in_enum = parent == "enum"
        visible_decl = depth_visible and is_decl and (
            head.startswith(("public", "open"))
            or (in_protocol and head.startswith(("func", "var", "init", "associatedtype", "static func")))
            or (in_enum and head.startswith("case"))
        )
        if visible_decl:
            sig = re.sub(r"\s+", " ", head)
            sig = re.sub(r"\s*\(\s*", "(", sig)
            sig = re.sub(r"\s*\)", ")", sig)
            sig = re.sub(r"\)(async|throws)", r") \1", sig)
            sig = re.sub(r"\s*->\s*", " -> ", sig).strip()
            out.append("  " * len([1 for _ in stack]) + sig)
        opens, closes = line.count("{"), line.count("}")
        kind = "other"
        m = re.search(r"\b(protocol|enum|struct|class|extension)\b", head)
        if m and is_decl or head.startswith("extension"):
            kind = m.group(1) if m else "extension"
        for n in range(opens):
            stack.append((kind if n == 0 else "other", visible_decl if n == 0 else False))
        for _ in range(closes):
            if stack:
                stack.pop()
    return out


def layer_refs(layer_text, decls):
    """Calls and cases the layer uses that the generated surface does not declare."""
    declared = set()
    for d in decls:
        for m in re.finditer(r"\b(?:func|case)\s+(\w+)\(([^)]*)\)?", d):
            labels = [a.split(":")[0].strip().split(" ")[-1] for a in m.group(2).split(",") if ":" in a]
            declared.add((m.group(1), labels[0] if labels else ""))
        for m in re.finditer(r"\binit\((\w+)[ :]", d):
            declared.add(("init", m.group(1)))
    code = strip_noise(layer_text)
    missing = []
    for m in re.finditer(r"\b(ffi|builder|subscription|watcher)\.(\w+)\((\w+)?:?", code):
        key = (m.group(2), m.group(3) or "")
        if key not in declared:
            missing.append(f"{m.group(1)}.{m.group(2)}({m.group(3) or ''}:)")
    for m in re.finditer(r"ClientBuilder\((\w+):", code):
        if ("init", m.group(1)) not in declared:
            missing.append(f"ClientBuilder({m.group(1)}:)")
    for m in re.finditer(r"case let \.(\w+)\(|, let \.(\w+)\(", code):
        name = m.group(1) or m.group(2)
        if not any(n == name for n, _ in declared):
            missing.append(f".{name}(")
    return sorted(set(missing))


def snake(name):
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def engine_lists(pydir, lib):
    """`cause_names()` and `error_codes()` of the engine, called through the cdylib."""
    import importlib
    import os
    import shutil
    import tempfile
    with tempfile.TemporaryDirectory(prefix="tether-swift-names-") as d:
        shutil.copy(os.path.join(pydir, "tether_ffi.py"), d)
        os.symlink(os.path.abspath(lib), os.path.join(d, os.path.basename(lib)))
        sys.path.insert(0, d)
        try:
            ffi = importlib.import_module("tether_ffi")
            return list(ffi.cause_names()), list(ffi.error_codes())
        finally:
            sys.path.remove(d)


def names_check(decls, layer_text, causes, codes):
    """Problems between the generated `Cause`, the layer's `ErrorCode` and the engine's lists."""
    problems = []
    cases, inside = [], False
    for d in decls:
        if not d.startswith(" "):
            inside = d.startswith("public enum Cause:")
        elif inside and d.startswith("  case "):
            cases.append(snake(re.match(r"\s*case (\w+)", d).group(1)))
    generated = sorted(c for c in cases if c != "other")
    if generated != sorted(causes):
        problems.append(f"generated Cause cases {generated} differ from the engine's causes {sorted(causes)}: "
                        f"missing {sorted(set(causes) - set(generated))}, extra {sorted(set(generated) - set(causes))}")
    m = re.search(r"public enum ErrorCode\b[^{]*\{(.*?)\n\}", layer_text, flags=re.S)
    layer = re.findall(r'case \w+ = "(\w+)"', m.group(1)) if m else []
    if layer != codes:
        problems.append(f"the layer's ErrorCode {layer} differs from the engine's ERR-1 codes {codes}")
    return problems, len(generated), len(layer)


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    got = surface(open(argv[1], encoding="utf-8").read())
    text = "\n".join(got) + "\n"
    if len(argv) == 4 and argv[2] == "--update":
        open(argv[3], "w", encoding="utf-8").write(text)
        print(f"wrote {argv[3]} ({len(got)} declarations)")
    elif len(argv) == 4 and argv[2] == "--layer":
        missing = layer_refs(open(argv[3], encoding="utf-8").read(), got)
        if missing:
            print(f"{argv[3]} calls what the generated bindings do not declare: {', '.join(missing)}")
            return 1
        print(f"swift layer: every generated API {argv[3]} calls exists")
        return 0
    elif len(argv) == 6 and argv[2] == "--names":
        causes, codes = engine_lists(argv[4], argv[5])
        problems, ncauses, ncodes = names_check(got, open(argv[3], encoding="utf-8").read(), causes, codes)
        for p in problems:
            print(p)
        if problems:
            return 1
        print(f"swift names: the generated Cause has the engine's {ncauses} causes, "
              f"{argv[3]}'s ErrorCode its {ncodes} ERR-1 codes")
        return 0
    elif len(argv) == 4 and argv[2] == "--check":
        want = open(argv[3], encoding="utf-8").read().splitlines()
        if want == got:
            print(f"swift surface: {len(got)} public declarations, equal to {argv[3]}")
            return 0
        import difflib
        sys.stdout.writelines(difflib.unified_diff([w + "\n" for w in want], [g + "\n" for g in got],
                                                   argv[3], "generated"))
        print(f"\nThe generated Swift surface changed. If that is intended, run "
              f"bindings/swift/check-surface.sh --update and commit {argv[3]}.")
        return 1
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
