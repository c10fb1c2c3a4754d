"""lockstep.modelscan on real files: malicious pickles are listed and never run, real models (sklearn,
numpy, pandas, joblib plain and compressed, torch-shaped archives) scan clean, and broken or forged
files end as unreadable quickly, keeping what was found before the damage."""

from __future__ import annotations

import atexit
import builtins
import io
import os
import pickle
import pickletools
import struct
import subprocess
import sys
import tarfile
import time
import zipfile
import zlib
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from lockstep import modelscan
from lockstep.modelscan import FileScan, ModelScan, is_dangerous, new_globals, scan

pytestmark = pytest.mark.unit

SYSTEM = f"{os.system.__module__}.system"  # what pickle names os.system by: posix.system on Linux


class Payload:
    """An object whose unpickling calls `call(*args)`: how a malicious model runs code."""

    def __init__(self, call: Callable[..., Any], *args: Any) -> None:
        self.call = call
        self.args = args

    def __reduce__(self) -> tuple[Any, ...]:
        return self.call, self.args


# each: the payload that creates `canary` when loaded, and the global that does it
PAYLOADS: dict[str, tuple[Callable[[Path], Payload], str]] = {
    "os.system": (lambda canary: Payload(os.system, f"touch {canary}"), SYSTEM),
    "exec": (lambda canary: Payload(builtins.exec, f"open({str(canary)!r}, 'w').close()"), "builtins.exec"),
    "popen": (lambda canary: Payload(subprocess.Popen, ["touch", str(canary)]), "subprocess.Popen"),
    "atexit": (lambda canary: Payload(atexit.register, os.system, f"touch {canary}"), "atexit.register"),
}
PROTOCOLS = (0, 2, 5)


def unicode(text: str) -> bytes:
    return pickle.SHORT_BINUNICODE + bytes([len(text)]) + text.encode()


def getattr_chain(canary: Path) -> bytes:
    """atexit.register(os.system, "touch ...") reached through getattr(__import__("atexit"), "register"),
    so that no global names atexit: protocol 0 written by hand, as an attacker would."""
    return (b"cbuiltins\ngetattr\n(cbuiltins\n__import__\n(Vatexit\ntRVregister\ntR"
            + b"(c" + os.system.__module__.encode() + b"\nsystem\nV" + f"touch {canary}".encode() + b"\ntR.")


def memo_stack_global(canary: Path) -> bytes:
    """Protocol 4 where STACK_GLOBAL's module and name strings come from the memo, not from the opcodes
    just before it."""
    return (pickle.PROTO + b"\x04" + unicode(os.system.__module__) + pickle.MEMOIZE + unicode("system") + pickle.MEMOIZE
            + pickle.POP + pickle.POP + pickle.BINGET + b"\x00" + pickle.BINGET + b"\x01" + pickle.STACK_GLOBAL
            + unicode(f"touch {canary}") + pickle.TUPLE1 + pickle.REDUCE + pickle.STOP)


def write_payloads(folder: Path, canaries: Path) -> dict[Path, str]:
    """Every malicious file, each with its own canary; returns canary -> the global that makes it."""
    folder.mkdir()
    canaries.mkdir()
    made: dict[Path, str] = {}
    for name, (build, global_name) in PAYLOADS.items():
        for protocol in PROTOCOLS:
            canary = canaries / f"{name}-{protocol}"
            (folder / f"{name}-{protocol}.pkl").write_bytes(pickle.dumps(build(canary), protocol=protocol))
            made[canary] = global_name
    made[canaries / "getattr"] = "builtins.getattr"
    (folder / "getattr.pkl").write_bytes(getattr_chain(canaries / "getattr"))
    made[canaries / "memo"] = SYSTEM
    (folder / "memo.pkl").write_bytes(memo_stack_global(canaries / "memo"))
    return made


def only(result: ModelScan) -> FileScan:
    assert len(result.files) == 1, result
    return result.files[0]


