"""Generated malformed input for the readers lockstep owns: lockstep.yaml (`check-config`), the
report artifact (`comment --from-artifact`) and metrics/params files (`metrics.parse_file`).

Every case must end with a documented exit code and a message, never 70 (a bug) and never a
traceback, each well under a few seconds. The generator is seeded: a failure names its case and
is reproduced by running the same test again. lockstep reads no event payload file itself (the
workflows hand it event fields as inputs), so there is no payload reader to fuzz.
"""

from __future__ import annotations

import json
import random
import time

import pytest

from lockstep import cli, report as reportmod, safeload
from lockstep.errors import EXIT_ARTIFACT, EXIT_CONFIG, EXIT_INTERNAL, EXIT_OK
from lockstep.metrics import parse_file
from test_comment import REPO, sample

from conftest import EXAMPLE
from github_api import TOKEN, GitHubAPI

SEED = 20261122
CASES = 80
SLOW = 30.0  # seconds: a guard against the minutes an unbounded reader took, not a speed target (loaded 2-core CI)

YAML_BITS = [":", "- ", "{", "}", "[", "]", "&a ", "*a", "!!python/object/apply:os.system ['id']", "!!binary AAAA",
             "? ", "|", ">", "'", '"', "#", "\t", "\n", "  ", "---\n", "...", "<<: *a", "%YAML 1.1\n", "!!set {a}",
             "2024-13-45", "1e400", ".nan", "-.inf", "0x1F", "0o17", "~", "null", "\\u0000", "\x85", "\ufeff"]
JSON_VALUES = [None, True, False, 0, -1, 2**70, 1e308, -0.0, "", "x" * 5000, "<img src=x>", "@octocat", [], {}, [[[]]],
               {"a": {"b": {"c": []}}}, ["a", 1, None], "\u202e", "\ud800", "--upload-pack=x"]


def _yaml_cases(rng: random.Random) -> list[tuple[str, bytes]]:
    example = (EXAMPLE / "lockstep.yaml").read_text()
    lines = example.splitlines(keepends=True)
    cases: list[tuple[str, bytes]] = [
        ("empty", b""), ("only a comment", b"# nothing\n"), ("a list", b"- version: 1\n"), ("a scalar", b"42\n"),
        ("not UTF-8", b"version: 1\nmodel: {name: \xff\xfe}\n"), ("NUL bytes", b"version: 1\n\x00\x00\n"),
        ("two documents", b"version: 1\n---\nversion: 1\n"), ("undefined alias", b"version: 1\nx: *nowhere\n"),
        ("merge of a scalar", b"version: 1\nx:\n  <<: 5\n"), ("python tag", b"version: 1\nx: !!python/object/apply:os.system ['id']\n"),
        ("huge string", b"version: 1\nmodel: {name: " + b"a" * 1_200_000 + b"}\n"),
        ("huge key count", b"version: 1\n" + b"".join(b"k%d: 1\n" % i for i in range(30_000))),
        ("deep flow", b"version: 1\nx: " + b"[" * 20_000 + b"]" * 20_000 + b"\n"),
        ("deep block", b"version: 1\n" + b"".join(b" " * i + b"k:\n" for i in range(3000))),
        ("bad timestamp", b"version: 1\nmodel: {name: 2024-13-45}\n"),
        ("complex key", b"version: 1\n? [a, b]\n: 1\n"),
    ]
    for width, depth in ((10, 9), (3, 20), (50, 4), (2, 40)):
        text = "version: 1\nx:\n  l0: &l0 [" + ", ".join(["lol"] * width) + "]\n"
        for level in range(1, depth):
            text += f"  l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * width) + "]\n"
        cases.append((f"alias bomb {width}x{depth}", text.encode()))
    for index in range(CASES):
        kind = rng.choice(["random bytes", "mutated", "wrong types", "spliced"])
        if kind == "random bytes":
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))
        elif kind == "mutated":
            chars = list(example)
            for _ in range(rng.randrange(1, 8)):
                position = rng.randrange(len(chars))
                if rng.random() < 0.5:
                    chars.insert(position, rng.choice(YAML_BITS))
                else:
                    del chars[position]
            data = "".join(chars).encode("utf-8", "surrogatepass")
        elif kind == "wrong types":
            picked = list(lines)
            line_no = rng.randrange(len(picked))
            if ":" in picked[line_no]:
                head = picked[line_no].split(":", 1)[0]
                picked[line_no] = f"{head}: {json.dumps(rng.choice(JSON_VALUES), ensure_ascii=False)[:3000]}\n"
            data = "".join(picked).encode("utf-8", "surrogatepass")
        else:
            picked = list(lines)
            rng.shuffle(picked)
            data = "".join(picked[: rng.randrange(1, len(picked))]).encode()
        cases.append((f"{kind} #{index}", data))
    return cases


