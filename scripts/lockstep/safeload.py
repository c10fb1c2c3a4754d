"""Bounded YAML, JSON, TOML and Python-params loading: the one place lockstep parses files a pull request controls.

A few hundred bytes of YAML can describe billions of nodes through anchors and aliases ("billion
laughs"), an alias can point into itself, and deeply nested YAML or JSON exhausts the recursion
of a parser or of the code that walks the result. Every reader therefore goes through here, with:

- a size cap on the text (`max_bytes`);
- a cap on the number of nodes the document would have with every alias expanded
  (`max_nodes`), counted while composing, so a bomb is refused after reading a few hundred bytes;
- a nesting cap (`max_depth`);
- no alias that refers to a node still being built (a self-referencing structure).

Errors are `LoadError`, naming the file (and the line for YAML); callers turn them into their own
error (ConfigError, ArtifactError, ...). `LoadError` is a ValueError and a yaml.YAMLError so code
written for `json.loads`/`yaml.safe_load` errors handles it unchanged.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

# Defaults for metrics and params files. PyYAML's composer is pure Python (about 20,000 nodes a
# second on a CI core), so YAML gets tighter bounds than JSON, which the C parser reads quickly.
MAX_BYTES = 10_000_000  # JSON
MAX_YAML_BYTES = 2_000_000
MAX_NODES = 50_000
MAX_DEPTH = 100


class LoadError(ValueError, yaml.YAMLError):
    """A file that could not be loaded within the bounds, or that is not valid YAML/JSON."""

    def __init__(self, message: str, *, source: str, line: int | None = None) -> None:
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {message}")
        self.reason = message
        self.source = source
        self.line = line


def _check_size(text: str | bytes, source: str, max_bytes: int) -> None:
    size = len(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    if size > max_bytes:
        raise LoadError(f"the file is {size} bytes, over the {max_bytes}-byte limit", source=source)


# --- YAML -----------------------------------------------------------------------------------------


class _BoundedLoader(yaml.SafeLoader):
    """A SafeLoader whose composer counts the expanded size of the document as it goes."""

    def __init__(self, text: str, source: str, max_nodes: int, max_depth: int) -> None:
        super().__init__(text)
        self.lockstep_source = source
        self.max_nodes = max_nodes
        self.max_depth = max_depth
        self.expanded = 0  # nodes so far, each alias counted as the size of what it refers to
        self.depth = 0
        self.sizes: dict[int, int] = {}  # id(node) -> expanded size, once the node is complete

    def _fail(self, message: str, event: yaml.Event) -> LoadError:
        line = event.start_mark.line + 1 if event.start_mark else None
        return LoadError(message, source=self.lockstep_source, line=line)

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            node = self.anchors.get(event.anchor)
            if node is not None:
                size = self.sizes.get(id(node))
                if size is None:
                    raise self._fail(f"the alias *{event.anchor} refers to a node that contains it (a recursive structure)", event)
                self.expanded += size
                if self.expanded > self.max_nodes:
                    raise self._fail(
                        f"aliases expand the document past {self.max_nodes} nodes (an alias bomb?)", event
                    )
            return super().compose_node(parent, index)
        self.depth += 1
        if self.depth > self.max_depth:
            raise self._fail(f"nested deeper than {self.max_depth} levels", event)
        before = self.expanded
        self.expanded += 1
        if self.expanded > self.max_nodes:
            raise self._fail(f"the document has more than {self.max_nodes} nodes", event)
        node = super().compose_node(parent, index)
        self.sizes[id(node)] = self.expanded - before
        self.depth -= 1
        return node


def _yaml_error(exc: yaml.YAMLError, source: str) -> LoadError:
    if isinstance(exc, yaml.reader.ReaderError):
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        return LoadError(f"not valid YAML: the character U+{code:04X} at position {exc.position} is not allowed", source=source)
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        return LoadError(f"not valid YAML: {exc.problem or exc}", source=source, line=line)
    return LoadError(f"not valid YAML: {exc}", source=source)


def compose_yaml(
    text: str, source: str, *, max_bytes: int = MAX_YAML_BYTES, max_nodes: int = MAX_NODES, max_depth: int = MAX_DEPTH
) -> yaml.Node | None:
    """The YAML node tree of a single document (None when empty), within the bounds."""
    _check_size(text, source, max_bytes)
    loader = None
    try:
        loader = _BoundedLoader(text, source, max_nodes, max_depth)  # the reader checks characters here
        return loader.get_single_node()
    except LoadError:
        raise
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source) from None
    except RecursionError:  # pragma: no cover - max_depth stops nesting long before this
        raise LoadError("nested too deeply", source=source) from None
    finally:
        if loader is not None:
            loader.dispose()


def construct_scalar(node: yaml.Node, source: str) -> Any:
    """A scalar node's value as `yaml.safe_load` builds it (int, float, bool, null, str, date)."""
    try:
        return yaml.SafeLoader("").construct_object(node, deep=True)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source) from None
    except (ValueError, OverflowError) as exc:  # e.g. a timestamp such as 2024-13-45
        raise LoadError(f"not a valid value: {exc}", source=source, line=node.start_mark.line + 1) from None