def eventually(check: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


# --- Malicious pickles -----------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_a_malicious_pickle_is_listed_as_dangerous_and_not_run(tmp_path, payload, protocol):
    build, global_name = PAYLOADS[payload]
    canary = tmp_path / "CANARY"
    model = tmp_path / "model.pkl"
    model.write_bytes(pickle.dumps(build(canary), protocol=protocol))

    found = only(scan(model))

    assert (found.path, found.kind, found.unreadable) == ("model.pkl", "pickle", "")
    assert global_name in found.globals
    assert f"model.pkl: {global_name}" in scan(model).dangerous()
    assert not canary.exists()


def test_a_getattr_chain_and_a_memo_stack_global_are_seen(tmp_path):
    chain, memo = tmp_path / "chain.pkl", tmp_path / "memo.pkl"
    chain.write_bytes(getattr_chain(tmp_path / "CANARY"))
    memo.write_bytes(memo_stack_global(tmp_path / "CANARY"))
    # the STACK_GLOBAL really takes both strings from the memo
    ops = [op.name for op, _arg, _pos in pickletools.genops(memo.read_bytes())]
    assert ops[ops.index("STACK_GLOBAL") - 2:ops.index("STACK_GLOBAL")] == ["BINGET", "BINGET"]

    assert only(scan(chain)).globals == {"builtins.getattr", "builtins.__import__", SYSTEM}
    assert only(scan(memo)).globals == {SYSTEM}
    assert scan(memo).dangerous() == [f"memo.pkl: {SYSTEM}"]
    assert not (tmp_path / "CANARY").exists()


def test_scanning_never_runs_a_payload_even_at_exit_while_loading_does(tmp_path):
    """The scan runs in its own process so that payloads registered with atexit would fire when it
    ends; then the same files are loaded for real, to show each payload does run when loaded."""
    made = write_payloads(tmp_path / "models", tmp_path / "canaries")
    scanned = subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; from lockstep.modelscan import scan; "
                              "result = scan(Path(sys.argv[1])); print('\\n'.join(result.dangerous()))", str(tmp_path / "models")],
                             capture_output=True, text=True, check=True)
    listed = scanned.stdout.split("\n")
    assert not [canary for canary in made if canary.exists()]
    for canary, global_name in made.items():
        assert f"{canary.name}.pkl: {global_name}" in listed

    loader = ("import pickle, sys\nfor path in sys.argv[1:]:\n    try:\n        pickle.load(open(path, 'rb'))\n"
              "    except Exception:\n        pass\n")
    subprocess.run([sys.executable, "-c", loader, *map(str, sorted((tmp_path / "models").iterdir()))], check=True)
    assert eventually(lambda: all(canary.exists() for canary in made)), [canary.name for canary in made if not canary.exists()]


def test_a_pickle_loaded_from_bytes_inside_a_pickle_is_scanned_too(tmp_path):
    """torch pickles tensors with torch.storage._load_from_bytes(b"...") under plain pickle: the bytes
    are a file of their own, loaded with torch.load when the outer pickle loads."""
    inner = pickle.dumps(Payload(os.system, f"touch {tmp_path / 'CANARY'}"), protocol=2)
    outer = tmp_path / "tensor.pkl"
    outer.write_bytes(pickle.PROTO + b"\x02" + b"ctorch.storage\n_load_from_bytes\n" + pickle.BINBYTES + struct.pack("<I", len(inner))
                      + inner + pickle.TUPLE1 + pickle.REDUCE + pickle.STOP)
    computed = tmp_path / "computed.pkl"  # the bytes come out of another call: nothing can check them
    computed.write_bytes(pickle.PROTO + b"\x02" + b"ctorch.storage\n_load_from_bytes\n" + b"czlib\ndecompress\n"
                         + unicode("x") + pickle.TUPLE1 + pickle.REDUCE + pickle.TUPLE1 + pickle.REDUCE + pickle.STOP)

    found = only(scan(outer))
    assert found.unreadable == ""
    assert {"torch.storage._load_from_bytes", SYSTEM} <= found.globals
    assert scan(outer).dangerous() == [f"tensor.pkl: {SYSTEM}"]
    assert "cannot be checked" in only(scan(computed)).unreadable
    assert not (tmp_path / "CANARY").exists()


