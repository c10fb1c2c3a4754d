"""Rules over the workflow and action YAML itself, and the static checkers on the real files."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from conftest import BIN, ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
ACTIONS = [ROOT / "action.yml", *sorted((ROOT / "actions").glob("*/action.yml"))]
REUSABLE = [p for p in WORKFLOWS if "workflow_call" in (yaml.safe_load(p.read_text()).get(True) or {})]
PINS = ROOT.parent / "shared" / "pins.md"
USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(\S+)(?:\s+#\s*(\S+))?", re.M)


def steps_of(doc: dict) -> list[dict]:
    if "runs" in doc:
        return doc["runs"].get("steps", [])
    return [step for job in doc.get("jobs", {}).values() for step in job.get("steps", [])]


@pytest.mark.parametrize("path", WORKFLOWS + ACTIONS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_expression_inside_run(path):
    for step in steps_of(yaml.safe_load(path.read_text())):
        assert "${{" not in step.get("run", ""), f"{path.name}: pass values to run: through env:"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_permissions_and_timeouts(path):
    doc = yaml.safe_load(path.read_text())
    assert doc["permissions"] == {}, "top level must be permissions: {}"
    for name, job in doc["jobs"].items():
        # a job that calls a reusable workflow takes no timeout: the called jobs have theirs
        assert "timeout-minutes" in job or "uses" in job, f"{name}: no timeout-minutes"
        assert "permissions" in job, f"{name}: no explicit permissions"
    assert "secrets: inherit" not in path.read_text()


@pytest.mark.parametrize("path", REUSABLE, ids=lambda p: p.name)
def test_reusable_workflows_reach_own_actions_through_self_reference(path):
    for ref, _comment in USES.findall(path.read_text()):
        assert not ref.startswith("./"), f"{ref}: ./ resolves in the caller's checkout; use $/"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_no_checkout_persists_credentials(path):
    """Not even the rebuild, which pushes: a token in .git/config is readable by every later step,
    the training stages included, so its push token goes to git for the push only. The one
    exception is this library's own release job, which runs no project code."""
    doc = yaml.safe_load(path.read_text())
    for name, job in doc["jobs"].items():
        for step in job.get("steps", []):
            if str(step.get("uses", "")).startswith("actions/checkout@"):
                expected = path.name == "release.yml"
                assert step["with"]["persist-credentials"] is expected, f"{path.name}:{name}"


def test_the_push_token_reaches_only_the_lockstep_step():
    rebuild = yaml.safe_load((ROOT / "actions" / "rebuild" / "action.yml").read_text())
    steps = rebuild["runs"]["steps"]
    holders = [step for step in steps if "LOCKSTEP_PUSH_TOKEN" in (step.get("env") or {})]
    assert [step["run"] for step in holders] == ["lockstep rebuild"]
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "main-rebuild.yml").read_text())
    (step,) = [s for s in workflow["jobs"]["rebuild"]["steps"] if "push-token" in (s.get("with") or {})]
    assert step["uses"].endswith("/actions/rebuild") and "PUSH_TOKEN" not in str(step.get("env"))


def test_third_party_actions_are_pinned_to_the_shared_pins():
    if not PINS.exists():
        pytest.skip("../shared/pins.md is not beside this checkout")
    rows = re.findall(r"\|\s*([\w.-]+/[\w.-]+)\s*\|\s*(v[\d.]+)\s*\|\s*([0-9a-f]{40})\s*\|", PINS.read_text())
    pins = {name: version for name, version, _sha in rows}
    shas = {name: sha for name, _version, sha in rows}
    seen = 0
    for path in WORKFLOWS + ACTIONS:
        for ref, comment in USES.findall(path.read_text()):
            if ref.startswith(("$/", "./")):
                continue
            name, _, sha = ref.partition("@")
            assert re.fullmatch(r"[0-9a-f]{40}", sha), f"{path.name}: {ref} is not pinned by SHA"
            assert shas.get(name) == sha, f"{path.name}: {name} pin differs from pins.md"
            assert comment == pins[name], f"{path.name}: {name} comment {comment} should be {pins[name]}"
            seen += 1
    assert seen >= 5


