"""Which Python callables loading a model file would import, found without loading it.

A pull request's model file (a pickle, a joblib file, a torch checkpoint) is loaded by the trusted
evaluation code, and a pickle runs code while it loads: `__reduce__` can name `os.system`,
`builtins.exec` or any other callable, so a malicious model could forge its own metrics. Before
anything loads it, lockstep reads the file here and lists every global (`module.name`) the stream
imports, so that a known way to run code can be refused (`is_dangerous`) and, more importantly,
anything the base branch's CI-built model does not use can be shown (`new_globals`).

Nothing from the file runs: the streams go through the pure-Python unpickler with `find_class`
returning inert stand-ins (`_Stub`), so every opcode still executes against harmless objects and
the reading follows exactly the bytes a real loader would read, including the parts that are not
pickle at all (joblib's raw array bytes, torch's storages). Each length the file states is checked
against the bytes left before anything is allocated, and every failure ends that file's scan with
a reason while keeping the globals found up to that point.

A file can be read by more than one loader (pickle.load, joblib.load, torch.load) and a crafted file
can read differently in each, so a file that is not a plain pickle stream is also read the way
`pickle.load` would read it, and any global only that reading finds is reported.

Standard library only: this runs in lockstep's tool environment, where numpy, joblib and torch may
be absent.
"""

from __future__ import annotations

import _compat_pickle
import bz2
import contextlib
import importlib
import io
import lzma
import os
import pickle
import stat
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any, ClassVar, Protocol

# Protocol 0 and 1 streams start with ASCII opcodes, so a text file can look like one: they are only
# read as pickles under the names people give pickle files (and torch, joblib and pickle-based
# formats), and then only when the stream reads as one (see _read_protocol0).
PICKLE_EXTENSIONS = frozenset({".pkl", ".pickle", ".joblib", ".pt", ".pth", ".bin", ".sav", ".p", ".dat", ".model"})

KINDS = ("pickle", "joblib", "torch-zip", "torch-legacy", "not-pickle")

# joblib.load reads an array's raw bytes from the file right after the BUILD of one of these
JOBLIB_ARRAY_WRAPPERS = frozenset({"joblib.numpy_pickle.NumpyArrayWrapper", "sklearn.externals.joblib.numpy_pickle.NumpyArrayWrapper"})

# torch's legacy (non-zip) format: five pickles (this magic number, the protocol version, system
# information, the object, the storage keys), then the storages' raw bytes
TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
TORCH_LEGACY_PICKLES = 5

_CHUNK = 1 << 20  # how much is read or decompressed at a time
_SMALL_READ = 1 << 16  # a read past the end up to this size is tried (and found truncated); a bigger one is refused unread
_HEAD = 512  # enough for every magic number, including a tar header
_MAX_DEPTH = 8  # pickles inside pickles (joblib object arrays, torch storages as bytes)
_MAX_REASON = 300


# --- What loading would run ------------------------------------------------------------------------

_CLOUDPICKLE_CODE_MAKERS = (
    # cloudpickle is how MLflow saves python models, so the module as a whole is legitimate; these
    # helpers build functions and classes from code objects or import modules by name
    "subimport", "dynamic_subimport", "_builtin_type", "_make_function", "_function_setstate", "_make_skeleton_class",
    "_make_skeleton_enum", "_class_setstate", "_fill_function", "_make_skel_func", "_rehydrate_skeleton_class",
)

_RISKY_BUILTINS = (
    # run code, reach attributes or namespaces by name, touch files or the console; the other builtins
    # (containers, numbers, `type`, `object`, ...) only build values out of what the pickle gives them
    "eval", "exec", "compile", "open", "__import__", "getattr", "setattr", "delattr", "hasattr", "globals", "locals", "vars",
    "input", "breakpoint", "exit", "quit", "help", "memoryview", "print", "__build_class__",
)