# --- Real models -----------------------------------------------------------------------------------


def training_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(60, 3))
    return features, (features[:, 0] > 0).astype(int)


def models() -> dict[str, Any]:
    features, labels = training_data()
    found: dict[str, Any] = {
        "logistic": LogisticRegression().fit(features, labels),
        "forest": RandomForestClassifier(n_estimators=3, random_state=0).fit(features, labels),
        "pipeline": make_pipeline(StandardScaler(), LogisticRegression()).fit(features, labels),
        "array": np.arange(12.0).reshape(3, 4),
    }
    try:
        import pandas as pd
    except ImportError:  # pandas is optional for lockstep's tests of this module
        return found
    found["dataframe"] = pd.DataFrame({"x": [1.5, 2.5], "label": ["a", "b"], "when": pd.to_datetime(["2024-01-01", "2024-06-01"])})
    return found


def class_name(value: Any) -> str:
    return f"{type(value).__module__}.{type(value).__qualname__}"


def dump(value: Any, path: Path, writer: str) -> None:
    if writer.startswith("pickle-"):
        path.write_bytes(pickle.dumps(value, protocol=int(writer.removeprefix("pickle-"))))
    else:
        joblib.dump(value, path, compress=3 if writer == "joblib-compress3" else 0)


@pytest.mark.parametrize("writer", ["pickle-2", "pickle-4", "pickle-5", "joblib", "joblib-compress3"])
def test_real_models_scan_clean_with_their_classes_listed(tmp_path, writer):
    for name, value in models().items():
        path = tmp_path / f"{name}.bin"
        dump(value, path, writer)

        found = only(scan(path))

        assert found.unreadable == "", (name, found.unreadable)
        assert found.kind == ("joblib" if writer.startswith("joblib") else "pickle"), name
        # protocol 5 rebuilds an array with numpy's _frombuffer, never naming ndarray; the dtype is always there
        expected = {"numpy.dtype"} if isinstance(value, np.ndarray) else {class_name(value)}
        expected |= {class_name(step) for _name, step in getattr(value, "steps", [])}
        assert expected <= found.globals, (name, sorted(found.globals))
        assert scan(path).dangerous() == [], name


def test_joblib_arrays_of_every_kind_are_read_past_exactly(tmp_path):
    """joblib writes arrays' raw bytes into the file after a pickled wrapper: reading past them needs
    the exact size (dtype, shape, alignment padding), and object arrays are a nested pickle."""
    features, labels = training_data()
    value = {
        "float": np.linspace(0, 1, 7), "int": np.arange(5, dtype="<i4"), "big_endian": np.arange(3, dtype=">i8"),
        "bool": np.array([True, False, True]), "unicode": np.array(["héllo", "wörld!"]), "bytes": np.array([b"ab", b"c"]),
        "datetime": np.array(["2024-01-01T10:00", "2024-02-01"], dtype="M8[ns]"), "timedelta": np.array([1, 2], dtype="m8[s]"),
        "complex": np.ones(2, dtype="c16"), "fortran": np.asfortranarray(np.ones((3, 2))), "empty": np.empty((0, 4)),
        "structured": np.zeros(2, dtype=[("a", "<i4"), ("b", "<f8", (2,))]), "half": np.ones(3, dtype="f2"),
        "object": np.array([Fraction(1, 3), "text", None], dtype=object),
        "model": LogisticRegression().fit(features, labels),
    }
    for compress in (0, 3):
        path = tmp_path / f"arrays-{compress}.joblib"
        joblib.dump(value, path, compress=compress)
        loaded = joblib.load(path)
        for key in ("float", "int", "big_endian", "bool", "unicode", "datetime", "structured", "fortran"):
            np.testing.assert_array_equal(loaded[key], value[key])
        assert list(loaded["object"]) == list(value["object"])

        found = only(scan(path))

        assert (found.kind, found.unreadable) == ("joblib", ""), found.unreadable
        # the Fraction is only in the object array's nested pickle, after several raw arrays
        assert {"joblib.numpy_pickle.NumpyArrayWrapper", "numpy.dtype", "fractions.Fraction", class_name(value["model"])} <= found.globals