def test_workflows_and_actions_match_githubs_schemas():
    consumer = [str(p) for p in sorted((ROOT / "example-project" / "workflows").glob("*.yml"))]
    for schema, files in (("vendor.github-workflows", [str(p) for p in WORKFLOWS] + consumer),
                          ("vendor.github-actions", [str(p) for p in ACTIONS])):
        proc = subprocess.run([str(BIN / "check-jsonschema"), "--builtin-schema", schema, *files],
                              cwd=ROOT, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_and_zizmor_are_clean():
    consumer = [str(p) for p in sorted((ROOT / "example-project" / "workflows").glob("*.yml"))]
    workflows = [str(p) for p in WORKFLOWS]
    lint = subprocess.run([str(BIN / "actionlint"), "-color=false", *workflows, *consumer], cwd=ROOT, capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    audit = subprocess.run([str(BIN / "zizmor"), "--offline", "--persona", "pedantic", "--no-progress", ".", *consumer],
                           cwd=ROOT, capture_output=True, text=True)
    assert audit.returncode == 0, audit.stdout + audit.stderr


def _readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"### `{title}`")
    end = text.find("\n### ", start + 1)
    return text[start : end if end != -1 else None]


@pytest.mark.parametrize("name", ["pr-validate.yml", "main-rebuild.yml", "attest.yml", "promote.yml"])
def test_readme_tables_match_the_workflow_yaml(name):
    doc = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())
    call = doc[True]["workflow_call"]
    section = _readme_section(name)
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    documented = {n for row in rows for n in re.findall(r"`([a-z0-9-]+)`", row.split("|")[1])}
    assert documented == set(call["inputs"]), "README inputs table and YAML inputs differ"
    for secret in call.get("secrets", {}):
        assert f"`{secret}`" in section, f"README does not list secret {secret}"
    for output in call.get("outputs", {}):
        assert f"`{output}`" in section, f"README does not list output {output}"


def _schema_paths(schema: dict, node: dict, prefix: str = "") -> set[str]:
    """Every key of lockstep.yaml as a dotted path; a gate's metric name is `*`."""
    if "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
    paths = set()
    for key, sub in node.get("properties", {}).items():
        paths |= {f"{prefix}{key}"} | _schema_paths(schema, sub, f"{prefix}{key}.")
    if isinstance(node.get("additionalProperties"), dict):
        paths |= _schema_paths(schema, node["additionalProperties"], f"{prefix}*.")
    return paths


def _yaml_paths(value: object, prefix: str = "", gates: bool = False) -> set[str]:
    paths = set()
    if isinstance(value, dict):
        for key, sub in value.items():
            name = "*" if gates else str(key)
            paths |= {f"{prefix}{name}"} | _yaml_paths(sub, f"{prefix}{name}.", gates=prefix == "" and key == "gates")
    return paths


def test_readme_documents_every_lockstep_yaml_key():
    """Each key of the schema is in the README's example file, or named by its full dotted path
    (`commit.max-attempts`): a key that only occurs as a word elsewhere (`min` in "minutes")
    does not count."""
    import json

    schema = json.loads((ROOT / "scripts" / "lockstep" / "schema" / "lockstep.schema.json").read_text())
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## `lockstep.yaml`"):]
    section = section[:section.index("\n## ", 1)]
    example = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert example, "the README's lockstep.yaml section has no example file"
    documented = _yaml_paths(yaml.safe_load(example.group(1)))
    named = re.findall(r"`([a-z][a-z0-9-]*(?:\.(?:[a-z0-9-]+|<[a-z]+>))+)`", section)
    documented |= {re.sub(r"<[a-z]+>", "*", path) for path in named}  # `gates.<metric>.max`
    # a path is documented when it or a longer path through it is
    documented |= {".".join(path.split(".")[:n]) for path in documented for n in range(1, path.count(".") + 1)}
    keys = _schema_paths(schema, schema)
    assert len(keys) > 20 and "gates.*.min" in keys
    missing = sorted(keys - documented)
    assert missing == [], f"lockstep.yaml keys not in the README: {missing}"


