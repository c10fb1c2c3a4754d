"""DVC's Hydra integration, in parts: which settings lockstep composes, how it composes them (DVC's
own `compose_and_dump`, in a child that imports nothing of the project) and how a committed
params.yaml is compared with the composition. The whole path, through PR validation and main
rebuilds, is in tests/test_shapes.py (`hydra-layout`)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lockstep import dvcrepo
from lockstep.errors import DvcError, InputError

pytestmark = pytest.mark.unit
FIXTURE = Path(__file__).parent / "projects" / "hydra-layout"


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(FIXTURE, root)
    return root


def test_a_committed_params_file_that_is_the_composition_in_another_order_has_no_drift():
    committed = {"prepare": {"noise": 0.1, "seed": 7}, "train": {"steps": 1}}
    assert dvcrepo.composition_drift(committed, {"train": {"steps": 1}, "prepare": {"seed": 7, "noise": 0.1}}) == []


def test_drift_names_each_key_with_both_values():
    committed = {"train": {"steps": 1, "old": "x"}, "prepare": {"seed": 7}}
    composed = {"train": {"steps": 50, "lr": 0.1}, "prepare": {"seed": 7}}
    said = [change.describe() for change in dvcrepo.composition_drift(committed, composed)]
    assert said == [
        "params.yaml:train.lr is <missing> where the composition gives 0.1",
        "params.yaml:train.old is 'x' where the composition gives <missing>",
        "params.yaml:train.steps is 1 where the composition gives 50",
    ]


def test_a_long_or_hostile_value_is_said_as_a_bounded_repr():
    composed = {"note": "line\n::error::" + "x" * 200}
    said = dvcrepo.composition_drift({"note": "ok"}, composed)[0].describe()
    assert "\n" not in said and "\\n::error::" in said and said.endswith("…")


def test_settings_default_as_dvc_reads_them(project):
    hydra = dvcrepo.hydra_of(project, {"enabled": True})
    assert (hydra.config_dir, hydra.config_name, hydra.refused) == ("conf", "config", "")
    assert hydra.describe() == "conf/config.yaml"


@pytest.mark.parametrize(("conf", "refused"), [
    ({"config_module": "myproject.conf"}, "importing it runs its code"),
    ({"config_dir": "../elsewhere"}, "is outside the project"),
    ({"config_dir": "/etc"}, "is outside the project"),
    ({"config_dir": "settings"}, "settings/ does not exist"),
])
def test_settings_lockstep_does_not_compose_say_why(project, conf, refused):
    assert refused in dvcrepo.hydra_of(project, {"enabled": True, **conf}).refused


def test_hydra_plugins_where_dvc_would_import_them_are_refused(project):
    # DVC puts `plugins_path` (the project's root unless set) on sys.path and imports every
    # module of its `hydra_plugins` package: the project's code
    (project / "hydra_plugins" / "mine").mkdir(parents=True)
    assert "Hydra plugins" in dvcrepo.hydra_of(project, {"enabled": True}).refused
    (project / "tools").mkdir()
    shutil.move(project / "hydra_plugins", project / "tools" / "hydra_plugins")
    assert dvcrepo.hydra_of(project, {"enabled": True}).refused == ""
    assert "Hydra plugins" in dvcrepo.hydra_of(project, {"enabled": True, "plugins_path": "tools"}).refused


def test_a_config_file_linked_out_of_the_project_is_refused(project, tmp_path):
    (tmp_path / "secret.yaml").write_text("steps: 1\n")
    (project / "conf" / "train" / "linked.yaml").symlink_to(tmp_path / "secret.yaml")
    assert "symlinks leading out of the project (train/linked.yaml)" in dvcrepo.hydra_of(project, {"enabled": True}).refused


def test_composes_as_dvc_exp_run_and_overrides_as_its_set_param(project):
    hydra = dvcrepo.hydra_of(project, {"enabled": True})
    assert dvcrepo.compose(project, hydra) == {"train": {"steps": 1}, "prepare": {"seed": 7, "noise": 0.1}}
    composed = dvcrepo.compose(project, hydra, ["train=large", "prepare.seed=8"])
    assert composed == {"train": {"steps": 50}, "prepare": {"seed": 8, "noise": 0.1}}


def test_composing_runs_none_of_the_projects_code(project, tmp_path, monkeypatch):
    # what the composition could be made to import or call: a `hydra_plugins` package at the root
    # (where DVC looks by default), a package named by a `pkg://` search path, a `_target_`; and
    # an environment variable holding a secret
    marks = tmp_path / "marks"
    marks.mkdir()
    (project / "hydra_plugins" / "mine").mkdir(parents=True)
    (project / "hydra_plugins" / "mine" / "__init__.py").write_text(f"open({str(marks / 'plugin')!r}, 'w')\n")
    (project / "evilpkg").mkdir()
    (project / "evilpkg" / "__init__.py").write_text(f"open({str(marks / 'package')!r}, 'w')\n")
    config = project / "conf" / "config.yaml"
    config.write_text(config.read_text() + f"hydra:\n  searchpath: [pkg://evilpkg]\nrun:\n  _target_: os.system\n"
                      f"  command: touch {marks / 'target'}\n")
    hydra = dvcrepo.Hydra("conf", "config")  # as if the plugins were not there: the child still does not import them
    composed = dvcrepo.compose(project, hydra)
    assert composed["run"]["_target_"] == "os.system"  # data, never called
    assert sorted(p.name for p in marks.iterdir()) == []
    monkeypatch.setenv("DEPLOY_TOKEN", "s3cr3t")
    config.write_text(config.read_text() + "leak: ${oc.env:DEPLOY_TOKEN}\n")
    with pytest.raises(DvcError) as caught:
        dvcrepo.compose(project, hydra)
    assert "DEPLOY_TOKEN" in caught.value.message and "s3cr3t" not in caught.value.message


def test_a_config_hydra_cannot_compose_is_a_named_dvc_error(project):
    config = project / "conf" / "config.yaml"
    config.write_text(config.read_text().replace("train: small", "train: medium"))
    with pytest.raises(DvcError) as caught:
        dvcrepo.compose(project, dvcrepo.hydra_of(project, {"enabled": True}))
    assert caught.value.message.startswith("conf/config.yaml: Hydra cannot compose it: ")
    assert "train/medium" in caught.value.message and "Traceback" not in caught.value.message


def test_set_params_compose_params_yaml_with_hydra_overrides(project):
    hydra = dvcrepo.hydra_of(project, {"enabled": True})
    changes = dvcrepo.compose_params(project, hydra, ["train=large", "params.yaml:prepare.noise=0.2"])
    assert changes == {"train": ({"steps": 1}, {"steps": 50}), "params.yaml:prepare.noise": (0.1, 0.2)}
    import yaml

    assert yaml.safe_load((project / "params.yaml").read_text()) == {"train": {"steps": 50}, "prepare": {"seed": 7, "noise": 0.2}}
    assert (project / "conf" / "train" / "small.yaml").read_text() == "steps: 1\n"  # the config is not edited


@pytest.mark.parametrize(("assignment", "said"), [
    ("train.nope=3", "train.nope does not exist in what conf/config.yaml composes"),
    ("+train.extra=3", "is not KEY=VALUE"),
    ("~train.steps", "is not KEY=VALUE"),
    ("train.steps=$(id)", "characters a shell would interpret"),
])
def test_set_params_under_hydra_set_only_existing_params_to_plain_values(project, assignment, said):
    before = (project / "params.yaml").read_text()
    with pytest.raises(InputError) as caught:
        dvcrepo.compose_params(project, dvcrepo.hydra_of(project, {"enabled": True}), [assignment])
    assert said in caught.value.message
    assert (project / "params.yaml").read_text() == before