def test_a_malicious_object_inside_a_joblib_object_array_is_found(tmp_path):
    canary = tmp_path / "CANARY"
    value = {"weights": np.ones(4), "extra": np.array([Payload(os.system, f"touch {canary}"), 1], dtype=object)}
    for compress in (0, 3):
        path = tmp_path / f"model-{compress}.joblib"
        joblib.dump(value, path, compress=compress)

        assert scan(path).dangerous() == [f"{path.name}: {SYSTEM}"]
        assert only(scan(path)).unreadable == ""
        assert not canary.exists()

    joblib.load(tmp_path / "model-3.joblib")  # the control: loading it does run the payload
    assert canary.exists()


def test_a_joblib_file_crafted_to_read_differently_with_pickle_load_is_caught(tmp_path, monkeypatch):
    """joblib skips an array's padding bytes; pickle.load reads them as opcodes. A padding whose length
    byte is "c" (GLOBAL, 99 bytes of padding) hides a payload from a joblib-only reading of the file."""
    monkeypatch.chdir(tmp_path)
    canary = tmp_path / "CANARY"
    honest = tmp_path / "honest.joblib"
    joblib.dump(np.arange(3.0), honest)
    raw = honest.read_bytes()
    data_start = len(raw) - 1 - 3 * 8  # the array's bytes, then STOP
    padding = next(n for n in range(1, 17) if raw[data_start - n - 1] == n and raw[data_start - n:data_start] == b"\xff" * n)
    hidden = os.system.__module__.encode() + b"\nsystem\n(Vtouch CANARY\ntR."  # read after the "c"
    crafted = tmp_path / "crafted.joblib"
    crafted.write_bytes(raw[:data_start - padding - 1] + b"c" + hidden.ljust(ord("c"), b"\xff") + raw[data_start:])
    np.testing.assert_array_equal(joblib.load(crafted), np.arange(3.0))  # a valid joblib file

    assert only(scan(honest)).unreadable == ""
    found = only(scan(crafted))
    assert SYSTEM in found.globals
    assert "crafted to be read two ways" in found.unreadable
    assert not canary.exists()

    with crafted.open("rb") as handle:  # the control: pickle.load runs it
        pickle.load(handle)  # noqa: S301 - the point of the test
    assert canary.exists()


def torch_like_pickle() -> bytes:
    """What torch.save puts in archive/data.pkl for {"weight": tensor}: an OrderedDict of tensors rebuilt
    by torch._utils._rebuild_tensor_v2 from persistent ids naming the storages."""
    storage = (pickle.MARK + unicode("storage") + b"ctorch\nFloatStorage\n" + unicode("0") + unicode("cpu") + pickle.BININT1 + b"\x04"
               + pickle.TUPLE + pickle.BINPERSID)
    tensor = (b"ctorch._utils\n_rebuild_tensor_v2\n" + pickle.MARK + storage + pickle.BININT1 + b"\x00"
              + pickle.BININT1 + b"\x04" + pickle.TUPLE1 + pickle.BININT1 + b"\x01" + pickle.TUPLE1 + pickle.NEWFALSE
              + b"ccollections\nOrderedDict\n" + pickle.EMPTY_TUPLE + pickle.REDUCE + pickle.TUPLE + pickle.REDUCE)
    return (pickle.PROTO + b"\x02" + b"ccollections\nOrderedDict\n" + pickle.EMPTY_TUPLE + pickle.REDUCE
            + unicode("weight") + tensor + pickle.SETITEM + pickle.STOP)