# --- promotion, provenance, self-test (issue 18) --------------------------------------------------

LEVEL = {"none": 0, "read": 1, "write": 2}


def _callee(ref: str) -> dict:
    """The reusable workflow a job's `uses:` names in this library ($/..., ./..., OWNER/lockstep/...@v1)."""
    path = re.sub(r"^(\$/|\./|OWNER/lockstep/)", "", ref).split("@")[0]
    return yaml.safe_load((ROOT / path).read_text())


CALLERS = WORKFLOWS + sorted((ROOT / "example-project" / "workflows").glob("*.yml"))


@pytest.mark.parametrize("path", CALLERS, ids=lambda p: p.name)
def test_callers_grant_what_called_workflows_ask(path):
    """GitHub refuses to start a workflow whose called workflow has a job asking for more than the
    calling job grants, whatever that job's `if:` says (checked before conditions)."""
    doc = yaml.safe_load(path.read_text())
    for name, job in doc["jobs"].items():
        ref = str(job.get("uses", ""))
        if ".github/workflows/" not in ref:
            continue
        granted = job.get("permissions") or {}
        for callee_name, callee_job in _callee(ref)["jobs"].items():
            for scope, level in (callee_job.get("permissions") or {}).items():
                assert LEVEL[granted.get(scope, "none")] >= LEVEL[level], (
                    f"{path.name}:{name} grants {scope}: {granted.get(scope, 'none')}, "
                    f"but {ref} job {callee_name} asks for {level}")


def test_promotion_waits_in_its_own_workflow_in_the_named_environment():
    """main-rebuild.yml never promotes with `promote: false` and never asks for `actions: read`
    (GitHub checks a called workflow's permissions before its conditions, so every caller would
    have to grant it); promote.yml, called after it, runs in the environment and reads who approved."""
    doc = yaml.safe_load((ROOT / ".github" / "workflows" / "main-rebuild.yml").read_text())
    inputs = doc[True]["workflow_call"]["inputs"]
    assert inputs["promote"] == {**inputs["promote"], "type": "boolean", "default": True}
    (step,) = [s for s in doc["jobs"]["rebuild"]["steps"] if str(s.get("uses", "")).endswith("/actions/rebuild")]
    assert step["with"]["promote"] == "${{ inputs.promote }}"
    assert set(doc["jobs"]) == {"rebuild"}
    assert "actions" not in doc["jobs"]["rebuild"]["permissions"]

    doc = yaml.safe_load((ROOT / ".github" / "workflows" / "promote.yml").read_text())
    call = doc[True]["workflow_call"]
    assert {name for name, spec in call["inputs"].items() if spec.get("required")} == {"environment", "version", "lock-commit"}
    (promote,) = doc["jobs"].values()
    assert promote["environment"] == "${{ inputs.environment }}"
    assert promote["permissions"] == {"contents": "read", "actions": "read"}
    uses = [str(s.get("uses", "")) for s in promote["steps"]]
    assert uses[0].startswith("actions/checkout@") and uses[-1] == "$/actions/promote"
    assert promote["steps"][0]["with"]["ref"] == "${{ inputs.lock-commit }}"
    (last,) = [s for s in promote["steps"] if s.get("uses") == "$/actions/promote"]
    assert last["with"]["version"] == "${{ inputs.version }}" and last["with"]["github-token"] == "${{ github.token }}"
    assert set(last["env"]) == {"MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"}
    action = yaml.safe_load((ROOT / "actions" / "promote" / "action.yml").read_text())
    assert [s["run"] for s in action["runs"]["steps"]] == ["lockstep promote"]
    assert {"promoted", "approved-by"} <= set(call["outputs"])


ATTEST_PIN = "actions/attest-build-provenance@a2bbfa25375fe432b6a289bc6b6cd05ecd0c4c32"


