"""What a failed stage's last words tell lockstep to say first (dvcrepo.reproduce), for the
deep-learning projects real repositories hold: code that asks for a GPU the runner lacks, and
Weights & Biases logging. The stages here exit with the libraries' own messages (PyTorch,
Lightning, wandb) printed as those libraries print them; none of them is installed. Also the
default that keeps W&B from failing at all: `WANDB_MODE=offline` for the stages (lockstep/procenv.py);
and a dvc.yaml written for DVC 2, which DVC 3 refuses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lockstep import dvcrepo, procenv
from lockstep.errors import DvcError

pytestmark = pytest.mark.unit

TORCH_CPU_ONLY = """Traceback (most recent call last):
  File "src/evaluate.py", line 12, in <module>
    model = torch.load("models/model.pt")
RuntimeError: Attempting to deserialize object on a CUDA device but torch.cuda.is_available() is False. """ \
    """If you are running on a CPU-only machine, please use torch.load with map_location=torch.device('cpu') to map your storages to the CPU."""
LIGHTNING = ("lightning_fabric.utilities.exceptions.MisconfigurationException: CUDAAccelerator can not run on your system since "
             "the accelerator is not available. The following accelerator(s) is available and can be passed into `accelerator` "
             "argument of `Trainer`: ['cpu'].")
WANDB = """wandb: ERROR api_key not configured (no-tty). call wandb.login(key=[your_api_key])
Traceback (most recent call last):
wandb.errors.errors.UsageError: api_key not configured (no-tty). call wandb.login(key=[your_api_key])"""


def project(tmp_path: Path, said: str) -> Path:
    folder = tmp_path / "ml"
    folder.mkdir()
    (folder / "fail.py").write_text(f"import sys\nsys.stderr.write({said!r} + '\\n')\nsys.exit(1)\n")
    (folder / "dvc.yaml").write_text("stages:\n  evaluate:\n    cmd: python fail.py\n    deps: [fail.py]\n")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q", "--subdir"], cwd=folder, check=True)
    return folder


@pytest.mark.parametrize("said", [TORCH_CPU_ONLY, LIGHTNING], ids=["torch-load", "lightning"])
def test_a_stage_that_wants_a_gpu_says_to_run_on_one_or_fall_back_to_the_cpu(tmp_path, monkeypatch, said):
    folder = project(tmp_path, said)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DvcError) as failed:
        dvcrepo.reproduce(folder, ["evaluate"], env={**os.environ, "DVC_NO_ANALYTICS": "true"})
    assert failed.value.hint.startswith("the stage asks for a GPU (CUDA), and this runner has none"), failed.value.hint
    assert "`runs-on`" in failed.value.hint and "map_location='cpu'" in failed.value.hint
    assert said.splitlines()[-1][:60] in failed.value.message  # and the library's own words follow


def test_a_stage_that_logs_to_weights_and_biases_online_without_a_key_says_how_to_keep_it_local(tmp_path, monkeypatch):
    folder = project(tmp_path, WANDB)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DvcError) as failed:
        dvcrepo.reproduce(folder, ["evaluate"], env={**os.environ, "DVC_NO_ANALYTICS": "true"})
    assert failed.value.hint.startswith("the stage logs to Weights & Biases"), failed.value.hint
    assert "WANDB_MODE=offline" in failed.value.hint and "`WANDB_MODE: disabled`" in failed.value.hint


def test_the_stages_log_to_weights_and_biases_offline_unless_the_project_or_a_key_says_otherwise():
    job = {"PATH": "/usr/bin", "WANDB_API_KEY": "local-key-1234"}
    untrusted = procenv.for_untrusted_code(job)
    assert untrusted["WANDB_MODE"] == "offline" and "WANDB_API_KEY" not in untrusted
    assert procenv.for_untrusted_code(job, {"WANDB_MODE": "disabled"})["WANDB_MODE"] == "disabled"  # lockstep.yaml's env:
    # merged code in a main rebuild keeps the job's key, and then logs as the code says
    assert "WANDB_MODE" not in procenv.for_reviewed_code(job)
    assert procenv.for_reviewed_code({"PATH": "/usr/bin"})["WANDB_MODE"] == "offline"


DVC2_LIVE = """stages:
  train:
    cmd: python train.py
    deps: [train.py]
    outs: [model/seq.h5]
    live:
      dvclive:
        summary: true
        html: true
"""

def dvc_yaml_error(folder: Path, text: str) -> DvcError:
    (folder / "dvc.yaml").write_text(text)
    with pytest.raises(DvcError) as raised:
        _ = dvcrepo.open_repo(folder).index
    return raised.value


def test_a_dvc_yaml_written_for_dvc_2_says_what_dvc_3_reads_instead(tmp_path):
    """DVC 2's per-stage `live:` section (real projects of 2021-22 still have it): DVC 3's own
    error, with its file and line, and the migration first. (DVC 3 still accepts, and ignores,
    DVC 2's `checkpoint: true` on an output.)"""
    folder = project(tmp_path, "")
    error = dvc_yaml_error(folder, DVC2_LIVE)
    assert "dvc.yaml:" in error.message and "extra keys not allowed in stages -> train -> live" in error.message, error.message
    assert error.hint.startswith("this dvc.yaml is written for DVC 2, and DVC 3 no longer reads a stage's `live:` section"), error.hint
    assert "DVCLive's `Live()`" in error.hint
    # any other unknown key keeps the plain advice
    error = dvc_yaml_error(folder, "stages:\n  train:\n    cmd: python train.py\n    comand: x\n")
    assert error.hint.startswith("DVC cannot read this project as it is"), error.hint
