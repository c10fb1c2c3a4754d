"""A conda environment file (`environment.yml`) as the setup action installs it, with uv: its
`pip:` entries as they are, its conda packages by their PyPI names, and its `python` pin as the
Python to install for. Conda packages that are no Python package (compilers, CUDA, BLAS, system
libraries, R) are left out and named; a conda-only name uv cannot find fails the install with
uv's message. Run by the runner's own python3 before any environment exists, so it reads the
file's block-style YAML itself, with the standard library only.

    python3 -m lockstep.condaenv requirements FILE   prints requirement lines (to install with uv)
    python3 -m lockstep.condaenv python FILE         prints the Python it pins (e.g. 3.10), or nothing
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

NAMES = ("environment.yml", "environment.yaml")

# conda's name -> PyPI's, where they differ
_PYPI_NAMES = {
    "pytorch": "torch", "pytorch-cpu": "torch", "pytorch-gpu": "torch", "py-xgboost": "xgboost",
    "py-xgboost-cpu": "xgboost", "py-xgboost-gpu": "xgboost", "tensorflow-gpu": "tensorflow",
    "matplotlib-base": "matplotlib", "py-opencv": "opencv-python", "opencv": "opencv-python",
    "libopencv": "opencv-python", "pytables": "tables", "msgpack-python": "msgpack", "python-graphviz": "graphviz",
}
# conda packages that are not Python packages, or are the environment itself
_NOT_PYTHON = re.compile(
    r"^(python|pip|setuptools|wheel|conda|mamba|_libgcc_mutex|_openmp_mutex|ca-certificates|certifi|openssl|"
    r"libgcc.*|libstdcxx.*|libgomp|llvm-openmp|intel-openmp|mkl|mkl-.*|mkl_.*|blas|libblas|libcblas|liblapack.*|"
    r"openblas|libopenblas|nomkl|cpuonly|cudatoolkit|cudnn|cuda|cuda-.*|pytorch-cuda|nccl|magma.*|"
    r"nodejs|git|git-lfs|make|cmake|gcc.*|gxx.*|compilers|graphviz|ffmpeg|libffi|zlib|xz|bzip2|sqlite|readline|tk|"
    r"ncurses|libzlib|libsqlite|libuuid|libxcb|r-.*|r|tzdata|ld_impl_.*|libedit|krb5|libcurl|curl|icu|jpeg|libpng|"
    r"freetype|libtiff|lz4-c|zstd|snappy|c-ares|libuv|libiconv|gettext|expat|pcre.*|glib|dbus|fontconfig|"
    r"xorg-.*|libxml2|libxslt|hdf5|libnetcdf|proj|geos|gdal|libgdal|tbb)$"
)
# a conda match spec: name, then an optional version (`=1.2`, `==1.2.3`, `>=1.2,<2`, ` 1.2.*`) and build
_SPEC = re.compile(r"^([A-Za-z0-9_.\-]+)\s*(?:\[[^\]]*\])?\s*(.*)$")


@dataclass
class Environment:
    conda: list[str] = field(default_factory=list)  # conda match specs, in file order
    pip: list[str] = field(default_factory=list)  # the `pip:` entries, as pip reads them

    @property
    def python(self) -> str:
        """The `python` entry's version spec (`3.10`, `>=3.9`), or "" when there is none."""
        for spec in self.conda:
            name, version = split_spec(spec)
            if name == "python":
                return version
        return ""


def read(text: str) -> Environment:
    """The `dependencies:` of an environment file: block style (as `conda env export` writes it and
    people write it), or one flow-style list; comments and quotes as YAML has them."""
    env = Environment()
    in_deps = False
    pip_indent: int | None = None
    for raw in text.splitlines():
        line = _without_comment(raw).rstrip()
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        item = line.strip()
        if indent == 0 and not item.startswith("-"):
            key, _, rest = item.partition(":")
            in_deps, pip_indent = key.strip().strip("'\"") == "dependencies", None
            if in_deps and rest.strip().startswith("["):
                env.conda += [_unquote(part) for part in rest.strip().strip("[]").split(",") if part.strip()]
                in_deps = False
            continue
        if not in_deps or not item.startswith("-"):
            continue
        value = _unquote(item[1:].strip())
        if pip_indent is not None and indent > pip_indent:
            env.pip.append(value)
            continue
        pip_indent = None
        if re.fullmatch(r"pip\s*:", value):
            pip_indent = indent
        elif value:
            env.conda.append(value)
    return env


