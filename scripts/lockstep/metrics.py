"""Metrics and params: reading, flattening, diffing, agreement and gates. Pure functions."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from . import safeload
from .config import Gate

Number = float


MISSING_METRIC = "required metric is missing from the PR's metrics"

def parse_file(text: str, name: str) -> dict[str, Any]:
    """Parse a metrics or params file (JSON, TOML, Python or YAML, by its suffix in any case, as DVC
    chooses) and flatten nested keys with dots."""
    suffix = name.rpartition(".")[2].lower() if "." in name.rpartition("/")[2] else ""
    if suffix == "json":
        data = safeload.load_json(text, name)  # NaN/Infinity literals are accepted, as DVC does
    elif suffix == "toml":
        data = safeload.load_toml(text, name)
    elif suffix == "py":
        data = safeload.load_python_params(text, name)  # parsed, never run
    else:
        data = safeload.load_yaml(text, name)
    return flatten(data if isinstance(data, dict) else {})


def parse_file_or_empty(text: str | None, name: str) -> dict[str, Any]:
    """`parse_file`, or {} for a file that is absent or unreadable (a side with nothing to compare)."""
    if not text:
        return {}
    try:
        return parse_file(text, name)
    except ValueError:  # safeload's LoadError: invalid YAML, JSON or TOML, or over its bounds
        return {}


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        flat: dict[str, Any] = {}
        for key, inner in value.items():
            flat.update(flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(value, list) and prefix:
        flat = {}
        for index, inner in enumerate(value):
            flat.update(flatten(inner, f"{prefix}.{index}"))
        return flat
    return {prefix: value} if prefix else {}


def as_number(value: Any) -> float | None:
    """A metric value as a float, or None when it is not a number (bools are not numbers)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    return None


# --- diffs --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delta:
    name: str
    base: Any
    new: Any

    @property
    def absolute(self) -> float | None:
        b, n = as_number(self.base), as_number(self.new)
        if b is None or n is None or not (math.isfinite(b) and math.isfinite(n)):
            return None
        return n - b

    @property
    def relative(self) -> float | None:
        b, absolute = as_number(self.base), self.absolute
        if absolute is None or b is None or b == 0:
            return None
        return absolute / abs(b)

    @property
    def changed(self) -> bool:
        return _differs(self.base, self.new)


def _differs(a: Any, b: Any) -> bool:
    na, nb = as_number(a), as_number(b)
    if na is not None and nb is not None:
        if math.isnan(na) and math.isnan(nb):
            return False
        return na != nb
    return a != b


def diff(base: Mapping[str, Any], new: Mapping[str, Any]) -> list[Delta]:
    """One row per key in either side, sorted by name; `None` marks an absent side."""
    return [Delta(name, base.get(name), new.get(name)) for name in sorted(set(base) | set(new))]


# --- agreement of recomputed metrics with committed ones ----------------------------------------


@dataclass(frozen=True)
class Disagreement:
    name: str
    committed: Any
    recomputed: Any


def disagreements(
    committed: Mapping[str, Any], recomputed: Mapping[str, Any], *, absolute: float, relative: float
) -> list[Disagreement]:
    found = []
    for name in sorted(set(committed) | set(recomputed)):
        a, b = committed.get(name), recomputed.get(name)
        na, nb = as_number(a), as_number(b)
        if na is not None and nb is not None:
            if math.isnan(na) and math.isnan(nb):
                continue
            if math.isfinite(na) and math.isfinite(nb):
                if abs(na - nb) <= max(absolute, relative * max(abs(na), abs(nb))):
                    continue
            elif na == nb:
                continue
        elif a == b:
            continue
        found.append(Disagreement(name, a, b))
    return found


# --- gates --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GateResult:
    metric: str
    passed: bool
    value: Any
    base: Any
    reasons: tuple[str, ...]  # why it failed (empty when passed)
    checks: tuple[str, ...]  # what was checked, for the report

    @property
    def status(self) -> str:
        return "pass" if self.passed else "fail"


def _fmt(value: Any) -> str:
    number = as_number(value)
    if number is None:
        return "missing" if value is None else repr(value)
    if math.isfinite(number) and number == int(number) and abs(number) < 1e15:
        return str(int(number))
    return f"{number:.6g}"


def check_gate(gate: Gate, value: Any, base: Any) -> GateResult:
    checks: list[str] = []
    reasons: list[str] = []
    number = as_number(value)
    if value is None:
        if gate.required:
            reasons.append(f"{MISSING_METRIC}: no metrics file CI read gives {gate.metric!r}. Compare the gate's name with "
                           "`dvc metrics show` (a file that holds one number is named by its path), or set "
                           "`required: false` on the gate if the metric may be absent")
        return GateResult(gate.metric, not reasons, value, base, tuple(reasons), ("present",) if gate.required else ())
    if number is None or not math.isfinite(number):
        reasons.append(f"value {_fmt(value)} is not a finite number")
        return GateResult(gate.metric, False, value, base, tuple(reasons), ("finite",))
    if gate.min is not None:
        checks.append(f">= {_fmt(gate.min)}")
        if number < gate.min:
            reasons.append(f"{_fmt(number)} is below the minimum {_fmt(gate.min)}")
    if gate.max is not None:
        checks.append(f"<= {_fmt(gate.max)}")
        if number > gate.max:
            reasons.append(f"{_fmt(number)} is above the maximum {_fmt(gate.max)}")
    base_number = as_number(base)
    if base_number is not None and math.isfinite(base_number):
        worse = (base_number - number) if gate.direction == "higher" else (number - base_number)
        if gate.max_regression is not None:
            checks.append(f"regression <= {_fmt(gate.max_regression)}")
            if worse > gate.max_regression + 1e-12:
                reasons.append(
                    f"regressed by {_fmt(worse)} vs base {_fmt(base_number)} (allowed {_fmt(gate.max_regression)})"
                )
        if gate.max_regression_relative is not None:
            checks.append(f"regression <= {gate.max_regression_relative:.2%}")
            allowed = gate.max_regression_relative * abs(base_number)
            if worse > allowed + 1e-12:
                share = worse / abs(base_number) if base_number else math.inf
                reasons.append(
                    f"regressed by {share:.2%} vs base {_fmt(base_number)} (allowed {gate.max_regression_relative:.2%})"
                )
    return GateResult(gate.metric, not reasons, value, base, tuple(reasons), tuple(checks))


def check_gates(gates: Iterable[Gate], new: Mapping[str, Any], base: Mapping[str, Any]) -> list[GateResult]:
    return [check_gate(gate, new.get(gate.metric), base.get(gate.metric)) for gate in gates]


def improved(direction: str, delta: float | None) -> bool | None:
    if delta is None or delta == 0:
        return None
    return delta > 0 if direction == "higher" else delta < 0


format_value = _fmt
