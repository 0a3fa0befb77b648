#!/usr/bin/env python3
"""Fails when the top-level modules of a Rust crate import each other in a circle.

A module is a file or folder directly under the source directory (`store/s3.rs` counts as `store`);
an edge is a `crate::` (or `super::` reaching the crate root) path in code that is not under
`#[cfg(test)]`. Comments and string literals are ignored. Prints each circle with the line that
makes every step of it, and exits 1; exits 0 when the graph has no circle.

Usage: module_circles.py [SRC_DIR]   (default: src)
"""

import re
import sys
from pathlib import Path

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
ROOTS = ("lib.rs", "main.rs")


def blank(text, start, end):
    """Replaces text[start:end] with spaces, keeping newlines so line numbers hold."""
    return text[:start] + re.sub(r"[^\n]", " ", text[start:end]) + text[end:]


RAW_STRING = re.compile(r'b?r(#*)"')
CHAR = re.compile(r"b?'(\\.[^']*|[^\\'])'")


def strip_comments_and_strings(text):
    """Blanks comments, string, byte-string, raw-string and char literals (lifetimes are kept)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        after_word = i > 0 and (text[i - 1].isalnum() or text[i - 1] == "_")
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
        elif not after_word and (m := RAW_STRING.match(text, i)):
            close = '"' + m.group(1)
            j = text.find(close, m.end())
            j = n if j < 0 else j + len(close)
        elif c == '"' or (not after_word and text.startswith('b"', i)):
            j = i + (2 if c == "b" else 1)
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j += 1
        elif not after_word and (m := CHAR.match(text, i)):
            j = m.end()
        else:
            out.append(c)
            i += 1
            continue
        out.append(re.sub(r"[^\n]", " ", text[i:j]))
        i = j
    return "".join(out)


def strip_test_items(text):
    """Blanks each item under `#[cfg(test)]`: up to its first `;` or its closing brace."""
    while m := re.search(r"#\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]", text):
        i, depth = m.end(), 0
        while i < len(text):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    break
            elif text[i] == ";" and depth == 0:
                break
            i += 1
        text = blank(text, m.start(), i + 1)
    return text


def first_names(group):
    """The first name of each path in a `{a, b::c, d::{e}}` use group (without its braces)."""
    names, depth, start = [], 0, True
    for tok in re.findall(rf"{IDENT}|[{{}},]|::", group):
        if tok == "{":
            depth += 1
        elif tok == "}":
            depth -= 1
        elif tok == ",":
            start = depth == 0
        elif start and depth == 0 and tok != "::":
            names.append(tok)
            start = False
    return names


def group_at(text, i):
    """The text inside the brace group opening at text[i], and where it ends."""
    depth = 0
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1 : j], j
    return text[i + 1 :], len(text)


def references(code, path):
    """(line, module) for each reference to a top-level module in `code`, the file at `path`
    (module path as a list: ["store", "s3"] for store/s3.rs, ["store"] for store/mod.rs)."""
    found = []
    for m in re.finditer(r"(?<![\w$])(crate\s*::\s*|(?:super\s*::\s*)+)", code):
        head = m.group(1)
        # `super::` k times from a file at depth d reaches the crate root when k == d.
        if not head.startswith("crate") and head.count("super") != len(path):
            continue
        rest = code[m.end() :]
        lead = len(rest) - len(rest.lstrip())
        if rest[lead : lead + 1] == "{":
            names = first_names(group_at(rest, lead)[0])
        else:
            name = re.match(IDENT, rest[lead:])
            names = [name.group(0)] if name else []
        line = code.count("\n", 0, m.start()) + 1
        found += [(line, name) for name in names]
    return found


def module_path(src, file):
    parts = list(file.relative_to(src).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "mod" else parts


def graph(src):
    """{module: {imported module: (file, line) of its first reference}} for the crate at `src`."""
    src = Path(src)
    modules = {p.stem for p in src.glob("*.rs") if p.name not in ROOTS}
    modules |= {p.name for p in src.iterdir() if p.is_dir()}
    edges = {m: {} for m in modules}
    for file in sorted(src.rglob("*.rs")):
        path = module_path(src, file)
        if file.parent == src and file.name in ROOTS:
            continue
        code = strip_test_items(strip_comments_and_strings(file.read_text(encoding="utf-8")))
        for line, name in references(code, path):
            if name in modules and name != path[0]:
                edges[path[0]].setdefault(name, (file, line))
    return edges


def circles(edges):
    """The strongly connected components with more than one module, each as a shortest circle
    through its first module (in name order)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    result = []
    for component in sorted(found, key=sorted):
        start = min(component)
        previous, queue = {start: None}, [start]
        for v in queue:
            for w in sorted(edges[v]):
                if w == start:
                    cycle = [v]
                    while previous[cycle[-1]] is not None:
                        cycle.append(previous[cycle[-1]])
                    result.append((sorted(component), cycle[::-1] + [start]))
                    break
                if w in component and w not in previous:
                    previous[w] = v
                    queue.append(w)
            else:
                continue
            break
    return result


def main(argv):
    src = Path(argv[1] if len(argv) > 1 else "src")
    edges = graph(src)
    found = circles(edges)
    for component, cycle in found:
        print(f"import circle among {{{', '.join(component)}}}: {' -> '.join(cycle)}")
        for a, b in zip(cycle, cycle[1:]):
            file, line = edges[a][b]
            print(f"  {a} -> {b}  ({file}:{line})")
    if found:
        print("move what one side needs to the lower module so the imports go one way")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