TORCH_GLOBALS = {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch.FloatStorage"}


def test_a_torch_zip_checkpoint_scans_its_pickles_only(tmp_path):
    pickletools.dis(torch_like_pickle(), out=io.StringIO())  # a well-formed stream
    checkpoint = tmp_path / "weights.pt"
    with zipfile.ZipFile(checkpoint, "w") as archive:
        archive.writestr("archive/data.pkl", torch_like_pickle())
        archive.writestr("archive/data/0", b"\x80\x02" + bytes(14))  # raw storage bytes, even pickle-looking ones
        archive.writestr("archive/.data/serialization_id", "1234")

    found = only(scan(checkpoint))

    assert (found.path, found.kind, found.unreadable, found.globals) == ("weights.pt", "torch-zip", "", TORCH_GLOBALS)
    assert scan(checkpoint).dangerous() == []


def test_a_torch_legacy_file_reads_five_pickles_then_stops_at_the_storages(tmp_path):
    legacy = tmp_path / "old.pt"
    storages = struct.pack("<q", 640) + bytes(16)  # 640 elements: the size field starts with 0x80 0x02
    assert storages.startswith(b"\x80\x02")
    legacy.write_bytes(pickle.dumps(modelscan.TORCH_LEGACY_MAGIC, protocol=2) + pickle.dumps(1001, protocol=2)
                       + pickle.dumps({"protocol_version": 1001, "little_endian": True}, protocol=2) + torch_like_pickle()
                       + pickle.dumps(["0"], protocol=2) + storages)

    found = only(scan(legacy))

    assert (found.kind, found.unreadable, found.globals) == ("torch-legacy", "", TORCH_GLOBALS)


def test_a_torch_tar_archive_has_its_pickle_member_scanned(tmp_path):
    legacy = tmp_path / "ancient.pt"
    member = pickle.dumps(Payload(os.system, "true"), protocol=2)
    with tarfile.open(legacy, "w", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo("pickle")
        info.size = len(member)
        archive.addfile(info, io.BytesIO(member))
    plain_tar = tmp_path / "data.tar"
    with tarfile.open(plain_tar, "w") as archive:
        archive.add(legacy, arcname="inside.pt")

    found = only(scan(legacy))
    assert (found.kind, found.unreadable, found.globals) == ("torch-legacy", "", {SYSTEM})
    assert scan(plain_tar).files == ()


def test_an_old_joblib_zfile_is_read_as_joblib(tmp_path):
    """joblib < 0.10 wrote "ZF", the hex length, then zlib data; joblib.load still reads it."""
    inner = pickle.dumps(Payload(os.system, "true"), protocol=2)
    old = tmp_path / "old.pkl"
    old.write_bytes(b"ZF" + hex(len(inner)).encode().ljust(len(hex(2**64))) + zlib.compress(inner))
    with pytest.warns(DeprecationWarning, match="joblib version less than 0.10"):
        assert isinstance(joblib.load(old), int)  # os.system("true") ran in the control: the exit status

    found = only(scan(old))
    assert (found.kind, found.unreadable, found.globals) == ("joblib", "", {SYSTEM})


def test_lz4_without_the_lz4_package_is_unreadable(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "lz4", None)  # whether or not it is installed here
    compressed = tmp_path / "model.joblib"
    compressed.write_bytes(b"\x04\x22\x4d\x18" + bytes(32))

    found = only(scan(compressed))

    assert (found.kind, found.unreadable) == ("joblib", "lz4-compressed: cannot be read without the lz4 package")


# --- Broken and forged files -----------------------------------------------------------------------


@pytest.mark.parametrize(("protocol", "says"), [(2, "truncated"), (4, "truncated")])
def test_a_truncated_pickle_is_unreadable_and_keeps_the_globals_before_the_cut(tmp_path, protocol, says):
    features, labels = training_data()
    # a big array last, so the cut falls after the model's own opcodes (a loader reads a whole
    # protocol 4 frame before running any of it: a cut inside the first frame runs nothing)
    model = {"forest": RandomForestClassifier(n_estimators=2, random_state=0).fit(features, labels), "big": np.zeros(100_000)}
    whole = pickle.dumps(model, protocol=protocol)
    cut = tmp_path / "model.pkl"
    cut.write_bytes(whole[: len(whole) * 3 // 4])

    found = only(scan(cut))

    assert says in found.unreadable
    assert "sklearn.ensemble._forest.RandomForestClassifier" in found.globals
    assert scan(cut).unreadable() == [f"model.pkl: {found.unreadable}"]


@pytest.mark.parametrize("opcode", [pickle.BINBYTES8, pickle.BINUNICODE8, pickle.BYTEARRAY8, pickle.FRAME])
def test_a_huge_length_prefix_is_refused_before_anything_is_allocated(tmp_path, opcode):
    forged = tmp_path / "model.pkl"
    forged.write_bytes(pickle.PROTO + b"\x05" + b"ccollections\nOrderedDict\n" + opcode + struct.pack("<Q", 2**60) + b"x" * 64)

    started = time.monotonic()
    found = only(scan(forged))

    assert time.monotonic() - started < 1
    assert "runs past the end of the file" in found.unreadable
    assert found.globals == {"collections.OrderedDict"}


def test_the_copyreg_extension_registry_is_unreadable(tmp_path):
    stream = pickle.PROTO + b"\x02" + b"ccollections\nOrderedDict\n" + pickle.EXT1 + b"\x01" + pickle.STOP
    with pytest.raises(ValueError, match="unregistered extension code"):
        pickle.loads(stream)  # noqa: S301 - what a real load does with it in this process
    path = tmp_path / "model.pkl"
    path.write_bytes(stream)

    found = only(scan(path))

    assert "copyreg extension registry" in found.unreadable
    assert found.globals == {"collections.OrderedDict"}


def test_out_of_band_buffers_are_unreadable_where_a_plain_load_stops(tmp_path):
    stream = pickle.dumps([np.float64, pickle.PickleBuffer(b"abc")], protocol=5, buffer_callback=lambda _buffer: False)
    with pytest.raises(pickle.UnpicklingError, match="out-of-band"):
        pickle.loads(stream)  # noqa: S301 - what a real load does with it
    path = tmp_path / "model.pkl"
    path.write_bytes(stream)

    found = only(scan(path))

    assert "out-of-band buffer" in found.unreadable
    assert "numpy.float64" in found.globals


def test_decompressed_size_is_capped(tmp_path):
    bomb = tmp_path / "model.joblib"
    joblib.dump(np.zeros(1_000_000), bomb, compress=3)  # 8 MB of array in a few kB
    assert bomb.stat().st_size < 100_000

    found = only(scan(bomb, max_bytes=1_000_000))

    assert found.unreadable.startswith("larger than the 1000000-byte limit")
    assert only(scan(bomb)).unreadable == ""


# --- Folders and sniffing --------------------------------------------------------------------------


def test_a_folder_lists_only_its_pickles_at_any_depth(tmp_path):
    root = tmp_path / "models"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "metrics.csv").write_text("city,population\nParis,2100000\n")
    (root / "sub" / "config.json").write_text('{"n_estimators": 3}')
    (root / "sub" / "deeper" / "model.pkl").write_bytes(pickle.dumps(np.arange(3), protocol=4))
    (root / "README.md").write_text("cat model\n")
    os.mkfifo(root / "pipe")  # opening it would block the scan

    result = scan(root)

    assert [file.path for file in result.files] == ["sub/deeper/model.pkl"]
    assert "numpy.ndarray" in result.globals()


def test_symlinked_files_are_read_where_they_point_and_symlinked_folders_are_not_followed(tmp_path):
    """DVC's `symlink` cache type links each file of an output into the cache: a loader follows the
    link, so the scan does too (skipping it would let a PR hide its model behind its DVC config)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "evil.pkl").write_bytes(pickle.dumps(Payload(os.system, "true")))
    root = tmp_path / "models"
    root.mkdir()
    (root / "model.pkl").write_bytes(pickle.dumps({"weights": [1.0]}, protocol=4))
    (root / "escape.pkl").symlink_to(outside / "evil.pkl")
    (root / "elsewhere").symlink_to(outside, target_is_directory=True)
    (root / "alias.pkl").symlink_to(root / "model.pkl")

    result = scan(root)

    assert [file.path for file in result.files] == ["alias.pkl", "escape.pkl", "model.pkl"]
    assert result.dangerous() == ["escape.pkl: posix.system"]


def test_files_no_pickle_loader_reads_are_not_pickles(tmp_path):
    data_zip = tmp_path / "data.zip"
    with zipfile.ZipFile(data_zip, "w") as archive:
        archive.writestr("train.csv", "a,b\n1,2\n")
    text = tmp_path / "notes.txt"
    text.write_text("cos\nsystem\n(Vtouch x\ntR.")  # a protocol 0 pickle, but not under a pickle's name
    not_really = tmp_path / "notes.pkl"
    not_really.write_text("hello, this is not a pickle\n")
    gzipped_csv = tmp_path / "data.csv.gz"
    gzipped_csv.write_bytes(zlib.compress(b"a,b\n1,2\n", wbits=31))

    for path in (data_zip, text, not_really, gzipped_csv):
        assert scan(path).files == (), path.name
    renamed = tmp_path / "notes.pickle"  # the same protocol 0 stream under a pickle's name is one
    renamed.write_bytes(text.read_bytes())
    assert only(scan(renamed)).globals == {"os.system"}


def test_new_globals_lists_what_the_base_model_does_not_use(tmp_path):
    features, labels = training_data()
    base, pr = tmp_path / "base.pkl", tmp_path / "pr.pkl"
    base.write_bytes(pickle.dumps(LogisticRegression().fit(features, labels)))
    pr.write_bytes(pickle.dumps(RandomForestClassifier(n_estimators=2, random_state=0).fit(features, labels)))

    added = new_globals(scan(pr), scan(base))

    assert {"sklearn.ensemble._forest.RandomForestClassifier", "sklearn.tree._classes.DecisionTreeClassifier"} <= set(added)
    assert "sklearn.linear_model._logistic.LogisticRegression" not in added
    assert added == sorted(added)
    assert new_globals(scan(base), scan(base)) == []


@pytest.mark.parametrize(("name", "dangerous"), [
    (SYSTEM, True), ("os.system", True), ("subprocess.Popen", True), ("builtins.eval", True), ("__builtin__.eval", True),
    ("builtins.getattr", True), ("builtins.set", False), ("builtins.type", False), ("builtins.slice", False),
    ("functools.partial", False), ("functools.reduce", True), ("operator.attrgetter", True),
    ("cloudpickle.cloudpickle._make_function", True), ("cloudpickle.cloudpickle.subimport", True),
    ("cloudpickle.cloudpickle._make_dict_keys", False), ("joblib.externals.cloudpickle.cloudpickle._builtin_type", True),
    ("sklearn.utils.validation.os.system", True), ("collections.OrderedDict.__init__.__globals__", True),
    ("copyreg._reconstructor", False), ("copyreg.__newobj__", False), ("pathlib.PosixPath", False),
    ("pathlib.PosixPath.write_text", True), ("numpy.load", True), ("numpy.core.multiarray._reconstruct", False),
    ("torch._utils._rebuild_tensor_v2", False), ("torch.jit.load", True), ("joblib.numpy_pickle.NumpyArrayWrapper", False),
    ("joblib.numpy_pickle.NDArrayWrapper", True), ("__main__.MyModel", False),
])
def test_is_dangerous(name, dangerous):
    assert is_dangerous(name) is dangerous