# A denylist of known ways a pickle can run code or touch the system when it loads: a module (with
# everything under it) or one exact name. It is NOT complete and cannot be: any callable is a
# gadget in some combination. The real protection is comparing a pull request's model with the base
# branch's (new_globals); this list only gives the obvious cases a name and a hard stop.
DENYLIST = frozenset({
    # processes, the interpreter, native code
    "os", "posix", "nt", "subprocess", "_posixsubprocess", "_winapi", "msvcrt", "winreg", "sys", "pty", "signal", "_signal",
    "resource", "fcntl", "mmap", "gc", "faulthandler", "ctypes", "_ctypes", "cffi", "_cffi_backend",
    # making or running code
    *(f"builtins.{name}" for name in _RISKY_BUILTINS), *(f"__builtin__.{name}" for name in _RISKY_BUILTINS),
    "importlib", "_imp", "imp", "runpy", "code", "codeop", "zipimport", "pkgutil", "site", "sysconfig", "types", "inspect",
    "pydoc", "pdb", "bdb", "trace", "timeit", "profile", "cProfile", "_lsprof", "py_compile", "compileall",
    "typing.get_type_hints", "typing._eval_type", "typing.ForwardRef", "dataclasses.make_dataclass", "dataclasses._create_fn",
    "logging.config", "operator", "_operator", "functools", "_functools",
    # other unpicklers and code serializers: what they load is not in this scan
    "pickle", "_pickle", "cPickle", "pickletools", "marshal", "shelve", "dbm", "dill",
    "copyreg.add_extension", "copyreg.remove_extension", "copyreg.clear_extension_cache", "copyreg.pickle", "copyreg.constructor",
    "copy_reg.add_extension", "copy_reg.remove_extension", "copy_reg.clear_extension_cache", "copy_reg.pickle",
    *(f"{module}.{name}" for module in ("cloudpickle", "cloudpickle.cloudpickle", "cloudpickle.cloudpickle_fast")
      for name in _CLOUDPICKLE_CODE_MAKERS),
    # threads, processes, callbacks run later
    "threading", "_thread", "multiprocessing", "concurrent", "asyncio", "sched", "atexit", "joblib.externals.loky",
    # files and the network
    "io", "_io", "codecs", "tempfile", "shutil", "glob", "pathlib", "fileinput", "linecache", "zipfile", "tarfile", "gzip",
    "bz2", "lzma", "sqlite3", "socket", "_socket", "ssl", "_ssl", "http", "urllib", "urllib3", "requests", "httpx", "ftplib",
    "smtplib", "poplib", "imaplib", "telnetlib", "nntplib", "xmlrpc", "socketserver", "webbrowser",
    # modules whose import alone does something, and tooling that installs or builds
    "antigravity", "this", "__hello__", "__phello__", "turtle", "tkinter", "idlelib", "lib2to3", "distutils", "setuptools",
    "pkg_resources", "pip", "venv", "ensurepip", "platform",
    # numpy: test and build tooling, and everything that reads or writes files (numpy.load unpickles)
    "numpy.testing", "numpy.f2py", "numpy.distutils", "numpy.ctypeslib", "numpy.lib.utils", "numpy.lib._utils_impl",
    "numpy.load", "numpy.save", "numpy.savez", "numpy.savez_compressed", "numpy.savetxt", "numpy.loadtxt", "numpy.genfromtxt",
    "numpy.fromfile", "numpy.fromregex", "numpy.memmap", "numpy.DataSource", "numpy.lib.npyio", "numpy.lib._npyio_impl",
    "numpy.lib.format", "numpy.lib._datasource", "numpy.core.memmap", "numpy._core.memmap", "numpy.core.multiarray.fromfile",
    "numpy._core.multiarray.fromfile", "numpy.core.records.fromfile", "numpy._core.records.fromfile", "numpy.rec.fromfile",
    # pandas: readers (read_pickle unpickles) and expression evaluation
    "pandas.io", "pandas.core.computation", "pandas.eval", "pandas.read_pickle", "pandas.read_csv", "pandas.read_table",
    "pandas.read_json", "pandas.read_parquet", "pandas.read_hdf", "pandas.read_sql", "pandas.read_excel", "pandas.read_html",
    "pandas.read_xml", "pandas.read_clipboard",
    # joblib: loading another file, and the pre-0.10 wrappers that make joblib.load read companion
    # files named in the pickle (NDArrayWrapper calls numpy.load with allow_pickle=True)
    "joblib.load", "joblib.dump", "joblib.numpy_pickle.load", "joblib.numpy_pickle.dump", "joblib.numpy_pickle.load_compatibility",
    "joblib.numpy_pickle.NDArrayWrapper", "joblib.numpy_pickle.ZNDArrayWrapper", "joblib.numpy_pickle_compat",
    # torch: loading and saving, TorchScript, packages, hub downloads, building extensions
    "torch.load", "torch.save", "torch.serialization", "torch.hub", "torch.jit", "torch.package", "torch.utils.cpp_extension",
    "torch.from_file",
})

# Exact names under a denied module that only build a value: functools.partial binds arguments to a
# callable that is itself a global of the same pickle (and judged on its own), and scikit-learn
# pickles partials; paths and namespaces are plain values. copyreg's __newobj__ helpers are how
# protocol 0/1 pickles create objects.
NOT_DANGEROUS = frozenset({
    "functools.partial", "types.SimpleNamespace", "pathlib.Path", "pathlib.PosixPath", "pathlib.WindowsPath",
    "pathlib.PurePath", "pathlib.PurePosixPath", "pathlib.PureWindowsPath", "copyreg.__newobj__", "copyreg.__newobj_ex__",
})


def is_dangerous(global_name: str) -> bool:
    """Whether importing and calling `global_name` (as a pickle names it, `module.name`) is a known way
    to run code or touch the system (DENYLIST, which is not complete: see new_globals).

    Protocol 4 resolves a dotted name by walking attributes, so `pkg.mod.os.system` reaches
    os.system through any module that imported os: every dotted tail is checked against the list,
    and a dunder past the module (`__globals__`, `__builtins__`, `__subclasses__`) is dangerous on
    its own. The price is that a package with a sub-module named like a denied one (`scipy.signal`,
    `pandas.io`) is flagged too, which the person can read and judge."""
    parts = global_name.split(".")
    for start in range(len(parts)):
        tail = parts[start:]
        if ".".join(tail) in NOT_DANGEROUS:
            continue
        if any(".".join(tail[:end]) in DENYLIST for end in range(1, len(tail) + 1)):
            return True
    return any(_is_dunder(part) for part in parts[1:]) and global_name not in NOT_DANGEROUS


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def _is_dotted_name(text: str) -> bool:
    """Whether `text` could name something importable: a failed import runs nothing."""
    return all(part.isidentifier() for part in text.split("."))