def test_attestation_is_its_own_workflow_with_only_its_permissions():
    """main-rebuild.yml never asks for `attestations: write` (GitHub checks a called workflow's
    permissions before its conditions, so every caller would have to grant it); attest.yml does,
    for the callers that attest, and attests the subject by name and digest without a checkout."""
    rebuild = yaml.safe_load((ROOT / ".github" / "workflows" / "main-rebuild.yml").read_text())
    call = rebuild[True]["workflow_call"]
    assert "attest" not in call["inputs"]
    assert {"model-path", "model-sha256"} <= set(call["outputs"])
    for name, job in rebuild["jobs"].items():
        assert "attestations" not in (job.get("permissions") or {}), name
        assert not any(str(s.get("uses", "")).startswith("actions/attest-build-provenance@") for s in job["steps"]), name

    doc = yaml.safe_load((ROOT / ".github" / "workflows" / "attest.yml").read_text())
    inputs = doc[True]["workflow_call"]["inputs"]
    assert set(inputs) == {"model-path", "model-sha256"}
    assert all(spec["required"] is True and spec["type"] == "string" for spec in inputs.values())
    (job,) = doc["jobs"].values()
    assert job["permissions"] == {"id-token": "write", "attestations": "write"}
    assert 0 < job["timeout-minutes"] <= 15
    uses = [str(s.get("uses", "")) for s in job["steps"] if "uses" in s]
    assert uses == [ATTEST_PIN], "no checkout: the subject is named by path and digest"
    (step,) = [s for s in job["steps"] if s.get("uses") == ATTEST_PIN]
    assert step["with"] == {"subject-name": "${{ inputs.model-path }}", "subject-digest": "sha256:${{ inputs.model-sha256 }}"}
    # the subject is checked before the action sees it
    assert job["steps"].index(step) == 1 and "run" in job["steps"][0]


def _attest_check(model_path: str, model_sha256: str) -> subprocess.CompletedProcess:
    doc = yaml.safe_load((ROOT / ".github" / "workflows" / "attest.yml").read_text())
    (job,) = doc["jobs"].values()
    script = job["steps"][0]["run"]
    return subprocess.run(["bash", "-e", "-c", script], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "MODEL_PATH": model_path, "MODEL_SHA256": model_sha256})


@pytest.mark.parametrize(("model_path", "model_sha256", "named"), [
    ("", "ab" * 32, "model-path"),
    ("models/model.pkl", "", "model-sha256"),
    ("models/model.pkl", "sha256:" + "ab" * 32, "model-sha256"),
    ("models/model.pkl", "AB" * 32, "model-sha256"),
    ("models/model.pkl", "ab" * 31, "model-sha256"),
    ("models/model.pkl", "ab" * 32 + "\nx", "model-sha256"),
])
def test_attest_refuses_a_subject_that_is_not_a_path_and_a_sha256(model_path, model_sha256, named):
    proc = _attest_check(model_path, model_sha256)
    assert proc.returncode == 2
    assert f"input {named} " in proc.stdout and "needs.rebuild.outputs." in proc.stdout


def test_attest_accepts_main_rebuilds_outputs():
    proc = _attest_check("example-project/models/model.pkl", "0123456789abcdef" * 4)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_readme_attest_job_calls_attest_yml_with_the_rebuild_outputs():
    """The consumer job the README shows grants what attest.yml asks and passes what it needs."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Build provenance"):]
    section = section[: section.index("\n### ", 1)]
    block = section[section.index("```yaml\n") + len("```yaml\n"):]
    jobs = yaml.safe_load(block[: block.index("```")])["jobs"]
    job = jobs["attest"]
    assert job["needs"] == "rebuild" and "rebuild" in jobs
    assert job["if"] == "needs.rebuild.outputs.model-sha256 != ''"
    assert job["uses"].split("@")[0] == "OWNER/lockstep/.github/workflows/attest.yml"
    callee = _callee(job["uses"])
    (callee_job,) = callee["jobs"].values()
    assert job["permissions"] == callee_job["permissions"]
    assert job["with"] == {"model-path": "${{ needs.rebuild.outputs.model-path }}",
                           "model-sha256": "${{ needs.rebuild.outputs.model-sha256 }}"}
    assert "attestations" not in jobs["rebuild"]["permissions"]


def test_readme_promote_job_calls_promote_yml_with_the_rebuild_outputs():
    """The consumer jobs the README shows: the rebuild leaves the alias alone, the promote job
    grants exactly what promote.yml asks and passes the rebuild's version and lock commit."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Promotion that waits for a human"):]
    block = section[section.index("```yaml\n") + len("```yaml\n"):]
    jobs = yaml.safe_load(block[: block.index("```")])["jobs"]
    assert jobs["rebuild"]["with"]["promote"] is False
    job = jobs["promote"]
    assert job["needs"] == "rebuild" and job["uses"].split("@")[0] == "OWNER/lockstep/.github/workflows/promote.yml"
    (callee_job,) = _callee(job["uses"])["jobs"].values()
    assert job["permissions"] == callee_job["permissions"]
    assert job["with"]["version"] == "${{ needs.rebuild.outputs.model-version }}"
    assert job["with"]["lock-commit"] == "${{ needs.rebuild.outputs.lock-commit }}"