def _artifact_cases(rng: random.Random) -> list[tuple[str, bytes]]:
    rep = sample()
    rep.add(reportmod.Check("gates", "Gates", "pass", "ok", ["d1", "d2"]))
    rep.params.append(("train.n", 1, 2))
    valid = json.loads(rep.to_json())
    cases: list[tuple[str, bytes]] = [
        ("valid", json.dumps(valid).encode()), ("empty", b""), ("null", b"null"), ("a list", b"[]"), ("a string", b'"x"'),
        ("not UTF-8", b'{"project": "\xff"}'), ("BOM", "\ufeff".encode() + json.dumps(valid).encode()),
        ("deep", b"[" * 100_000 + b"]" * 100_000), ("deep in a field", json.dumps({**valid, "checks": [[[[[[[[[[[]]]]]]]]]]]}).encode()),
        ("NaN verdict", json.dumps({**valid, "passed": float("nan")}).encode()), ("huge number", b'{"passed": 1e99999}'),
        ("truncated", json.dumps(valid).encode()[:-7]),
    ]

    def mutate(value, depth=0):
        if isinstance(value, dict) and value:
            key = rng.choice(sorted(value))
            if rng.random() < 0.6 or depth > 3:
                value[key] = rng.choice(JSON_VALUES)
            else:
                mutate(value[key], depth + 1)
        elif isinstance(value, list) and value:
            index = rng.randrange(len(value))
            if rng.random() < 0.5 or depth > 3:
                value[index] = rng.choice(JSON_VALUES)
            else:
                mutate(value[index], depth + 1)

    for index in range(CASES):
        data = json.loads(json.dumps(valid))
        for _ in range(rng.randrange(1, 4)):
            mutate(data)
        text = json.dumps(data, ensure_ascii=rng.random() < 0.5)
        if rng.random() < 0.2:
            position = rng.randrange(len(text))
            text = text[:position] + rng.choice(['"', "{", "]", ",", "\\", "\x00"]) + text[position:]
        cases.append((f"mutated #{index}", text.encode("utf-8", "surrogatepass")))
    return cases


@pytest.fixture(scope="module")
def shared_api():
    """One GitHub API test server for the module (starting and stopping one per case costs 0.5 s)."""
    server = GitHubAPI()
    yield server
    server.close()
    assert server.schema_errors == []


@pytest.fixture
def api(shared_api):
    shared_api.comments.clear()
    shared_api.pulls.clear()
    return shared_api


YAML_CASES = _yaml_cases(random.Random(SEED))
ARTIFACT_CASES = _artifact_cases(random.Random(SEED + 1))


@pytest.mark.parametrize(("name", "data"), YAML_CASES, ids=[c[0] for c in YAML_CASES])
def test_lockstep_yaml(tmp_path, capsys, name, data):
    (tmp_path / "lockstep.yaml").write_bytes(data)
    started = time.monotonic()
    code = cli.main(["check-config", "--working-directory", str(tmp_path)])
    elapsed = time.monotonic() - started
    captured = capsys.readouterr()
    assert code in (EXIT_OK, EXIT_CONFIG), f"{name}: exit {code}\n{captured.out[-3000:]}{captured.err[-3000:]}"
    assert "Traceback" not in captured.out + captured.err
    if code == EXIT_CONFIG:
        assert "lockstep.yaml" in captured.err and len(captured.err.strip()) > 20
    assert elapsed < SLOW, f"{name}: {elapsed:.2f}s"


@pytest.mark.parametrize(("name", "data"), ARTIFACT_CASES, ids=[c[0] for c in ARTIFACT_CASES])
def test_report_artifact(tmp_path, api, capsys, monkeypatch, name, data):
    folder = tmp_path / "artifact"
    folder.mkdir()
    (folder / "results.json").write_bytes(data)
    api.add_pull(REPO, 5, "a" * 40)
    monkeypatch.setenv("GITHUB_API_URL", api.url)
    started = time.monotonic()
    code = cli.main(["comment", "--report-dir", str(folder), "--from-artifact", "true", "--head-sha", "a" * 40,
                     "--repository", REPO, "--github-token", TOKEN])
    elapsed = time.monotonic() - started
    captured = capsys.readouterr()
    assert code in (EXIT_OK, EXIT_ARTIFACT), f"{name}: exit {code}\n{captured.out[-3000:]}{captured.err[-3000:]}"
    assert code != EXIT_INTERNAL and "Traceback" not in captured.out + captured.err
    if code == EXIT_ARTIFACT:
        assert "results.json" in captured.err or "artifact" in captured.err
        assert api.comment_objects(REPO, 5) == []
    else:
        assert len(api.comment_objects(REPO, 5)) == 1
    assert elapsed < SLOW, f"{name}: {elapsed:.2f}s"


def test_the_valid_cases_are_accepted(tmp_path, api, capsys, monkeypatch):
    """The generators start from valid input: the fuzz cases are malformed, not the baseline."""
    assert YAML_CASES and ARTIFACT_CASES
    (tmp_path / "lockstep.yaml").write_bytes((EXAMPLE / "lockstep.yaml").read_bytes())
    assert cli.main(["check-config", "--working-directory", str(tmp_path)]) == EXIT_OK
    test_report_artifact(tmp_path, api, capsys, monkeypatch, "valid", dict(ARTIFACT_CASES)["valid"])
    assert len(api.comment_objects(REPO, 5)) == 1


@pytest.mark.parametrize("seed", range(6))
def test_metrics_and_params_files(seed):
    """parse_file returns flat values or raises safeload.LoadError (a ValueError) naming the file."""
    texts = [case[1] for case in YAML_CASES[seed::6]] + [case[1] for case in ARTIFACT_CASES[seed::6]]
    for data in texts:
        text = data.decode("utf-8", "replace")
        for name in ("metrics.json", "params.yaml"):
            started = time.monotonic()
            try:
                flat = parse_file(text, name)
            except safeload.LoadError as exc:
                assert str(exc).startswith(name)
            else:
                assert isinstance(flat, dict)
            assert time.monotonic() - started < SLOW