# --- Results ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileScan:
    """One pickle-family file: how it is stored and every global its streams import."""

    path: str  # relative to the scanned folder, POSIX form; the file's name when a file was scanned
    kind: str  # one of KINDS except "not-pickle"
    globals: frozenset[str]  # "module.name" for every global the streams import, as far as they were read
    unreadable: str = ""  # why the scan could not finish; the globals found before that are still listed


@dataclass(frozen=True)
class ModelScan:
    """The pickle-family files under a path (files sorted by path)."""

    files: tuple[FileScan, ...]

    def globals(self) -> frozenset[str]:
        """Every global any of the files imports."""
        return frozenset().union(*(file.globals for file in self.files))

    def dangerous(self) -> list[str]:
        """`path: module.name` for each global is_dangerous() refuses, sorted."""
        return sorted(f"{file.path}: {name}" for file in self.files for name in file.globals if is_dangerous(name))

    def unreadable(self) -> list[str]:
        """`path: why` for each file whose scan could not finish, sorted: such a file cannot be vouched for."""
        return sorted(f"{file.path}: {file.unreadable}" for file in self.files if file.unreadable)


def new_globals(pr: ModelScan, base: ModelScan) -> list[str]:
    """The globals the pull request's model imports that the base branch's model does not, sorted:
    whatever is listed here is code the trusted evaluation has not run before."""
    return sorted(pr.globals() - base.globals())


def scan(path: Path, *, max_bytes: int = 4 * 1024**3) -> ModelScan:
    """Scan a file, or every file under a folder, for pickle-family content (sniffed by content, not by
    extension) without loading any of it. `max_bytes` caps what one stream may take (decompressed
    size included): beyond it the file is unreadable rather than read.

    In a folder, a symlinked file is read where it points, as a loader reads it (DVC's `symlink`
    cache type links every file of an output into the cache, outside the folder); only regular
    files are read. Symlinks to folders are not followed."""
    root = Path(path)
    if root.is_dir():
        found = [_scan_file(file, file.relative_to(root).as_posix(), max_bytes) for file in _files_under(root)]
    elif root.is_file():
        found = [_scan_file(root, root.name, max_bytes)]
    else:
        raise FileNotFoundError(f"{root}: no such file or folder to scan")
    return ModelScan(tuple(sorted((file for file in found if file is not None), key=lambda file: file.path)))


def _files_under(root: Path) -> list[Path]:
    files: list[Path] = []
    for folder, _dirs, names in os.walk(root):  # does not descend into symlinked folders
        for name in names:
            file = Path(folder) / name
            try:
                if not stat.S_ISREG(file.stat().st_mode):  # a FIFO would block, a device is not a model
                    continue
            except (OSError, RuntimeError):  # dangling link, link loop
                continue
            files.append(file)
    return files


# --- Reading with nothing running ------------------------------------------------------------------


class _Unreadable(Exception):
    """Ends a file's scan; the message says why, for the person who has to act on it."""


class _NotPickle(Exception):
    """What first looked like a pickle-family file turned out to be something no pickle loader reads."""


class _Stream(Protocol):
    """What _Source reads from: a file, a decompressing reader, an archive member."""

    def read(self, size: int = ..., /) -> bytes: ...
    def readline(self, size: int = ..., /) -> bytes: ...
    def seekable(self) -> bool: ...
    def seek(self, offset: int, whence: int = ..., /) -> int: ...


class _Source:
    """The stream the unpickler reads, refusing any read that would pass the end of the data or the
    byte budget. A pickle's length prefixes are the file's to choose and the unpickler allocates what
    they say before reading, so a BINBYTES8 of 2**60 must stop here, not in malloc."""

    def __init__(self, raw: _Stream, *, size: int | None, budget: int, what: str) -> None:
        self._raw = raw
        self._size = size  # None for a decompressed stream, whose size is only known at its end
        self._budget = budget
        self._what = what
        self._ahead = b""  # read by peek() and not yet consumed
        self.pos = 0

    def left(self) -> int:
        end = self._budget if self._size is None else min(self._size, self._budget)
        return end - self.pos

    def refuse(self, n: int, what: str) -> _Unreadable:
        if self._size is not None and self.pos + n > self._size:
            return _Unreadable(f"{what} of {n} bytes at byte {self.pos} runs past the end of the {self._what} ({self._size} bytes): "
                               "the file is truncated or its lengths are forged")
        return _Unreadable(f"larger than the {self._budget}-byte limit: {what} of {n} bytes at byte {self.pos} of the {self._what}")

    def read(self, n: int) -> bytes:
        if n > self.left() and (n > _SMALL_READ or self.pos + n > self._budget):
            raise self.refuse(n, "a length")
        data = self._take(n)
        if len(data) < n:  # the unpickler never expects a short read
            raise self.truncated()
        return data

    def truncated(self) -> _Unreadable:
        return _Unreadable(f"truncated: the {self._what} ends at byte {self.pos}, inside a pickle stream")

    def readline(self) -> bytes:
        parts: list[bytes] = []
        if self._ahead:
            cut = self._ahead.find(b"\n") + 1 or len(self._ahead)
            parts.append(self._ahead[:cut])
            self._ahead = self._ahead[cut:]
            self.pos += cut
            if parts[0].endswith(b"\n"):
                return parts[0]
        while True:
            room = self.left()
            if room <= 0:
                if self._size is None or self.pos < self._size:
                    raise self.refuse(1, "a text line")
                break
            chunk = self._raw.readline(min(room, _CHUNK))
            if not chunk:
                break
            parts.append(chunk)
            self.pos += len(chunk)
            if chunk.endswith(b"\n"):
                return b"".join(parts)
        raise self.truncated()  # every line of a protocol 0 stream ends with a newline

    def peek(self, n: int) -> bytes:
        if len(self._ahead) < n:
            self._ahead += self._read_raw(min(n - len(self._ahead), max(self.left() - len(self._ahead), 0)))
        return self._ahead[:n]

    def skip(self, n: int, what: str) -> None:
        """Pass over `n` bytes that are not pickle (an array's raw data), without holding them."""
        if n > self.left():
            raise self.refuse(n, what)
        if not self._ahead and self._size is not None and self._raw.seekable():
            self._raw.seek(n, io.SEEK_CUR)
            self.pos += n
            return
        while n > 0:
            chunk = self._take(min(n, _CHUNK))
            if not chunk:
                raise self.truncated()
            n -= len(chunk)

    def _take(self, n: int) -> bytes:
        head, self._ahead = self._ahead[:n], self._ahead[n:]
        data = head + self._read_raw(n - len(head)) if len(head) < n else head
        self.pos += len(data)
        return data

    def _read_raw(self, n: int) -> bytes:
        # in chunks: a decompressing reader may allocate the whole size it is asked for up front
        parts: list[bytes] = []
        while n > 0:
            chunk = self._raw.read(min(n, _CHUNK))
            if not chunk:
                break
            parts.append(chunk)
            n -= len(chunk)
        return b"".join(parts)