def test_self_test_calls_the_library_through_self_references():
    doc = yaml.safe_load((ROOT / ".github" / "workflows" / "self-test.yml").read_text())
    assert set(doc[True]) == {"pull_request", "push", "workflow_dispatch"}
    called = {name: job["uses"] for name, job in doc["jobs"].items() if "uses" in job}
    assert called == {"validate": "$/.github/workflows/pr-validate.yml", "rebuild": "$/.github/workflows/main-rebuild.yml",
                      "promote": "$/.github/workflows/promote.yml", "attest": "$/.github/workflows/attest.yml"}
    for name in called:
        job = doc["jobs"][name]
        callee = _callee(job["uses"])
        assert set(job["with"]) <= set(callee[True]["workflow_call"]["inputs"]), name
        assert set(job.get("secrets", {})) <= set(callee[True]["workflow_call"].get("secrets") or {}), name
        if name in ("attest", "promote"):
            continue
        assert job["with"]["working-directory"] == "example-project"
        assert "needs.configured.outputs.ready == 'true'" in job["if"]
    # promotion through the lockstep-self-test environment, by promote.yml after the rebuild
    assert doc["jobs"]["rebuild"]["with"]["promote"] is False
    promote = doc["jobs"]["promote"]
    assert promote["needs"] == "rebuild" and promote["with"]["environment"] == "lockstep-self-test"
    assert promote["with"]["version"] == "${{ needs.rebuild.outputs.model-version }}"
    # the rebuilt model's provenance, attested by a job of its own after the rebuild
    attest = doc["jobs"]["attest"]
    assert attest["needs"] == "rebuild" and "needs.rebuild.outputs.model-sha256 != ''" in attest["if"]
    assert attest["with"] == {"model-path": "${{ needs.rebuild.outputs.model-path }}",
                              "model-sha256": "${{ needs.rebuild.outputs.model-sha256 }}"}



@pytest.mark.parametrize(("pattern", "fixture"), [("(a)", "ingest-external"), ("(c)", "persist-outputs")])
def test_readme_ingestion_stages_are_the_fixtures_stages(pattern, fixture):
    """The README's ingestion patterns are the stages the tests run (tests/projects/...): the same
    fields, `always_changed` and output options (`persist`), the paths aside."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Making new data visible to DVC"):]
    block = section[section.index(f"\n{pattern} "):]
    block = block[block.index("```yaml\n") + len("```yaml\n"):]
    (readme,) = yaml.safe_load(block[: block.index("```")])["stages"].values()
    tested = yaml.safe_load((ROOT / "tests" / "projects" / fixture / "dvc.yaml").read_text())["stages"]
    stage = next(iter(tested.values()))  # the ingestion stage comes first in the pipeline, as the README says

    def options(outs: list) -> list[dict]:
        return [next(iter(out.values())) if isinstance(out, dict) else {} for out in outs]

    assert sorted(readme) == sorted(stage), f"README {pattern}: fields {sorted(readme)}, the fixture's {sorted(stage)}"
    assert readme.get("always_changed") == stage.get("always_changed")
    assert options(readme["outs"]) == options(stage["outs"])
