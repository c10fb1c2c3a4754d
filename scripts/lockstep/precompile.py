"""Compile, ahead of the first run, the bytecode of the packages the project's stages import.

A job with no bytecode cache (the first with a new key) compiles every module its stages import
as they import it: for scikit-learn and pandas about 1,000 modules and 2 CPU-seconds inside the
evaluation's run, on the path to the verdict. Once the project's environment is installed, the
setup action's background install runs this file, at the lowest priority, while lockstep's own
checks use the other core: it follows the imports of the scripts `dvc.yaml` names through the
environment's packages and writes each module's bytecode where Python looks for it, so the
stage's imports find it written.

Nothing of the project runs: the sources are compiled and their import statements read from the
compiled code (module and class level: a function's imports may never run), never executed. It
runs with no site packages (`python -I -S`), so no `.pth` file of the environment runs either, and
writes only inside the environment's own packages: the project's folders get no `__pycache__`
(DVC hashes the code folders a stage depends on). The files are the ones Python itself writes
(timestamp-checked, PEP 552), each replaced whole, so a stage importing a module meanwhile reads
either none or a complete one; Python checks each against its source when it imports it.

    ENVIRONMENT/bin/python -I -S precompile.py ENVIRONMENT PROJECT   (setup.sh `project-background`)
"""

from __future__ import annotations

import dis
import importlib.util
import marshal
import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

MAX_ROOTS = 200  # scripts to start from
MAX_MODULES = 20_000
SECONDS = 120.0  # a job's evaluation has long begun by then
_LOAD_CONST, _IMPORT_NAME, _EXTENDED_ARG = dis.opmap["LOAD_CONST"], dis.opmap["IMPORT_NAME"], dis.opmap["EXTENDED_ARG"]
_LOAD_SMALL_INT, _CACHE = dis.opmap.get("LOAD_SMALL_INT", -1), dis.opmap.get("CACHE", -1)  # 3.14's small ints; 3.11's inline caches
_CO_OPTIMIZED = 0x0001  # a function's code (its imports run only when it is called), not a class body
_SCRIPT = re.compile(r"(?<![\w.$/{-])([\w./-]+\.py)\b")  # `python src/evaluate.py`
_MODULE = re.compile(r"\s-m\s+([A-Za-z_][\w.]*)")  # `python -m src.train`
_SKIP_FOLDERS = frozenset({".git", ".dvc", ".venv", "venv", "env", "node_modules", "site-packages", "__pycache__"})


def roots(project: Path) -> list[Path]:
    """The scripts the stages run: what `dvc.yaml` files name (`python src/train.py`, `python -m
    src.train`), relative to the dvc.yaml's folder or the project; else every Python file of the
    project's own folders. At most MAX_ROOTS."""
    found: list[Path] = []
    for pipeline in _pipelines(project):
        text = pipeline.read_text("utf-8", errors="replace")
        for name in _SCRIPT.findall(text):
            found += [folder / name for folder in (pipeline.parent, project) if (folder / name).is_file()][:1]
        for module in _MODULE.findall(text):
            relative = Path(*module.split("."))
            for folder in (pipeline.parent, project, project / "src"):
                hits = [path for path in (folder / relative.with_suffix(".py"), folder / relative / "__main__.py") if path.is_file()]
                if hits:
                    found.append(hits[0])
                    break
    if not found:
        found = [path for path in _files(project, depth=3) if path.suffix == ".py"]
    unique = list(dict.fromkeys(path.resolve() for path in found))
    return unique[:MAX_ROOTS]


def _pipelines(project: Path) -> list[Path]:
    return [path for path in _files(project, depth=3) if path.name == "dvc.yaml"]


def _files(folder: Path, depth: int) -> Iterator[Path]:
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except OSError:
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            if depth > 0 and entry.name not in _SKIP_FOLDERS and not entry.name.startswith("."):
                yield from _files(Path(entry.path), depth - 1)
        elif entry.is_file(follow_symlinks=False):
            yield Path(entry.path)


def imports(code, module: str, package: bool) -> list[str]:
    """The absolute names a module's code imports at module and class level (`from a import b`
    gives `a` and `a.b`: b may be a submodule). Reads the instructions as `dis` does, without
    building an object for each."""
    raw, constants, names = code.co_code, code.co_consts, code.co_names
    found: list[str] = []
    loaded: list[object] = []  # the constants loaded since the last other instruction
    extended = 0
    for offset in range(0, len(raw), 2):
        op, arg = raw[offset], raw[offset + 1] | extended
        if op == _EXTENDED_ARG:
            extended = arg << 8
            continue
        extended = 0
        if op == _LOAD_CONST:
            loaded.append(constants[arg])
        elif op == _LOAD_SMALL_INT:
            loaded.append(arg)
        elif op == _IMPORT_NAME:
            level = loaded[-2] if len(loaded) >= 2 and isinstance(loaded[-2], int) else 0
            fromlist = loaded[-1] if loaded and isinstance(loaded[-1], tuple) else ()
            name = names[arg]
            if level:
                parts = module.split(".") if package else module.split(".")[:-1]
                parts = parts[: len(parts) - level + 1] if level <= len(parts) else []
                name = ".".join(parts + ([name] if name else []))
            if name:
                found.append(name)
                found += [f"{name}.{item}" for item in fromlist if isinstance(item, str) and item != "*"]
            loaded = []
        elif op != _CACHE:
            loaded = []
    for constant in constants:
        if hasattr(constant, "co_code") and not constant.co_flags & _CO_OPTIMIZED:  # a class body
            found += imports(constant, module, package)
    return found


