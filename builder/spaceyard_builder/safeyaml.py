"""The one parser for YAML written by users (README front matter, ``/api/validate-yaml``).

Contract of :func:`load`: parse a single YAML document with PyYAML's safe constructors and return plain
JSON values (dict with string keys, list, str, int, finite float, bool, None), or raise
:class:`YamlRefused` (a ``yaml.YAMLError``) saying which bound was hit. Bounds (:class:`YamlLimits`):

* the text is at most ``max_bytes`` bytes (UTF-8) — checked before parsing;
* nesting at most ``max_depth`` levels (no ``RecursionError``);
* at most ``max_aliases`` alias uses (``*anchor``), and the document *as expanded* (every alias counted
  as a copy of what it names) at most ``max_nodes`` nodes — a 449-byte "billion laughs" is refused
  before anything is built, so nothing downstream (the database, ``space_info`` JSON, pages) ever sees
  the expansion;
* the result, as JSON, at most ``max_json_bytes``.

Timestamps stay the strings the user wrote (as the Hub's parser hands them to JSON); ``!!binary``,
``!!set`` and non-finite floats are refused. Parsing is pure-Python and CPU-bound: callers on the
event loop run it in a thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

MAX_BYTES = 64 * 1024


class YamlRefused(yaml.YAMLError):
    """The YAML hit one of the bounds (or holds a value JSON cannot carry)."""


@dataclass(frozen=True)
class YamlLimits:
    max_bytes: int = MAX_BYTES
    max_depth: int = 50
    max_aliases: int = 100
    max_nodes: int = 20_000
    max_json_bytes: int = 4 * MAX_BYTES


class _Loader(yaml.SafeLoader):
    """SafeLoader that counts depth and aliases while composing, and keeps timestamps as text."""

    limits = YamlLimits()

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > self.limits.max_aliases:
                raise YamlRefused(f"too many aliases (more than {self.limits.max_aliases})")
        self._depth += 1
        try:
            if self._depth > self.limits.max_depth:
                raise YamlRefused(f"nested deeper than {self.limits.max_depth} levels")
            return super().compose_node(parent, index)  # type: ignore[no-any-return]
        finally:
            self._depth -= 1


# Timestamps are strings (remove the implicit resolver), !!binary / !!set are refused.
_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _refuse(tag: str) -> Any:
    def construct(loader: yaml.SafeLoader, node: Node) -> Any:
        raise YamlRefused(f"{tag} values are not supported")

    return construct


for _tag in ("tag:yaml.org,2002:binary", "tag:yaml.org,2002:set"):
    _Loader.add_constructor(_tag, _refuse(_tag.rsplit(":", 1)[-1]))


def _expanded_size(root: Node, limit: int) -> int:
    """Nodes in the document with every alias expanded, memoized per node (linear in the graph)."""
    sizes: dict[int, int] = {}
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in sizes:
            continue
        children: list[Node] = []
        if isinstance(node, SequenceNode):
            children = list(node.value)
        elif isinstance(node, MappingNode):
            children = [n for pair in node.value for n in pair]
        if not done:
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
            continue
        size = 1 + sum(sizes.get(id(c), 1) for c in children)
        if size > limit:
            raise YamlRefused(f"the document expands to more than {limit} nodes (aliases)")
        sizes[id(node)] = size
    return sizes[id(root)]


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k) if not isinstance(k, str) else k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise YamlRefused("numbers must be finite (no .nan or .inf)")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise YamlRefused(f"unsupported value of type {type(value).__name__}")


def load(text: str, limits: YamlLimits | None = None) -> Any:
    """Parse one YAML document within ``limits`` (module docstring); None for an empty document."""
    limits = limits or YamlLimits()
    size = len(text.encode("utf-8", errors="replace"))
    if size > limits.max_bytes:
        raise YamlRefused(f"the YAML is {size} bytes, more than the limit of {limits.max_bytes}")
    loader_cls = type("_BoundLoader", (_Loader,), {"limits": limits})
    loader = loader_cls(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, limits.max_nodes)
        data = loader.construct_document(node)
    except RecursionError as exc:
        raise YamlRefused(f"nested deeper than {limits.max_depth} levels") from exc
    finally:
        loader.dispose()
    result = _jsonable(data)
    encoded = len(json.dumps(result, ensure_ascii=False).encode())
    if encoded > limits.max_json_bytes:
        raise YamlRefused(f"the parsed YAML is {encoded} bytes as JSON, more than {limits.max_json_bytes}")
    return result
