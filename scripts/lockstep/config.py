"""`lockstep.yaml`: loading, validation against the shipped JSON Schema, and defaults.

Errors name the file, the line and the key, and say what is expected, e.g.

    lockstep.yaml:7: gates.accuracy.direction: 'up' is not one of ['higher', 'lower']
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from . import safeload
from .errors import ConfigError

CONFIG_NAME = "lockstep.yaml"
# lockstep.yaml is a few dozen lines: these bounds refuse an alias bomb or a huge file at once
MAX_CONFIG_BYTES = 1_000_000
MAX_CONFIG_NODES = 20_000
MAX_CONFIG_DEPTH = 32


@cache
def schema() -> dict[str, Any]:
    text = resources.files("lockstep").joinpath("schema/lockstep.schema.json").read_text("utf-8")
    return json.loads(text)


# --- YAML with line numbers ---------------------------------------------------------------------


class _Located:
    """Python values built from a YAML node tree, with the line of every key path."""

    def __init__(self) -> None:
        self.lines: dict[tuple[str | int, ...], int] = {}

    def build(self, node: yaml.Node, path: tuple[str | int, ...], source: str) -> Any:
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise ConfigError(
                        f"{source}:{key_node.start_mark.line + 1}: keys must be plain strings",
                        file=source,
                        line=key_node.start_mark.line + 1,
                    )
                key = str(key_node.value)
                if key in result:
                    line = key_node.start_mark.line + 1
                    raise ConfigError(
                        f"{source}:{line}: {_dotted(path + (key,))}: duplicate key",
                        hint="each key may appear once; remove one of them",
                        file=source,
                        line=line,
                    )
                self.lines[path + (key,)] = key_node.start_mark.line + 1
                result[key] = self.build(value_node, path + (key,), source)
                self.lines[path + (key,)] = key_node.start_mark.line + 1
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (index,), source) for index, item in enumerate(node.value)]
        # Scalars: the composer already resolved the tag (int, float, bool, null) with the safe
        # loader's rules; construct the value the same way safe_load would.
        return safeload.construct_scalar(node, source)

    def line_of(self, path: tuple[str | int, ...]) -> int:
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path, 1)


def _dotted(path: tuple[str | int, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def parse_yaml_located(text: str, source: str) -> tuple[Any, _Located]:
    """Parse lockstep.yaml within bounds (size, nesting, alias expansion): errors are ConfigError."""
    located = _Located()
    try:
        node = safeload.compose_yaml(
            text, source, max_bytes=MAX_CONFIG_BYTES, max_nodes=MAX_CONFIG_NODES, max_depth=MAX_CONFIG_DEPTH
        )
        if node is None:
            return None, located
        return located.build(node, (), source), located
    except safeload.LoadError as exc:
        syntax = exc.reason.startswith("not valid")
        raise ConfigError(
            str(exc),
            hint=(
                "fix the YAML syntax (indentation, quotes, colons) at that line"
                if syntax
                else f"{CONFIG_NAME} is a small file: write it out without anchors and aliases"
            ),
            file=source,
            line=exc.line,
        ) from None


# --- the typed config ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Gate:
    metric: str
    direction: str = "higher"
    min: float | None = None
    max: float | None = None
    max_regression: float | None = None
    max_regression_relative: float | None = None
    required: bool = True


@dataclass(frozen=True)
class Config:
    source: str
    model_name: str | None = None
    model_path: str | None = None
    model_stage: str | None = None
    model_artifact: str = "model"
    evaluation_stages: tuple[str, ...] | None = None
    tolerance_absolute: float = 1e-9
    tolerance_relative: float = 0.0
    rebuild_stages: tuple[str, ...] | None = None
    rebuild_skip_stages: tuple[str, ...] = ()
    metrics_files: tuple[str, ...] | None = None
    gates: tuple[Gate, ...] = ()
    experiment: str | None = None
    alias: str = "candidate"
    promote_to: str | None = None
    author_name: str = "github-actions[bot]"
    author_email: str = "41898282+github-actions[bot]@users.noreply.github.com"
    max_attempts: int = 5
    env: dict[str, str] = field(default_factory=dict)
    deterministic: bool = True
    data: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)  # the file as validated
    lines: dict[tuple[str | int, ...], int] = field(default_factory=dict, compare=False, repr=False)

    def line_of(self, *path: str | int) -> int:
        probe = tuple(path)
        while probe and probe not in self.lines:
            probe = probe[:-1]
        return self.lines.get(probe, 1)


def _validate(data: Any, located: _Located, source: str) -> None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: (located.line_of(tuple(e.absolute_path)), e.message))
    if not errors:
        return
    first = errors[0]
    path = tuple(first.absolute_path)
    if first.validator == "additionalProperties" and isinstance(first.instance, dict):
        extra = sorted(set(first.instance) - set(first.schema.get("properties", {})))
        if extra:
            line = located.line_of(path + (extra[0],))
        else:
            line = located.line_of(path)
    else:
        line = located.line_of(path)
    message = _explain(first)
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    raise ConfigError(
        f"{source}:{line}: {_dotted(path)}: {message}{more}",
        hint="see the lockstep.yaml section of the README and scripts/lockstep/schema/lockstep.schema.json",
        file=source,
        line=line,
    )


def _explain(error: Any) -> str:
    """A jsonschema error, said the way a person fixing the file needs it."""
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, dict) else []
        names = ", ".join(repr(k) for k in extra)
        if allowed:
            return f"unknown key {names}; expected one of: {', '.join(allowed)}"
        return f"unknown key {names}"
    if error.validator == "required":
        return error.message.replace("is a required property", "is required here")
    if error.validator == "type":
        return f"{error.instance!r} is not a {error.validator_value} (expected type: {error.validator_value})"
    if error.validator == "const":
        return f"{error.instance!r} is not supported; expected {error.validator_value!r}"
    return error.message


def load(project_dir: str | Path, path: str | Path | None = None, *, required: bool = False) -> Config:
    """Load and validate lockstep.yaml. A missing file gives the defaults unless `required`."""
    project_dir = Path(project_dir)
    config_path = Path(path) if path else project_dir / CONFIG_NAME
    if not config_path.is_absolute() and path:
        config_path = project_dir / config_path
    source = _display(config_path)
    if not config_path.is_file():
        if required or path:
            raise ConfigError(
                f"{source}: file not found",
                hint=f"create {CONFIG_NAME} beside dvc.yaml (see the README's lockstep.yaml reference), or fix the `config` input",
                file=source,
            )
        return Config(source=source)
    try:
        text = config_path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{source}: not UTF-8 text", hint="save the file as UTF-8", file=source) from None
    return load_text(text, source)


def load_text(text: str, source: str) -> Config:
    """Validate and type the text of a lockstep.yaml (from disk, or from a commit)."""
    data, located = parse_yaml_located(text, source)
    if data is None:
        raise ConfigError(
            f"{source}:1: the file is empty",
            hint="start it with `version: 1`",
            file=source,
            line=1,
        )
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}:1: expected a mapping of keys at the top level, got {type(data).__name__}",
            hint="start the file with `version: 1`",
            file=source,
            line=1,
        )
    _validate(data, located, source)
    return _typed(data, located, source)


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _typed(data: dict[str, Any], located: _Located, source: str) -> Config:
    model = data.get("model", {})
    evaluation = data.get("evaluation", {})
    tolerance = evaluation.get("tolerance", {})
    registry = data.get("registry", {})
    commit = data.get("commit", {})
    gates = []
    for metric, spec in data.get("gates", {}).items():
        for key in ("min", "max", "max-regression", "max-regression-relative"):
            value = spec.get(key)
            if isinstance(value, float) and not math.isfinite(value):
                line = located.line_of(("gates", metric, key))
                raise ConfigError(
                    f"{source}:{line}: gates.{metric}.{key}: {value!r} is not a finite number",
                    hint="use a finite threshold",
                    file=source,
                    line=line,
                )
        if "min" in spec and "max" in spec and spec["min"] > spec["max"]:
            line = located.line_of(("gates", metric))
            raise ConfigError(
                f"{source}:{line}: gates.{metric}: min ({spec['min']}) is greater than max ({spec['max']})",
                hint="no value could pass this gate; swap or fix the bounds",
                file=source,
                line=line,
            )
        gates.append(
            Gate(
                metric=metric,
                direction=spec.get("direction", "higher"),
                min=spec.get("min"),
                max=spec.get("max"),
                max_regression=spec.get("max-regression"),
                max_regression_relative=spec.get("max-regression-relative"),
                required=spec.get("required", True),
            )
        )
    stages = evaluation.get("stages")
    rebuild = data.get("rebuild", {}).get("stages")
    skip = data.get("rebuild", {}).get("skip-stages")
    files = data.get("metrics", {}).get("files")
    for index, name in enumerate(files or ()):
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\", "~")) or (len(name) > 1 and name[1] == ":") or ".." in parts:
            line = located.line_of(("metrics", "files", index))
            why = "an absolute path" if ".." not in parts else "a path with `..`"
            raise ConfigError(
                f"{source}:{line}: metrics.files[{index}]: {name!r} is {why}: lockstep reads metrics only "
                "from files inside the DVC project",
                hint="give the file's path relative to the folder that holds dvc.yaml, without `..`",
                file=source,
                line=line,
            )
    return Config(
        source=source,
        model_name=model.get("name"),
        model_path=model.get("path"),
        model_stage=model.get("stage"),
        model_artifact=model.get("mlflow-artifact", "model"),
        evaluation_stages=tuple(stages) if stages else None,
        tolerance_absolute=float(tolerance.get("absolute", 1e-9)),
        tolerance_relative=float(tolerance.get("relative", 0.0)),
        rebuild_stages=tuple(rebuild) if rebuild else None,
        rebuild_skip_stages=tuple(skip or ()),
        metrics_files=tuple(files) if files else None,
        gates=tuple(gates),
        experiment=data.get("mlflow", {}).get("experiment"),
        alias=registry.get("alias", "candidate"),
        promote_to=registry.get("promote-to"),
        author_name=commit.get("author-name", "github-actions[bot]"),
        author_email=commit.get("author-email", "41898282+github-actions[bot]@users.noreply.github.com"),
        max_attempts=int(commit.get("max-attempts", 5)),
        env={str(k): _env_value(v) for k, v in (data.get("env") or {}).items()},
        deterministic=bool(evaluation.get("deterministic", True)),
        data=data,
        lines=dict(located.lines),
    )


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def proposed_changes(trusted: Config, proposed: Config) -> list[str]:
    """What a pull request changes in lockstep.yaml, key by key (`gates.accuracy.min 0.8 -> 0.5`)."""
    from .metrics import flatten

    before, after = flatten(trusted.data), flatten(proposed.data)
    changes = []
    for key in sorted(set(before) | set(after)):
        if key not in after:
            changes.append(f"{key} {before[key]!r} removed")
        elif key not in before:
            changes.append(f"{key} {after[key]!r} added")
        elif before[key] != after[key]:
            changes.append(f"{key} {before[key]!r} -> {after[key]!r}")
    return changes