class _Stub:
    """What every global, call result and persistent id of a scanned pickle becomes: an inert object
    that takes whatever the opcodes do to it (calls, BUILD, appends, item assignment) and remembers
    its call arguments and state, which reading joblib's arrays needs. Nothing in the file ever
    reaches real code; find_class hands out one subclass per global name."""

    global_name: ClassVar[str] = ""
    on_call: ClassVar[Callable[[tuple[Any, ...]], None] | None] = None
    call_args: tuple[Any, ...] | None  # set only by a call (REDUCE, INST/OBJ), which runs __init__; NEWOBJ does not
    call_kwargs: dict[str, Any]
    state: Any

    def __new__(cls, *args: Any, **kwargs: Any) -> _Stub:
        # NEWOBJ can hand a stub instance here instead of a class: it builds a plain stub
        stub = object.__new__(cls if isinstance(cls, type) and issubclass(cls, _Stub) else _Stub)
        stub.call_args = None
        stub.call_kwargs = {}
        stub.state = None
        return stub

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.call_args = args
        self.call_kwargs = kwargs
        hook = type(self).on_call
        if hook is not None:
            hook(args)

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __call__(self, *args: Any, **kwargs: Any) -> _Stub:
        return _Stub(*args, **kwargs)

    def append(self, item: Any) -> None:
        pass

    def extend(self, items: Iterable[Any]) -> None:
        pass

    def add(self, item: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    __hash__ = object.__hash__


# Callables that load a pickle (or a torch file) from bytes given in the pickle itself: the bytes are
# scanned in turn. torch pickles tensors this way when they go through plain pickle.
_NESTED_LOADERS = {
    "torch.storage._load_from_bytes": "torch",
    "pickle.loads": "pickle", "_pickle.loads": "pickle", "pickle._loads": "pickle", "cloudpickle.loads": "pickle",
}


class _Walk:
    """What one file's scan shares across its pickle streams: the globals found (recorded as found,
    so a failure keeps them), the stand-in classes, and what the reading has seen."""

    def __init__(self, budget: int, *, names_only: bool = False) -> None:
        self.budget = budget
        self.names_only = names_only  # the second, pickle.load reading: only what could be imported
        self.found: set[str] = set()
        self.kind = "pickle"
        self.form = ""  # how the file is stored, once sniffed: "pickle", "zip", "gzip", ...
        self.depth = 0
        self.skipped_arrays = 0
        self._classes: dict[str, type[_Stub]] = {}

    def record(self, name: str) -> None:
        if not self.names_only or _is_dotted_name(name):
            self.found.add(name)
        if name in JOBLIB_ARRAY_WRAPPERS and self.kind == "pickle":
            self.kind = "joblib"

    def stub_class(self, name: str) -> type[_Stub]:
        if name not in self._classes:
            attributes: dict[str, Any] = {"global_name": name}
            if name in _NESTED_LOADERS:
                attributes["on_call"] = staticmethod(lambda args: self._scan_nested(name, args))
            self._classes[name] = type("_StubOf", (_Stub,), attributes)
        return self._classes[name]

    @contextlib.contextmanager
    def deeper(self) -> Iterator[None]:
        """Around reading a pickle inside a pickle."""
        if self.depth >= _MAX_DEPTH:
            raise _Unreadable(f"pickles nested more than {_MAX_DEPTH} deep")
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1

    def _scan_nested(self, loader: str, args: tuple[Any, ...]) -> None:
        data = args[0] if args else None
        if not isinstance(data, (bytes, bytearray)):
            raise _Unreadable(f"passes data built while loading to {loader}, which cannot be checked without running the file")
        torch = _NESTED_LOADERS[loader] == "torch"
        kind = self.kind  # what the file is does not change with what it carries
        try:
            with self.deeper():
                if torch and data.startswith(b"PK\x03\x04"):
                    _read_zip(io.BytesIO(data), self)
                else:
                    source = _Source(io.BytesIO(data), size=len(data), budget=self.budget, what=f"data given to {loader}")
                    _read_pickles(source, self, joblib=False, limit=TORCH_LEGACY_PICKLES if torch else 1)
        except _Unreadable as problem:
            raise _Unreadable(f"in the data given to {loader}: {problem}") from None
        finally:
            self.kind = kind


class _Opcodes(dict[int, Any]):
    """The unpickler's opcode table: an unknown opcode is a reason, not a KeyError."""

    def __missing__(self, opcode: int) -> Any:
        raise _Unreadable(f"unknown pickle opcode 0x{opcode:02x}: not a pickle stream, or a corrupt one")


_BASE_OPCODES: dict[int, Any] = dict(pickle._Unpickler.dispatch)


class _Scanner(pickle._Unpickler):
    """The pure-Python unpickler with every way to real code replaced (find_class, persistent ids, the
    copyreg extension registry), length prefixes checked before allocation, and, for joblib files,
    joblib's own reading of arrays: their raw bytes follow the wrapper's BUILD in the file."""

    # the pure-Python unpickler's own attributes, which typeshed does not declare
    stack: list[Any]
    proto: int
    fix_imports: bool
    append: Callable[[Any], None]
    read: Callable[[int], bytes]
    readinto: Callable[[bytearray], int]
    _unframer: Any

    dispatch = _Opcodes(_BASE_OPCODES)

    def __init__(self, source: _Source, walk: _Walk, *, joblib: bool) -> None:
        # latin1 decodes any Python 2 byte string, so a STACK_GLOBAL built from one is still seen
        super().__init__(source, encoding="latin1")
        self._source = source
        self._walk = walk
        self._joblib = joblib

    def find_class(self, module: str, name: str) -> type[_Stub]:
        if self.proto < 3 and self.fix_imports:  # what pickle itself imports for a Python 2 name
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        if not module:
            raise _Unreadable("names a global with an empty module name: loading fails here")
        full = f"{module}.{name}"
        self._walk.record(full)
        return self._walk.stub_class(full)

    def persistent_load(self, pid: Any) -> _Stub:
        return _Stub()  # torch's storages: the raw tensor data, never code

    def _load_ext(self) -> None:
        raise _Unreadable("uses the copyreg extension registry (EXT opcodes): what it imports depends on the loading process, not on the file")

    def _load_next_buffer(self) -> None:
        raise _Unreadable("refers to an out-of-band buffer (pickle protocol 5), which only the writing process had: loading stops here")

    def _load_bytearray8(self) -> None:
        """BYTEARRAY8 allocates its length before reading: check it against what is left first."""
        (size,) = struct.unpack("<Q", self.read(8))
        frame = self._unframer.current_frame
        in_frame = 0
        if frame is not None:
            with frame.getbuffer() as view:
                in_frame = view.nbytes - frame.tell()
        if size > in_frame + self._source.left():
            raise self._source.refuse(size, "a BYTEARRAY8 length")
        data = bytearray(size)
        self.readinto(data)
        self.append(data)

    def _load_build(self) -> None:
        _BASE_OPCODES[pickle.BUILD[0]](self)
        built = self.stack[-1]
        if self._joblib and getattr(type(built), "global_name", "") in JOBLIB_ARRAY_WRAPPERS:
            self._skip_array(built)

    def _skip_array(self, wrapper: _Stub) -> None:
        """Read past one array the way joblib.numpy_pickle reads it (NumpyArrayWrapper.read_array):
        an object array is a nested pickle stream, anything else a padding byte (when the wrapper has
        an alignment), the padding, then prod(shape) * itemsize raw bytes."""
        attributes = _wrapper_attributes(wrapper)
        dtype, shape = attributes.get("dtype"), attributes.get("shape")
        if not isinstance(dtype, _Stub) or not isinstance(shape, (tuple, list)):
            raise _Unreadable("a joblib array wrapper without a numpy dtype and shape: joblib cannot read past it")
        self._walk.skipped_arrays += 1
        if _has_object(dtype, 0):
            with self._walk.deeper():
                _Scanner(self._source, self._walk, joblib=False).load()  # joblib reads these with the plain unpickler
            return
        count = 1
        for length in shape:
            if not isinstance(length, int) or length < 0:
                raise _Unreadable(f"a joblib array with shape {shape!r}: joblib cannot read past it")
            count *= length
        if attributes.get("numpy_array_alignment_bytes") is not None:
            padding = self._source.read(1)
            if padding:
                self._source.skip(padding[0], "array padding")
        self._source.skip(count * _itemsize(dtype), "array data")


_Scanner.dispatch[pickle.BUILD[0]] = _Scanner._load_build
_Scanner.dispatch[pickle.BYTEARRAY8[0]] = _Scanner._load_bytearray8
_Scanner.dispatch[pickle.NEXT_BUFFER[0]] = _Scanner._load_next_buffer
for _ext in (pickle.EXT1, pickle.EXT2, pickle.EXT4):
    _Scanner.dispatch[_ext[0]] = _Scanner._load_ext


def _wrapper_attributes(wrapper: _Stub) -> dict[str, Any]:
    """The attributes a NumpyArrayWrapper would have after its BUILD: its __init__ arguments when it
    was built by a call, then the BUILD state (a dict, or a (dict, slots) pair) over them."""
    attributes: dict[str, Any] = {}
    if wrapper.call_args is not None:
        names = ("subclass", "shape", "order", "dtype", "allow_mmap", "numpy_array_alignment_bytes")
        attributes = {"allow_mmap": False, "numpy_array_alignment_bytes": 16, **dict(zip(names, wrapper.call_args, strict=False)), **wrapper.call_kwargs}
    state = wrapper.state
    slots = None
    if isinstance(state, tuple) and len(state) == 2:
        state, slots = state
    for part in (state, slots):
        if isinstance(part, dict):
            attributes.update(part)
    return attributes


def _dtype_code(dtype: _Stub) -> str:
    """The type string numpy.dtype was called with ("f8", "<i4", "U5", "M8[ns]"), without byte order
    and unit: numpy pickles a dtype as numpy.dtype(code, align, copy) and a state tuple."""
    code = dtype.call_args[0] if dtype.call_args else None
    made_by = type(dtype).global_name
    if not isinstance(code, str) or not (made_by.startswith("numpy.") and made_by.endswith(".dtype")):
        raise _Unreadable("a joblib array whose dtype is not a numpy.dtype(code, ...) call: cannot tell its size")
    return code.lstrip("<>|=").split("[", 1)[0]


def _itemsize(dtype: _Stub) -> int:
    code = _dtype_code(dtype)
    state = dtype.state
    # flexible types (unicode, bytes, void/structured) carry their size in the state's elsize field
    if code[:1] in ("U", "S", "V") and isinstance(state, tuple) and len(state) > 5 and isinstance(state[5], int) and state[5] >= 0:
        return state[5]
    if code == "?":
        return 1
    if len(code) > 1 and code[1:].isdigit():
        return int(code[1:]) * (4 if code[0] == "U" else 1)
    raise _Unreadable(f"a joblib array of dtype {code!r}: cannot tell its item size")


def _has_object(dtype: Any, depth: int) -> bool:
    """Whether numpy could treat the dtype as holding Python objects (joblib then pickles the array
    instead of writing raw bytes). Errs towards yes: reading raw bytes as a pickle fails loudly,
    skipping a pickle as raw bytes would hide it."""
    if not isinstance(dtype, _Stub) or depth > _MAX_DEPTH:
        return False
    if _dtype_code(dtype).startswith("O"):
        return True
    state = dtype.state
    if not isinstance(state, tuple):
        return False
    if len(state) > 7 and isinstance(state[7], int) and state[7] & 1:  # NPY_ITEM_HASOBJECT
        return True
    inner: list[Any] = []
    if len(state) > 2 and isinstance(state[2], tuple) and state[2]:  # a subarray: (base dtype, shape)
        inner.append(state[2][0])
    if len(state) > 4 and isinstance(state[4], dict):  # fields: name -> (dtype, offset[, title])
        inner.extend(field[0] for field in state[4].values() if isinstance(field, tuple) and field)
    return any(_has_object(part, depth + 1) for part in inner)


def _starts_pickle(head: bytes) -> bool:
    """A protocol 2-5 pickle: the PROTO opcode and a protocol this Python reads."""
    return len(head) >= 2 and head[0] == pickle.PROTO[0] and 2 <= head[1] <= pickle.HIGHEST_PROTOCOL


def _read_pickles(source: _Source, walk: _Walk, *, joblib: bool, limit: int | None = None) -> None:
    """Read pickle streams back to back while the next bytes start one (torch's legacy format is five
    of them; a second pickle.load on the same file would read the next), up to `limit`."""
    count = 0
    while limit is None or count < limit:
        if count and not _starts_pickle(source.peek(2)):
            return
        value = _Scanner(source, walk, joblib=joblib).load()
        count += 1
        if count == 1 and type(value) is int and value == TORCH_LEGACY_MAGIC and walk.kind == "pickle":
            walk.kind = "torch-legacy"
            limit, joblib = TORCH_LEGACY_PICKLES, False  # then the storages' raw bytes


# --- Formats ---------------------------------------------------------------------------------------

_COMPRESSED = (
    # joblib.load's compressors, recognized by their magic numbers (joblib.compressor)
    (b"\x78\x01", "zlib"), (b"\x78\x5e", "zlib"), (b"\x78\x9c", "zlib"), (b"\x78\xda", "zlib"),
    (b"\x1f\x8b", "gzip"), (b"BZh", "bz2"), (b"\xfd7zXZ\x00", "xz"), (b"\x5d\x00\x00", "lzma"), (b"\x04\x22\x4d\x18", "lz4"),
)
_COMPRESSED_SUFFIXES = frozenset({".z", ".gz", ".bz2", ".xz", ".lzma", ".lz4"})
_ZFILE_HEADER = 2 + len(hex(2**64))  # joblib < 0.10: "ZF", the hex length padded, then zlib data


class _Inflate(io.RawIOBase):
    """A zlib or gzip stream decompressed as it is read, the way joblib reads its compressed files: one
    stream, whatever follows its end ignored, never more in memory than what was asked for."""

    def __init__(self, raw: IO[bytes], wbits: int) -> None:
        super().__init__()
        self._raw = raw
        self._inflater = zlib.decompressobj(wbits)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while not self._inflater.eof:
            data = self._inflater.unconsumed_tail or self._raw.read(_CHUNK)
            if not data:
                break
            out = self._inflater.decompress(data, len(view))
            if out:
                view[: len(out)] = out
                return len(out)
        return 0


def _sniff(head: bytes, name: str, *, is_tar: bool) -> str | None:
    """How a file is stored, from its first bytes, in the order the loaders try them (torch: zip, then
    tar, then pickles; joblib: its compressors, then a pickle)."""
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if is_tar:
        return "tar"
    if _starts_pickle(head):
        return "pickle"
    if head.startswith(b"ZF") and _zfile_length(head) is not None:
        return "zfile"
    for magic, form in _COMPRESSED:
        if head.startswith(magic):
            return form
    if head and _pickle_extension(name) and head[0] in _BASE_OPCODES:
        return "pickle0"
    return None


def _pickle_extension(name: str) -> bool:
    suffixes = [suffix.lower() for suffix in PurePosixPath(name).suffixes]
    while suffixes and suffixes[-1] in _COMPRESSED_SUFFIXES:
        suffixes.pop()
    return bool(suffixes) and suffixes[-1] in PICKLE_EXTENSIONS


def _zfile_length(head: bytes) -> int | None:
    try:
        return int(head[2:_ZFILE_HEADER].decode("ascii").strip(), 16)
    except ValueError:
        return None


def _looks_like_tar(head: bytes) -> bool:
    """A valid tar header (its checksum matches): torch.load tries a non-zip file as a tar first."""
    if len(head) < tarfile.BLOCKSIZE:
        return False
    try:
        tarfile.TarInfo.frombuf(head[: tarfile.BLOCKSIZE], "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


def _decompressing(form: str, handle: IO[bytes]) -> IO[bytes]:
    if form in ("zlib", "zfile"):
        return io.BufferedReader(_Inflate(handle, zlib.MAX_WBITS), buffer_size=_CHUNK)
    if form == "gzip":
        return io.BufferedReader(_Inflate(handle, 16 + zlib.MAX_WBITS), buffer_size=_CHUNK)
    if form == "bz2":
        return bz2.BZ2File(handle)
    if form in ("xz", "lzma"):
        return lzma.LZMAFile(handle, format=lzma.FORMAT_XZ if form == "xz" else lzma.FORMAT_ALONE)
    try:
        lz4_frame = importlib.import_module("lz4.frame")
    except ImportError:
        raise _Unreadable("lz4-compressed: cannot be read without the lz4 package") from None
    opened: IO[bytes] = lz4_frame.LZ4FrameFile(handle)
    return opened


def _read_compressed(form: str, handle: IO[bytes], name: str, walk: _Walk) -> None:
    """A joblib file written with compression: the inner stream is a pickle with joblib's arrays."""
    walk.kind = "joblib"
    if form == "zfile":
        handle.seek(_ZFILE_HEADER)
        if handle.read(1) != b" ":  # joblib <= 0.8.4 wrote one more space
            handle.seek(_ZFILE_HEADER)
    stream = _decompressing(form, handle)
    source = _Source(stream, size=None, budget=walk.budget, what="decompressed stream")
    try:
        inner = source.peek(2)
    except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError):
        raise _NotPickle from None  # starts like compressed data but is not
    if _starts_pickle(inner):
        _read_pickles(source, walk, joblib=True)
    elif inner and _pickle_extension(name) and inner[0] in _BASE_OPCODES:
        _read_protocol0(source, walk)
    else:
        raise _NotPickle  # compressed data that is not a pickle (a .csv.gz)


def _read_protocol0(source: _Source, walk: _Walk) -> None:
    """A stream that may be a protocol 0/1 pickle or text that happens to start like one. It counts as a
    pickle when it reads to its STOP, or when it names an importable global before failing (a real
    load would have imported, and maybe called, it by then)."""
    try:
        _read_pickles(source, walk, joblib=True, limit=1)
    except Exception:  # any failure: decided on what was found before it
        if not any(_is_dotted_name(name) for name in walk.found):
            raise _NotPickle from None
        raise


def _read_zip(handle: IO[bytes], walk: _Walk) -> None:
    """A torch zip checkpoint (`<archive>/data.pkl` and the storages beside it): every .pkl member is
    read; its persistent ids (the storages) stay stand-ins."""
    try:
        archive = zipfile.ZipFile(handle)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as problem:
        walk.kind = "torch-zip"
        raise _Unreadable(f"a zip archive that cannot be read ({problem}): what torch.load would read in it is unknown") from None
    with archive:
        members = [info for info in archive.infolist() if info.filename.lower().endswith(".pkl")]
        if not members:
            raise _NotPickle
        walk.kind = "torch-zip"
        problems: list[str] = []
        for info in members:  # duplicates included: a reader may take either copy
            try:
                if info.file_size > walk.budget:
                    raise _Unreadable(f"larger than the {walk.budget}-byte limit ({info.file_size} bytes)")
                with archive.open(info) as member:
                    source = _Source(member, size=info.file_size, budget=walk.budget, what="archive member")
                    _read_pickles(source, walk, joblib=False)
            except Exception as problem:  # noqa: BLE001 - one member's failure must not hide the others' globals
                problems.append(f"{info.filename}: {_reason(problem)}")
        if problems:
            raise _Unreadable("; ".join(problems))


def _read_tar(handle: IO[bytes], walk: _Walk) -> None:
    """torch's oldest format (before 0.4): a tar with `pickle`, `storages` and `tensors` members."""
    try:
        archive = tarfile.open(fileobj=handle, mode="r:")
        members = [member for member in archive.getmembers() if member.isfile()]
    except (tarfile.TarError, OSError, EOFError):  # torch too takes a broken tar for something else
        raise _NotPickle from None
    with archive:
        if not any(member.name == "pickle" for member in members):
            raise _NotPickle
        walk.kind = "torch-legacy"
        problems: list[str] = []
        for member in members:
            if member.name == "pickle":
                try:
                    extracted = archive.extractfile(member)
                    if extracted is None:
                        raise _Unreadable("cannot be extracted")
                    _read_pickles(_Source(extracted, size=member.size, budget=walk.budget, what="archive member"), walk, joblib=False, limit=1)
                except Exception as problem:  # noqa: BLE001 - reported with the member's name
                    problems.append(f"{member.name}: {_reason(problem)}")
            elif member.name in ("storages", "tensors"):
                problems.append(f"{member.name}: the legacy torch tar format mixes pickles with raw data there and is not scanned")
        if problems:
            raise _Unreadable("; ".join(problems))


def _read_file(file: Path, handle: IO[bytes], walk: _Walk) -> None:
    """Read one opened file according to its sniffed form (walk.form stays empty: not a pickle)."""
    size = os.fstat(handle.fileno()).st_size
    head = handle.read(_HEAD)
    handle.seek(0)
    walk.form = _sniff(head, file.name, is_tar=_looks_like_tar(head)) or ""
    if walk.form == "tar":
        try:
            _read_tar(handle, walk)
            return
        except _NotPickle:  # a tar without torch's members: maybe still something else
            handle.seek(0)
            walk.form = _sniff(head, file.name, is_tar=False) or ""
    if walk.form == "zip":
        _read_zip(handle, walk)
    elif walk.form in ("pickle", "pickle0"):
        source = _Source(handle, size=size, budget=walk.budget, what="file")
        if walk.form == "pickle":
            _read_pickles(source, walk, joblib=True)
        else:
            _read_protocol0(source, walk)
    elif walk.form:
        _read_compressed(walk.form, handle, file.name, walk)


def _scan_file(file: Path, shown: str, max_bytes: int) -> FileScan | None:
    """One file's FileScan, or None when it is not pickle-family. A file that cannot even be opened is
    listed as a "pickle" that is unreadable: nothing says it is not one."""
    walk = _Walk(max_bytes)
    reason = ""
    try:
        handle = file.open("rb")
    except OSError as problem:
        return FileScan(shown, "pickle", frozenset(), _short(f"cannot be opened: {problem.strerror or problem}"))
    try:
        with handle:
            _read_file(file, handle, walk)
    except _NotPickle:
        return None
    except Exception as problem:  # noqa: BLE001 - whatever the file does to the reader ends its scan with a reason
        reason = _reason(problem)
    if not walk.form:
        return None
    # pickle.load reads a plain stream the same way, unless joblib's arrays were skipped; it cannot
    # read a zip at all (its first opcode is a persistent id)
    if walk.form not in ("pickle", "pickle0", "zip") or walk.skipped_arrays:
        extra = _pickle_load_view(file, max_bytes) - walk.found
        if extra:
            walk.found |= extra
            reason = reason or _short(f"reads as a different pickle with pickle.load than with the {walk.kind} reader, "
                                      f"importing {', '.join(sorted(extra))}: crafted to be read two ways")
    return FileScan(shown, walk.kind, frozenset(walk.found), reason)


def _pickle_load_view(file: Path, max_bytes: int) -> set[str]:
    """The importable globals `pickle.load` (or torch's legacy reader) would find reading the file as
    plain pickles from its first byte: for a joblib file (whose array bytes pickle.load would read as
    opcodes) or a file that is first something else (a tar, compressed data). Failures just end it."""
    walk = _Walk(max_bytes, names_only=True)
    try:
        with file.open("rb") as handle:
            source = _Source(handle, size=os.fstat(handle.fileno()).st_size, budget=max_bytes, what="file")
            head = source.peek(1)
            if head and head[0] in _BASE_OPCODES:
                _read_pickles(source, walk, joblib=False)
    except Exception:  # noqa: BLE001, S110 - this reading is expected to fail on anything but a crafted file
        pass
    return walk.found


def _reason(problem: BaseException) -> str:
    if isinstance(problem, _Unreadable):
        return _short(str(problem))
    if isinstance(problem, EOFError):
        return "truncated: the stream ends before its STOP opcode"
    if isinstance(problem, MemoryError):
        return "reading it ran out of memory"
    if isinstance(problem, RecursionError):
        return "nested too deeply to read"
    return _short(f"not a readable pickle stream ({type(problem).__name__}: {problem})")


def _short(text: str) -> str:
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 3] + "..."
