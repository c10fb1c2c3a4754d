"""lockstep: trustworthy CI for ML repositories that use DVC and MLflow."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lockstep")
except PackageNotFoundError:  # run from the source tree (the setup action's .pth): pyproject.toml says
    import re
    from pathlib import Path

    _pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    _found = re.search(r'^version = "([^"]+)"', _pyproject.read_text(encoding="utf-8"), re.M) if _pyproject.is_file() else None
    __version__ = _found.group(1) if _found else "0.0.0+unknown"
