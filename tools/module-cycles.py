#!/usr/bin/env python3
"""Import circles between the crate's top-level modules.

Reads every file under src/ and records, for its top-level module (src/NAME.rs or src/NAME/...),
each other top-level module it names as `crate::NAME` (in `use` lines and paths alike; tests
inside a file count too). Prints the graph's cycles and exits 1 when there is one.

usage: python3 tools/module-cycles.py [--graph]
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
SKIP = {"main.rs", "lib.rs", "bin"}


def top_module(path):
    rel = os.path.relpath(path, ROOT)
    first = rel.split(os.sep)[0]
    return first[:-3] if first.endswith(".rs") else first


def crate_refs(text):
    refs = set()
    # `crate::name` anywhere, and `use crate::{a, b::c}` groups.
    for m in re.finditer(r"\bcrate::(\w+)", text):
        refs.add(m.group(1))
    for m in re.finditer(r"\bcrate::\{([^;]*?)\};", text, re.S):
        for part in re.split(r",", m.group(1)):
            name = part.strip().split("::")[0].strip("{} \n")
            if name:
                refs.add(name)
    return refs


def graph():
    modules = {}
    for dirpath, dirnames, filenames in os.walk(ROOT):
        for name in filenames:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, ROOT)
            if rel.split(os.sep)[0] in SKIP:
                continue
            module = top_module(path)
            text = open(path, encoding="utf-8").read()
            # `super::` at the top of a module reaches lib.rs: not an edge between modules.
            modules.setdefault(module, set()).update(crate_refs(text))
    known = set(modules)
    return {m: sorted((r for r in refs if r in known and r != m)) for m, refs in modules.items()}


def cycles(edges):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, []):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def main():
    edges = graph()
    if "--graph" in sys.argv:
        for module, targets in sorted(edges.items()):
            print(f"{module} -> {', '.join(targets) or '(nothing)'}")
    found = cycles(edges)
    if not found:
        print(f"no import circles between the {len(edges)} top-level modules")
        return 0
    for component in found:
        inside = set(component)
        print("import circle: " + ", ".join(component))
        for module in component:
            for target in edges[module]:
                if target in inside:
                    print(f"  {module} -> {target}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