def _without_comment(line: str) -> str:
    quote = ""
    for index, char in enumerate(line):
        if char in "'\"" and (not quote or quote == char):
            quote = "" if quote else char
        elif char == "#" and not quote and (index == 0 or line[index - 1].isspace()):
            return line[:index]
    return line


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def split_spec(spec: str) -> tuple[str, str]:
    """A conda match spec's package name (lower case, without its channel) and version part."""
    spec = spec.split("::", 1)[-1].strip()
    match = _SPEC.match(spec)
    if not match:
        return spec.lower(), ""
    return match.group(1).lower(), match.group(2).strip()


def pep440(version: str) -> str:
    """A conda version spec as a PEP 440 one: `=1.2` (1.2 or any 1.2.x) is `==1.2.*`, a build
    string after the version (`=1.2.3=py310h1234`) is dropped, `>=1.2,<2` and `==1.2.3` stay."""
    version = version.strip()
    if re.match(r"[0-9]", version):  # `name 1.2.3 py310_0`: a version, then a build string
        version = version.split()[0]
    if not version or version == "*":
        return ""
    if re.match(r"^=?[^=<>!~,|\s]+=[^=]", version) and not version.startswith("=="):  # version=build
        version = "=" + version.lstrip("=").split("=", 1)[0]
    if re.fullmatch(r"[0-9][^\s=<>!~,|]*", version):  # a bare version: conda's `name 1.2` is `name=1.2`
        version = "=" + version
    if version.startswith("=") and not version.startswith("=="):
        number = version[1:].strip()
        return f"=={number}" if number.endswith("*") else f"=={number.rstrip('.')}.*"
    return version.replace(" ", "")


def requirements(env: Environment, folder: Path | None = None) -> tuple[list[str], list[str]]:
    """The requirement lines to install (conda packages by their PyPI names, then the `pip:`
    entries as they are) and the conda packages left out (not Python packages). The files a `pip:`
    entry includes (`-r requirements.txt`) are made absolute from `folder`, the environment file's:
    conda runs pip from there, and the lines are installed from another file."""
    lines: list[str] = []
    skipped: list[str] = []
    for spec in env.conda:
        name, version = split_spec(spec)
        if _NOT_PYTHON.match(name):
            if name not in ("python", "pip"):
                skipped.append(spec)
            continue
        lines.append(_PYPI_NAMES.get(name, name) + pep440(version))
    pip = env.pip
    if folder is not None:
        pip = [re.sub(r"^(-r|-c|--requirement|--constraint)(\s+|=)(?![/~]|\w+://)(\S+)$",
                      lambda m: f"{m.group(1)} {(folder / m.group(3)).as_posix()}", entry) for entry in pip]
    return lines + pip, skipped


def python_version(env: Environment) -> str:
    """The runner Python (a minor release) the file's `python` entry asks for: itself when it
    names one (`3.10`, `3.10.12` -> 3.10), else the first that pyversion's candidates meet; ""
    when it says nothing or cannot be read."""
    from .pyversion import CANDIDATES, accepts

    spec = pep440(env.python)
    exact = re.fullmatch(r"==([0-9]+\.[0-9]+)(?:\.[0-9]+)?(?:\.\*)?", spec)
    if exact:
        return exact.group(1)
    if not spec:
        return ""
    try:
        return next((candidate for candidate in CANDIDATES if accepts(spec, candidate)), "")
    except ValueError:
        return ""


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("requirements", "python"):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        env = read(Path(argv[1]).read_text("utf-8", errors="replace"))
    except OSError as exc:
        print(f"{argv[1]}: {exc.strerror}", file=sys.stderr)
        return 2
    if argv[0] == "python":
        version = python_version(env)
        if version:
            print(version)
        return 0
    lines, skipped = requirements(env, Path(argv[1]).resolve().parent)
    if skipped:
        print(f"{argv[1]}: left out, not Python packages: {', '.join(skipped)}", file=sys.stderr)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