def load_yaml(
    text: str, source: str, *, max_bytes: int = MAX_YAML_BYTES, max_nodes: int = MAX_NODES, max_depth: int = MAX_DEPTH
) -> Any:
    """`yaml.safe_load`, within the bounds."""
    _check_size(text, source, max_bytes)
    loader = None
    try:
        loader = _BoundedLoader(text, source, max_nodes, max_depth)  # the reader checks characters here
        return loader.get_single_data()
    except LoadError:
        raise
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source) from None
    except (ValueError, OverflowError, TypeError) as exc:  # bad timestamps, unhashable keys
        raise LoadError(f"not a valid value: {exc}", source=source) from None
    except RecursionError:  # pragma: no cover
        raise LoadError("nested too deeply", source=source) from None
    finally:
        if loader is not None:
            loader.dispose()


# --- JSON -----------------------------------------------------------------------------------------


def load_json(text: str | bytes, source: str, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """`json.loads` (NaN and Infinity accepted, as DVC does), within the bounds."""
    _check_size(text, source, max_bytes)
    if json_depth_exceeds(text if isinstance(text, str) else text.decode("utf-8", "replace"), max_depth):
        raise LoadError(f"nested deeper than {max_depth} levels", source=source)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise LoadError(f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})", source=source, line=exc.lineno) from None
    except (ValueError, RecursionError) as exc:  # undecodable bytes; nesting is bounded above
        raise LoadError(f"not valid JSON: {exc}", source=source) from None


def load_toml(text: str | bytes, source: str, *, max_bytes: int = MAX_BYTES) -> Any:
    """A TOML params file (DVC reads `params.toml` too), within the size bound."""
    _check_size(text, source, max_bytes)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    try:
        import tomllib
    except ImportError:  # Python 3.10: DVC's own TOML library
        import tomlkit

        try:
            return tomlkit.parse(text).unwrap()
        except Exception as exc:  # noqa: BLE001 - tomlkit raises its own parse errors
            raise LoadError(f"not valid TOML: {exc}", source=source) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LoadError(f"not valid TOML: {exc}", source=source) from None
    except RecursionError:
        raise LoadError("nested too deeply", source=source) from None


def load_python_params(text: str | bytes, source: str, *, max_bytes: int = MAX_YAML_BYTES) -> Any:
    """A Python params file (DVC reads `params.py`: module-level constants, classes' attributes and
    their `__init__`'s `self.x = ...`), within the size bound, by DVC's own parser: `ast.parse` and
    `ast.literal_eval` of each value, so none of the file's code runs (a value that is not a literal
    is left out, as DVC leaves it out)."""
    _check_size(text, source, max_bytes)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    from . import dvcrepo  # the one module that talks to DVC

    try:
        return dvcrepo.parse_python_params(text, source)
    except ValueError as exc:  # DVC's ParseError included
        raise LoadError(f"not valid Python: {exc}", source=source) from None
    except (RecursionError, MemoryError, SyntaxError):  # nesting past the parser's own limits
        raise LoadError("not valid Python, or nested too deeply", source=source) from None


def json_depth_exceeds(text: str, max_depth: int) -> bool:
    """Whether brackets outside strings nest deeper than `max_depth` (before json parses them)."""
    if text.count("[") + text.count("{") <= max_depth:
        return False
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > max_depth:
                return True
        elif char in "]}":
            depth -= 1
    return False
