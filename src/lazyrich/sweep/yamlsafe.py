"""Read a sweep file safely: bounded size, UTF-8 with a clear error, YAML whose aliases cannot
expand into a bomb. PyYAML shares an aliased node instead of copying it, so a "billion laughs"
document loads small and explodes in whatever walks it next (validation, error messages, JSON);
the composed node graph is therefore measured *as if expanded* (memoized, linear in its distinct
nodes) and refused above `MAX_YAML_NODES`, and recursive aliases are refused outright."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..errors import LazyrichError
from .limits import MAX_FILE_BYTES, MAX_YAML_NODES
from .spec import SpecError, one_line

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def expanded_size(root: yaml.Node) -> int:
    """Nodes of the document with every alias expanded (a recursive alias raises ValueError)."""
    size: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            on_path.discard(id(node))
            size[id(node)] = 1 + sum(size[id(c)] for c in _children(node))
            continue
        if id(node) in size:
            continue
        if id(node) in on_path:
            raise ValueError("a recursive alias (an anchor used inside itself)")
        on_path.add(id(node))
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in size)
    return size[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def parse_yaml(text: str, source: str) -> Any:
    """The YAML document in `text` (safe tags only), or SpecError with one line and the position."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        try:
            n = expanded_size(node)
        except ValueError as exc:
            raise SpecError(source, [f"(yaml): {exc}; write the values out"]) from None
        if n > MAX_YAML_NODES:
            raise SpecError(source, [f"(yaml): its aliases expand to {n:.3g} nodes (> {MAX_YAML_NODES:.0e}); "
                                     "write the values out or use fewer aliases"])
        return loader.construct_document(node)
    except SpecError:
        raise
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        what = one_line(str(getattr(exc, "problem", None) or exc), 120)
        raise SpecError(source, [f"(yaml) {where}: {what}; fix the YAML syntax"]) from None
    except (ValueError, RecursionError, OverflowError) as exc:  # e.g. an integer literal of 10⁵ digits
        raise SpecError(source, [f"(yaml): cannot build a value ({one_line(str(exc), 100)}); fix the value"]) from None
    finally:
        loader.dispose()


def read_yaml(path: Path) -> Any:
    """Parse the YAML file at `path`: at most `MAX_FILE_BYTES`, UTF-8 (a BOM is allowed)."""
    source = one_line(str(path), 120)
    if path.is_dir():
        raise LazyrichError(f"sweep file {source} is a directory: give a YAML file, e.g. examples/quick.yaml")
    if not path.is_file():
        raise LazyrichError(f"sweep file {source} does not exist: check the path (examples/ holds ready sweeps)")
    with path.open("rb") as f:
        raw = f.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        raise SpecError(source, [f"(file): larger than {MAX_FILE_BYTES // 2**20} MiB; a sweep file is a few KB: "
                                 "generate values with {linspace: [a, b, k]} or {range: [start, stop]}"])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpecError(source, [f"(file): not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                                 "save the file as UTF-8"]) from None
    return parse_yaml(text, source)