class Compiler:
    """Follows imports from the roots through `local` folders (read, never written) and `site`
    (the environment's packages, where bytecode is written)."""

    def __init__(self, site: Path, local: list[Path], deadline: float) -> None:
        self.site = site
        self.local = local
        self.deadline = deadline
        self.seen: set[Path] = set()
        self.written = 0
        self.read = 0
        self.resolved: dict[tuple[str, Path | None], list[tuple[Path, str]]] = {}
        self.listings: dict[str, frozenset[str]] = {}

    def run(self, scripts: list[Path]) -> None:
        queue: list[tuple[Path, str, Path | None]] = [(path, "__main__", path.parent) for path in scripts]
        self.seen.update(scripts)
        while queue and len(self.seen) < MAX_MODULES and time.monotonic() < self.deadline:
            path, module, script_folder = queue.pop()
            code = self._code(path)
            if code is None:
                continue
            for name in imports(code, module, path.name == "__init__.py"):
                for found, found_module in self._resolve(name, script_folder):
                    if found not in self.seen:
                        self.seen.add(found)
                        queue.append((found, found_module, script_folder))  # sys.path[0] stays the script's folder

    def _resolve(self, name: str, script_folder: Path | None) -> list[tuple[Path, str]]:
        """The files importing `name` runs: each package's `__init__.py` on the way, then the
        module; from the first folder that has its top-level name (the script's own, the project's,
        then the environment's)."""
        key = (name, script_folder)
        if key not in self.resolved:
            parts = name.split(".")
            self.resolved[key] = []
            for folder in ([script_folder] if script_folder else []) + self.local + [self.site]:
                files = self._files_of(str(folder), parts)
                if files:
                    self.resolved[key] = files
                    break
        return self.resolved[key]

    def _listing(self, folder: str) -> frozenset[str]:
        if folder not in self.listings:
            try:
                self.listings[folder] = frozenset(os.listdir(folder))
            except OSError:
                self.listings[folder] = frozenset()
        return self.listings[folder]

    def _files_of(self, folder: str, parts: list[str]) -> list[tuple[Path, str]]:
        files: list[tuple[Path, str]] = []
        base = folder
        for index, part in enumerate(parts):
            module = ".".join(parts[: index + 1])
            entries = self._listing(base)
            package = os.path.join(base, part)
            if part in entries and "__init__.py" in self._listing(package):
                files.append((Path(package, "__init__.py"), module))
                base = package
                continue
            if f"{part}.py" in entries:
                files.append((Path(base, f"{part}.py"), module))
            elif part in entries and index + 1 < len(parts) and self._listing(package):  # a namespace package
                base = package
                continue
            break
        return files

    def _code(self, path: Path):
        """The module's code: from its bytecode when that is there (and written when it is not,
        inside the environment's packages)."""
        try:
            source = path.read_bytes()
            stat = path.stat()
        except OSError:
            return None
        in_site = path.is_relative_to(self.site)
        cached = Path(importlib.util.cache_from_source(str(path))) if in_site else None
        if cached is not None:
            try:
                data = cached.read_bytes()
                if data[:4] == importlib.util.MAGIC_NUMBER and len(data) > 16:
                    self.read += 1
                    return marshal.loads(data[16:])  # noqa: S302 - what the stage's import would load; this process holds nothing
            except (OSError, ValueError, EOFError, TypeError):
                pass
        try:
            code = compile(source, str(path), "exec", dont_inherit=True)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return None
        if cached is not None:
            self._write(cached, code, stat)
        return code

    def _write(self, cached: Path, code, stat: os.stat_result) -> None:
        """As Python writes it: a timestamp-checked file (PEP 552), replaced whole."""
        header = importlib.util.MAGIC_NUMBER + (0).to_bytes(4, "little")
        header += (int(stat.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little") + (stat.st_size & 0xFFFFFFFF).to_bytes(4, "little")
        partial = cached.with_name(f"{cached.name}.{os.getpid()}")
        try:
            cached.parent.mkdir(exist_ok=True)
            partial.write_bytes(header + marshal.dumps(code))
            os.replace(partial, cached)
            self.written += 1
        except OSError:
            partial.unlink(missing_ok=True)  # only a missed speed-up


def site_packages(environment: Path) -> Path | None:
    """A virtual environment's packages, for this interpreter's version (read without `site`,
    which would run the environment's `.pth` files)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for folder in (environment / "lib" / version / "site-packages", environment / "Lib" / "site-packages"):
        if folder.is_dir():
            return folder.resolve()
    return None


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: ENVIRONMENT/bin/python -I -S precompile.py ENVIRONMENT PROJECT", file=sys.stderr)
        return 2
    started = time.monotonic()
    site, project = site_packages(Path(argv[0])), Path(argv[1]).resolve()
    if site is None:
        print(f"{argv[0]}: no site-packages for Python {sys.version_info.major}.{sys.version_info.minor}: nothing precompiled")
        return 0
    scripts = roots(project)
    compiler = Compiler(site, [project, project / "src"], started + SECONDS)
    compiler.run(scripts)
    print(f"precompiled {compiler.written} module(s) the stages import ({compiler.read} already compiled), "
          f"from {len(scripts)} script(s), in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
