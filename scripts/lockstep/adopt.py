"""`lockstep init`: adopt lockstep on an existing DVC project without changing the project.

From what DVC knows of the project (its stages, outputs and the metrics `dvc metrics show`
shows), write `lockstep.yaml` (model path, evaluation stages, a gate per metric with its
direction guessed from the name and marked for review) and the consumer workflows, validate
them, and say what to commit and which secrets to set. Nothing is overwritten without `force`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from . import config as configmod, dvcrepo, gitrepo, lineage
from .errors import InputError
from .metrics import as_number

WORKFLOWS = ("ml-pr.yml", "ml-main.yml", "ml-pr-comment.yml", "ml-retrain.yml")
DEFAULT_LIBRARY = "lockstep-dev/lockstep@v1"

# Metric names whose smaller values are better; anything else is taken as higher-is-better.
_LOWER_IS_BETTER = re.compile(
    r"(loss|error|err\b|mse|rmse|mae|mape|smape|perplexity|wer|cer|fpr|fnr|brier|latency|duration|time|cost|distance)",
    re.IGNORECASE,
)
# Which metrics get a gate (`choose_gates`). Held-out and training splits, as names spell them
# (`acc.test`, `val_loss`, `metrics/train.json:accuracy`); bookkeeping values that are no score.
_HELD_OUT = frozenset({"test", "val", "valid", "validation", "eval", "evaluate", "evaluation", "holdout", "dev"})
_TRAINING = frozenset({"train", "training", "fit"})
_BOOKKEEPING = re.compile(r"^(support|count|samples|epochs?|steps?|seed|iterations?|n_iter|n_estimators|size)$|^(n|num)_|_(count|size)$",
                          re.IGNORECASE)
_QUALITY = re.compile(r"^(acc|accuracy|balanced_accuracy|f1|f1_score|f1-score|fscore|auc|roc_auc|avg_prec|average_precision|ap|"
                      r"precision|recall|r2|rmse|mse|mae|mape|loss|log_loss|logloss|iou|miou|map|bleu|rouge\w*|ndcg|mrr|kappa|mcc)$",
                      re.IGNORECASE)
# scores that can be near zero or negative (a coefficient of determination, an agreement): a
# regression relative to them means nothing, so their gate allows an absolute one
_SIGNED = re.compile(r"^(r2|r_2|r2_score|kappa|cohen_kappa|mcc|matthews_corrcoef|explained_variance)$", re.IGNORECASE)
MAX_GATES = 12
_MODEL_NAME = re.compile(r"(model|\.pkl$|\.pickle$|\.joblib$|\.pt$|\.pth$|\.onnx$|\.h5$|\.keras$|\.safetensors$|\.bin$|\.cbm$|\.ubj$)",
                         re.IGNORECASE)
_SECRETS_BY_SCHEME = {
    "s3": "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or pass aws-role-to-assume for OIDC)",
    "gs": "GOOGLE_CREDENTIALS: a service account's JSON key (lockstep hands it to DVC in memory); DVC_REMOTE_AUTH for other options",
    "azure": "DVC_REMOTE_AUTH with `connection_string=…` (or account_name/account_key)",
    "ssh": "SSH_PRIVATE_KEY (an unencrypted private key) and SSH_KNOWN_HOSTS (`ssh-keyscan` of the server), "
           "or DVC_REMOTE_AUTH with `password=…`",
    "http": "DVC_REMOTE_AUTH with `auth=basic`, `user=…`, `password=…` when the server needs them",
    "https": "DVC_REMOTE_AUTH with `auth=basic`, `user=…`, `password=…` when the server needs them",
    "webdav": "DVC_REMOTE_AUTH with `user=…` and `password=…`",
    "webdavs": "DVC_REMOTE_AUTH with `user=…` and `password=…`",
    "gdrive": "GDRIVE_CREDENTIALS_DATA: a service account's JSON key (with `gdrive_use_service_account = true` in .dvc/config), "
              "or the user credentials DVC saved on a developer's machine",
    "oss": "DVC_REMOTE_AUTH with `oss_key_id=…` and `oss_key_secret=…`",
    "hdfs": "DVC_REMOTE_AUTH with `user=…` when the cluster needs it (a Kerberos ticket must be on the runner)",
    "webhdfs": "DVC_REMOTE_AUTH with `user=…` and `password=…` (or `token=…`) when the cluster needs them",
}
# What the generated workflows hand lockstep's reusable workflows, by remote URL scheme (a secret
# the repository does not have is passed as empty, which lockstep treats as not set).
_AWS_SECRETS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
_MLFLOW_SECRETS = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")


@dataclass
class Plan:
    project: Path
    folder: str  # the project's folder in the repository ('.' at the root)
    label: str
    model_name: str
    model_path: str | None
    evaluation_stages: list[str]
    gates: dict[str, str]  # metric -> direction
    not_gated: list[tuple[str, str]] = field(default_factory=list)  # metric, why it has no gate
    env: dict[str, str] = field(default_factory=dict)
    remote_scheme: str = ""  # the default remote's
    notes: list[str] = field(default_factory=list)
    remote_schemes: tuple[str, ...] = ()  # every remote's, in name order ("local" for a folder)
    metrics_files: list[str] = field(default_factory=list)  # when dvc.yaml declares no metrics: the ones init chose
    metrics_why: str = ""  # where those come from (an output, dvclive's folder)
    skip_stages: list[str] = field(default_factory=list)  # stages a rebuild should not run (they call the registry)


def plan(project_dir: Path, repository: str = "") -> Plan:
    project = project_dir.resolve()
    repo = dvcrepo.open_repo(project)
    prefix = gitrepo.prefix_of(project)
    label = lineage.project_label(prefix, lineage.repository(repository), project)
    everything = dvcrepo.metrics_owners(repo)
    declared = [(name, path) for name, path in dvcrepo.model_artifacts(repo) if dvcrepo.output_owner(repo, path)]
    guessed = declared[0][1] if declared else (_guess_model(repo, everything) if everything else None)
    stages = dvcrepo.metrics_stages(repo, guessed)
    training = [address for address in everything if address not in stages]
    metrics_files: list[str] = []
    metrics_why = ""
    notes = []
    if not stages:  # no metrics declared: the evaluation's JSON or YAML outputs, for the user to review
        stage, metrics_files = dvcrepo.undeclared_metrics(repo)
        stages = [stage] if stage else []
        if stage:
            metrics_why = _metrics_why(repo, metrics_files)
            notes.append(f"dvc.yaml declares no metrics: lockstep reads {metrics_why} as the metrics (`metrics.files`), "
                         f"written by {stage}, its evaluation stage (both marked REVIEW in lockstep.yaml). "
                         "Declaring them in dvc.yaml under the stage's `metrics:` is what `dvc metrics show` reads too")
    if not stages:
        raise InputError(
            f"{project}: no stage writes a metrics file DVC knows, and no stage that reads another's output writes "
            "a JSON or YAML file holding numbers, so there is nothing to validate",
            hint="declare the evaluation's metrics in dvc.yaml (stage `metrics:` or top-level `metrics:`), run `dvc repro`, "
                 "then run `lockstep init` again",
        )
    read = dvcrepo.read_metrics(repo, files=metrics_files or None)
    if not read.values:
        read = dvcrepo.read_metrics(repo, rev="HEAD", files=metrics_files or None)
    written = metrics_files or dvcrepo.metrics_written_by(repo, stages)
    gates, not_gated = choose_gates(read.values, dvcrepo.params_values(repo, project),
                                    set(read.only(written).values) if written else None)
    notes += [f"no gate for {why}" for why in read.no_numbers.values()]
    if not gates and not read.no_numbers:
        notes.append("no metric values found (run `dvc repro` first to have gates written for them)")
    # a model that dvc.yaml declares under `artifacts:` (DVC's model registry) names itself
    model_path = declared[0][1] if declared else _guess_model(repo, stages)
    if training:
        files = ", ".join(dvcrepo.metrics_written_by(repo, training)) or "metrics"
        notes.append(f"{', '.join(training)}: write(s) metrics too ({files}), but train(s) the model or run(s) before it: "
                     "those are the training run's own (a time, a training loss), shown and compared with the base, not "
                     "re-evaluated in CI (that would retrain the model) and not gated; evaluation.stages lists the stages "
                     "that evaluate the model")
    if model_path and stages and dvcrepo.unlinked_model(repo, stages, model_path):
        notes.append(
            f"{', '.join(stages)} evaluate(s) the model {model_path} without listing it among its deps in dvc.yaml, so "
            "`dvc repro` does not re-run it when the model changes, and its committed metrics can be an older model's. "
            "lockstep pulls the model for it, re-evaluates it in CI (a PR whose committed metrics are not its model's "
            "fails, saying so), and a main rebuild runs it after the training. Add the model to its deps to have "
            "`dvc repro` do the same"
        )
    if model_path is None:
        notes.append("no model output found: set model.path in lockstep.yaml to the file or folder the training stage writes")
    owner = dvcrepo.output_owner(repo, model_path) if model_path else None
    if owner is not None and not owner.stage:
        notes.append(
            f"the model {model_path} is added with `dvc add` ({owner.dvcfile}): no stage in dvc.yaml trains it. PR validation "
            "re-evaluates it as it is; a main rebuild (ml-main.yml, ml-retrain.yml) has nothing to retrain and stops (exit 2) "
            "before doing anything. To have CI retrain it, make its training a stage (`dvc remove "
            f"{owner.dvcfile}`, then `dvc stage add -n train ... -o {model_path} ...`)"
        )
    if owner is not None and owner.stage and owner.path in dvcrepo.unpushed_outputs(repo, [owner.stage]):
        notes.append(
            f"the model {model_path} is `push: false` in dvc.yaml: no remote holds it, so PR validation cannot re-evaluate "
            "the developer's model and fails its Pull check, naming it. Remove `push: false` from it (what the model is "
            "trained from may stay `push: false`: CI makes that again)"
        )
    others = _other_models(repo, model_path, owner.stage if owner is not None else "")
    if model_path and others:
        listed = ", ".join(f"{path} ({stage})" for path, stage in others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        notes.append(
            f"other stages write outputs that look like models too: {listed}. lockstep judges and rebuilds one model, "
            f"{model_path} (model.path): the metrics of the others are shown and compared with the base as the pull request "
            "commits them, not recomputed in CI, and a gate on them asks for a maintainer's review. If they are served "
            "together, write them to one folder output and point model.path at it; if they compete, point model.path at "
            "the one the team ships"
        )
    skip_stages, registers = _registry_stages(repo, owner.stage if owner is not None else "", stages)
    if skip_stages:
        notes.append(
            f"{', '.join(skip_stages)} call(s) MLflow's model registry ({registers[skip_stages[0]]}). A main rebuild "
            "registers the model itself, with its lineage, and runs with the job's MLflow credentials, so running them "
            "too would register or move a second version: lockstep.yaml skips them in rebuilds (`rebuild.skip-stages`, "
            "marked REVIEW); their dvc.lock entries stay as the developer's `dvc repro` left them"
        )
    model_stage = owner.stage if owner is not None else ""
    if model_stage in registers:
        notes.append(
            f"the training stage {model_stage} registers the model itself ({registers[model_stage]}): each main rebuild "
            "would register two versions, the training's and lockstep's (with its lineage, alias and model card). "
            "Leave registering to lockstep (drop `registered_model_name=`, or the registry call) or keep the training's "
            "and run lockstep's rebuild with `register: false`"
        )
    notes += _machine_specific_folders(repo, project)
    notes += _environment_outputs(repo)
    notes += _run_logs(repo)
    url = dvcrepo.remote_url(repo)
    scheme = _scheme(url)
    remotes, _default = dvcrepo.checkout_remotes(repo)
    return Plan(
        project=project,
        folder=prefix.rstrip("/") or ".",
        label=label,
        model_name=re.sub(r"[^A-Za-z0-9._-]+", "-", declared[0][0] if declared else f"{label}-model").strip("-.") or "model",
        model_path=model_path,
        evaluation_stages=stages,
        gates=gates,
        not_gated=not_gated,
        env=_guess_env(repo, project),
        remote_scheme=scheme,
        notes=notes,
        remote_schemes=tuple(_scheme(str(options.get("url") or "")) for _name, options in sorted(remotes.items())),
        metrics_files=metrics_files,
        metrics_why=metrics_why,
        skip_stages=skip_stages,
    )


def _metrics_why(repo, files: Sequence[str]) -> str:
    """Where the metrics files init took come from, for the note and the REVIEW comment."""
    whys = []
    for name in files:
        if dvcrepo.output_owner(repo, name) is not None:
            whys.append(f"{name} (an output holding numbers)")
        elif dvcrepo.output_owner(repo, os.path.dirname(name)) is not None:
            whys.append(f"{name} (dvclive's metrics file, in the output folder {os.path.dirname(name)})")
        else:
            whys.append(f"{name} (dvclive's default metrics file, which no stage declares as an output)")
    return ", ".join(whys)


def choose_gates(metrics: dict[str, object], params: dict[str, object],
                 evaluated: Collection[str] | None = None) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """A gate per metric that scores the model, with its direction guessed from the name, and the
    metrics left without one, each with the reason: a metric no evaluation stage writes (CI does not
    recompute it; `evaluated` names those it does, None: all), a training-split score beside its
    held-out one (a PR that overfits less lowers it), a param's value written back as a metric, a
    count (a classification report's `support`). Values that are not numbers are left out. Scores
    with a well-known name, of no single class and with fewer levels come first; past MAX_GATES the
    rest are named, not gated."""
    numeric = {name: as_number(value) for name, value in metrics.items()}
    splits = {name: _split(name) for name, value in numeric.items() if value is not None}
    others = [name for name, kind in splits.items() if kind != "train"]
    counterparts = {_signature(name) for name in others}  # the same name but for its split words
    held_keys = {_signature(name)[1] for name in others if splits[name] == "held"}  # the same key, held-out, in another file
    param_by_leaf: dict[str, list[tuple[str, float]]] = {}
    for key, value in params.items():
        number = as_number(value)
        if number is not None:
            param_by_leaf.setdefault(_leaf(key).lower(), []).append((key, number))
    chosen: list[str] = []
    skipped: list[tuple[str, str]] = []
    for name, value in numeric.items():
        leaf = _leaf(name)
        echoed = next((key for key, number in param_by_leaf.get(leaf.lower(), []) if number == value), None)
        if value is None:
            continue  # a label, not a value to gate
        if evaluated is not None and name not in evaluated:
            skipped.append((name, "written by no evaluation stage: CI does not recompute it"))
        elif splits[name] == "train" and (_signature(name) in counterparts or _signature(name)[1] in held_keys):
            skipped.append((name, "a training-split score; its held-out one is gated"))
        elif echoed is not None:
            skipped.append((name, f"the value of param {echoed}"))
        elif _BOOKKEEPING.search(leaf):
            skipped.append((name, "a count, not a score"))
        else:
            chosen.append(name)
    # well-known scores first, then those of no single class (`0.precision` is class 0's), then the shallower
    chosen.sort(key=lambda name: (not _QUALITY.match(_leaf(name)), any(key.isdigit() for key in re.split(r"[.:]", name)),
                                  name.count(".") + name.count(":"), name))
    skipped += [(name, f"more than {MAX_GATES} metrics: gate it by hand if it matters") for name in chosen[MAX_GATES:]]
    gates = {name: ("lower" if _LOWER_IS_BETTER.search(name) else "higher") for name in sorted(chosen[:MAX_GATES])}
    return gates, sorted(skipped)


def _leaf(name: str) -> str:
    """A metric's or param's last key that names no split: `acc` of `eval/metrics.json:scores.acc`
    and of `acc.test`."""
    keys = [key for key in re.split(r"[.:]", name) if key.lower() not in _HELD_OUT | _TRAINING]
    return keys[-1] if keys else name


def _split(name: str) -> str:
    """Which split a metric's name says it is of: "train", "held" (out) or "" (none); the key's
    words first (`results/train/metrics.json:test.acc` is a held-out score), then the file's."""
    file, _, key = name.rpartition(":")
    for words in (_tokens(key), _tokens(file)):
        if words & _TRAINING:
            return "train"
        if words & _HELD_OUT:
            return "held"
    return ""


def _signature(name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A metric's file and key words without the split words: a training score and its held-out
    one share it (`acc.train`/`acc.test`, `metrics/train.json:acc`/`metrics/test.json:acc`)."""
    file, _, key = name.rpartition(":")
    return _without(file, _HELD_OUT | _TRAINING), _without(key, _HELD_OUT | _TRAINING)


def _tokens(name: str) -> set[str]:
    return set(re.split(r"[^a-z0-9]+", name.lower())) - {""}


def _without(name: str, words: frozenset[str]) -> tuple[str, ...]:
    """A name's words in order, without the split words: `acc.train` and `acc.test` are both ('acc',)."""
    return tuple(word for word in re.split(r"[^a-z0-9]+", name.lower()) if word and word not in words)


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ("local" if url else "")


def secret_names(schemes: Sequence[str]) -> list[str]:
    """The secrets the consumer workflows pass to lockstep for remotes of these URL schemes, and
    MLflow's. With no remote yet, the AWS keys (the README's default setup)."""
    names: list[str] = []
    for scheme in schemes or ("s3",):
        if scheme == "s3":
            names += _AWS_SECRETS
        elif scheme == "gdrive":
            names.append("GDRIVE_CREDENTIALS_DATA")
        elif scheme in ("gs", "gcs"):
            names += ["GOOGLE_CREDENTIALS", "DVC_REMOTE_AUTH"]
        elif scheme == "ssh":
            names += ["SSH_PRIVATE_KEY", "SSH_KNOWN_HOSTS", "DVC_REMOTE_AUTH"]
        elif scheme != "local":
            names.append("DVC_REMOTE_AUTH")
    return list(dict.fromkeys([*names, *_MLFLOW_SECRETS]))


def _guess_model(repo, eval_stages: list[str]) -> str | None:
    """The cached output an evaluation stage reads (or writes, when it trains too) that looks
    like a model: by name first, else the one produced closest upstream of the evaluation."""
    inputs = dvcrepo.evaluation_inputs(repo, eval_stages)
    candidates = list(inputs)
    for name in eval_stages:
        for path in dvcrepo.cached_outputs(repo, [name]):
            candidates.append(path)
    metrics = set(dvcrepo.all_metrics_files(repo))
    candidates = [c for c in candidates if not any(m == c or m.startswith(c.rstrip("/") + "/") for m in metrics)]
    by_name = [c for c in candidates if _MODEL_NAME.search(c)]
    if by_name:
        return by_name[0].replace(os.sep, "/")
    unlinked = _unlinked_models(repo, eval_stages)
    if unlinked:
        return unlinked[0]
    return inputs[-1].replace(os.sep, "/") if inputs else None


def _unlinked_models(repo, eval_stages: list[str]) -> list[str]:
    """When the evaluation reads no model-like output: other stages' cached outputs that look like
    models (by name) and that the evaluation stages do not list among their deps, those their code or
    params files name (the path, or the file's name) first. An evaluation that opens the model
    without declaring it is not downstream of its training in DVC's graph."""
    found = [path for path, _stage in _model_like_outputs(repo, set(eval_stages))
             if dvcrepo.unlinked_model(repo, eval_stages, path)]
    texts = [_text(Path(repo.root_dir) / dep) for dep in dvcrepo.git_deps(repo, eval_stages)]
    named = [path for path in found if any(path in text or os.path.basename(path.rstrip("/")) in text for text in texts)]
    return named + [path for path in found if path not in named]


# MLflow's registry calls (the fluent API, the client's, a `log_model` that registers as it logs)
_REGISTRY_CALL = re.compile(r"\b(register_model|create_model_version|transition_model_version_stage|"
                            r"set_registered_model_alias|copy_model_version|registered_model_name\s*=)")


def _registry_stages(repo, model_stage: str, eval_stages: list[str]) -> tuple[list[str], dict[str, str]]:
    """Which stages call MLflow's model registry from their command or their code, with the first
    call each makes: (the stages a rebuild should skip, {stage: call} for every such stage, the
    model's included). Skippable are those neither the training, the evaluation nor upstream of
    them: a rebuild needs those to run."""
    calls: dict[str, str] = {}
    for stage in dvcrepo.pipeline_stages(repo):
        texts = [stage.cmd if isinstance(stage.cmd, str) else " ".join(stage.cmd or []),
                 *(_text(Path(repo.root_dir) / dep) for dep in dvcrepo.git_deps(repo, [stage.address]))]
        found = next((m.group(1) for text in texts if (m := _REGISTRY_CALL.search(text))), "")
        if found:
            calls[stage.address] = found.split("=")[0].strip() + ("=" if "=" in found else "")
    needed = dvcrepo.upstream_of(repo, [name for name in [model_stage, *eval_stages] if name])
    skip = [address for address in calls
            if address != model_stage and address not in eval_stages
            and dvcrepo.stage_named(repo, address).name not in needed]
    return skip, calls


def _text(path: Path) -> str:
    """A dependency file's text (code, params), or '' for a folder, a binary or a large file."""
    try:
        return path.read_text("utf-8") if path.is_file() and path.stat().st_size < 1_000_000 else ""
    except (OSError, UnicodeDecodeError):
        return ""


def _other_models(repo, model_path: str | None, model_stage: str) -> list[tuple[str, str]]:
    """Cached outputs of other stages than the model's that look like models (by name), with the
    stage that writes each: (path, stage). A second file of the model's own stage (a scaler beside
    the network) is part of that model, and metrics files are none."""
    if not model_path:
        return []
    return [(path, stage) for path, stage in _model_like_outputs(repo, {model_stage}) if path != model_path]


def _model_like_outputs(repo, skipped: set[str]) -> list[tuple[str, str]]:
    """Every stage's cached outputs that look like models by name and are no metrics file, as
    (path, stage address); not those of the `skipped` stages (by name or address)."""
    metrics = set(dvcrepo.all_metrics_files(repo))
    found = []
    for stage in dvcrepo.pipeline_stages(repo):
        if stage.address in skipped or stage.name in skipped:
            continue
        for path in dvcrepo.cached_outputs(repo, [stage.address]):
            path = path.replace(os.sep, "/")
            if _MODEL_NAME.search(path) and not any(m == path or m.startswith(path.rstrip("/") + "/") for m in metrics):
                found.append((path, stage.address))
    return found


def _machine_specific_folders(repo, project: Path) -> list[str]:
    """Code folders the pipeline depends on that hold files git ignores: DVC hashes every
    file of a folder dependency, so a lock made here records this machine's `__pycache__` (or
    `*.egg-info`), and every pull request would fail its lock check in CI's clean checkout."""
    # what git has or will take (tracked, or untracked and not ignored); the rest is what it ignores
    tracked = set(gitrepo.run(["ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "."], project).stdout.split("\0"))
    notes = []
    for folder in dvcrepo.code_folders(repo, [stage.address for stage in dvcrepo.pipeline_stages(repo)]):
        extra = [path for path in dvcrepo.files_dvc_hashes(repo, folder) if path not in tracked]
        if extra:
            shown = ", ".join(extra[:3]) + (f" and {len(extra) - 3} more" if len(extra) > 3 else "")
            notes.append(
                f"DVC hashes every file of the dependency folder {folder}/, and {shown} {'is' if len(extra) == 1 else 'are'} "
                "ignored by git: no other machine, CI included, can match dvc.lock's hash of it. Add such files to "
                "`.dvcignore` (`__pycache__/`, `*.egg-info/`), run `dvc commit -f`, and commit `.dvcignore` and dvc.lock"
            )
    return notes


def _environment_outputs(repo) -> list[str]:
    """Outputs that are Python environments (`.venv` built by a stage, `pyvenv.cfg` inside): its
    paths are the developer's machine's, CI pulls it or rebuilds it, and lockstep installs the
    project's environment itself."""
    notes = []
    for stage in dvcrepo.pipeline_stages(repo):
        for path in [*dvcrepo.cached_outputs(repo, [stage.address]), *dvcrepo.git_outputs(repo, [stage.address])]:
            folder = Path(repo.root_dir) / path
            if (folder / "pyvenv.cfg").is_file() or (folder / "conda-meta").is_dir():
                notes.append(
                    f"stage {stage.address} builds a Python environment as an output ({path}): its scripts and links hold "
                    "this machine's paths, and CI installs the project's environment itself (from requirements.txt, "
                    "pyproject.toml or environment.yml) before any stage runs. Take the stage out of dvc.yaml, list its "
                    "packages in a requirements file, and have the other stages run `python`, not "
                    f"`{path}/bin/python`; until then CI re-runs or pulls it as any other stage"
                )
    return notes


# what a run writes differently every time: TensorBoard event files, W&B and MLflow run folders, logs
_RUN_LOG = re.compile(r"(^|/)(logs?|tensorboard|tb_logs|lightning_logs|runs|wandb|mlruns)(/|$)|\.log$|events\.out\.tfevents",
                      re.IGNORECASE)


def _run_logs(repo) -> list[str]:
    """Outputs and plots that look like a run's logs (TensorBoard events, W&B or MLflow folders,
    `*.log`): they hold timestamps and run ids, so they differ after every run."""
    found = []
    for stage in dvcrepo.pipeline_stages(repo):
        for path in [*dvcrepo.cached_outputs(repo, [stage.address]), *dvcrepo.git_outputs(repo, [stage.address])]:
            if _RUN_LOG.search(path.replace(os.sep, "/")):
                found.append(f"{path.replace(os.sep, '/')} ({stage.address})")
    if not found:
        return []
    return [f"{', '.join(found[:5])}{f' and {len(found) - 5} more' if len(found) > 5 else ''} look like a run's logs "
            "(TensorBoard events, W&B or MLflow run folders, log files): they hold timestamps and run ids, so every main "
            "rebuild changes them, commits them (or their hashes in dvc.lock), and never finds the data unchanged. If "
            "nothing reads them, leave them out of dvc.yaml (and out of git with `.gitignore`)"]


def _guess_env(repo, project: Path) -> dict[str, str]:
    """`PYTHONPATH: .` when the stages' scripts import the project's own package by its folder;
    `PYTHONPATH: src` when they run a module (`python -m pkg.train`) of a package in a src/ layout,
    or a script of it by its path (`python src/pkg/pipeline/stage_01.py`) that imports it,
    which developers install with `pip install -e .` and lockstep does not install (it installs
    the dependencies only, so that a base commit's evaluation imports the base's code)."""
    for stage in dvcrepo.pipeline_stages(repo):
        words = " ".join(stage.cmd if isinstance(stage.cmd, list) else [str(stage.cmd)]).split()
        for index, word in enumerate(words):
            if word == "-m" and index + 1 < len(words):
                top = words[index + 1].split(".")[0]
                if top and not (project / top).is_dir() and (project / "src" / top / "__init__.py").is_file():
                    return {"PYTHONPATH": "src"}
            script = project / word
            if word.endswith(".py") and script.is_file():
                text = script.read_text("utf-8", errors="replace")
                parts = Path(word).parts
                package = parts[0] if len(parts) > 1 else ""
                if package and _imports(text, package):
                    return {"PYTHONPATH": "."}
                # a script of a src/ layout's package, run by its path, that imports the package
                # (`python src/pkg/pipeline/stage_01.py`: `from pkg.components import ...`)
                if (package == "src" and len(parts) > 2 and (project / "src" / parts[1]).is_dir()
                        and _imports(text, parts[1]) and not _installs_itself(project)):
                    return {"PYTHONPATH": "src"}
    return {}


def _imports(text: str, package: str) -> bool:
    return bool(re.search(rf"^\s*(from|import)\s+{re.escape(package)}[.\s]", text, re.MULTILINE))


def _installs_itself(project: Path) -> bool:
    """Whether the project's requirements.txt installs the project (`-e .`), as the template many
    ML repositories copy does: the setup action installs it, and the stages import it from there."""
    for name in ("requirements.txt", "src/requirements.txt"):
        path = project / name
        if path.is_file() and re.search(r"^\s*(-e|--editable)?\s*\.(/)?\s*$", path.read_text("utf-8", "replace"), re.MULTILINE):
            return True
    return False


def config_text(p: Plan) -> str:
    lines = [
        "# lockstep configuration for this DVC project, written by `lockstep init`.",
        "# Reference: the README's lockstep.yaml section. Review every line marked REVIEW.",
        "version: 1",
        "",
        "model:",
        f"  name: {p.model_name}   # REVIEW: the registered model's name in MLflow",
    ]
    if p.model_path:
        lines.append(f"  path: {_quote(p.model_path)}   # REVIEW: guessed from dvc.yaml")
    else:
        lines.append("  path: REPLACE-ME   # REVIEW: the model file or folder, an output in dvc.yaml")
    stages = f"  stages: [{', '.join(_quote(s) for s in p.evaluation_stages)}]"
    if p.metrics_files:
        lines += ["", "# REVIEW: dvc.yaml declares no metrics, so `lockstep init` took the JSON/YAML outputs holding numbers",
                  "# of the last stage that reads the model (or dvclive's metrics.json) as the metrics, and that stage",
                  "# as the evaluation" + (f": {' '.join(p.metrics_why.split())}." if p.metrics_why else "."),  # one line
                  "metrics:", f"  files: [{', '.join(_quote(f) for f in p.metrics_files)}]   # REVIEW"]
        stages += "   # REVIEW"
    lines += ["", "evaluation:", stages]
    if p.env:
        lines += ["", "env:   # the stages need it to import the project's own code"]
        lines += [f"  {key}: {_quote(value)}" for key, value in p.env.items()]
    if p.gates:
        lines += ["", "gates:   # REVIEW: directions are guessed from the names; tighten min/max as you need"]
        for metric, direction in p.gates.items():
            allowed = "max-regression: 0.05" if _SIGNED.match(_leaf(metric)) else "max-regression-relative: 0.05"
            lines.append(f"  {_quote(metric)}: {{direction: {direction}, {allowed}}}")
    if p.not_gated:
        lines += ["", "# not gated (add a gate above if one of these matters):"]
        lines += [f"#   {metric}: {why}" for metric, why in p.not_gated]
    if p.skip_stages:
        lines += ["", "rebuild:", "  # REVIEW: these stages call MLflow's model registry; a main rebuild registers the model itself",
                  f"  skip-stages: [{', '.join(_quote(s) for s in p.skip_stages)}]"]
    lines += ["", "registry:", "  alias: candidate", ""]
    return "\n".join(lines)


def _quote(value: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_./-]+", value) and not value[0].isdigit():
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def workflow_texts(folder: str, library: str, label: str, schemes: Sequence[str] = ("s3",),
                   requirements: Requirements | None = None) -> dict[str, str]:
    """The consumer workflows for a project in `folder`, calling lockstep at `library`
    (`OWNER/REPO@REF`), handing it the secrets its remotes (URL `schemes`) and MLflow need, and
    the `requirements` input when the setup action would not find the stages' requirements."""
    path, _at, ref = library.partition("@")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", path) or not re.fullmatch(r"[A-Za-z0-9_./-]+", ref or ""):
        raise InputError(f"library {library!r} is not OWNER/REPO@REF", hint="e.g. `--library my-org/lockstep@v1`")
    artifact = f"lockstep-report-{re.sub(r'[^A-Za-z0-9_-]+', '-', label)}"
    texts = {}
    for name in WORKFLOWS:
        text = resources.files("lockstep").joinpath(f"templates/{name}").read_text("utf-8")
        if folder == ".":
            text = text.replace("project in __WORKING_DIRECTORY__/.", "project at the repository's root.")
        secrets = "".join(f"      {name}: ${{{{ secrets.{name} }}}}\n" for name in secret_names(schemes))
        text = (text.replace("__LIBRARY__", path).replace("__REF__", ref).replace("      __SECRETS__\n", secrets)
                .replace("__WORKING_DIRECTORY__", folder).replace("__ARTIFACT__", artifact))
        if requirements is not None and name in _INSTALLING:  # the calls that install the stages' requirements
            line = f"      working-directory: {folder}\n"
            assert text.count(line) == 1, name  # noqa: S101 - the templates' own shape
            text = text.replace(line, line + _requirements_lines(requirements))
        texts[name] = text
    return texts


_INSTALLING = ("ml-pr.yml", "ml-main.yml", "ml-retrain.yml")  # pr-validate.yml and main-rebuild.yml take `requirements`


# --- the stages' requirements: what the setup action installs (actions/setup/setup.sh) ----------

# setup.sh `requirements()`: the first of these in the project's folder, else at the repository's root
DEFAULT_REQUIREMENTS = ("requirements.txt", "src/requirements.txt", "uv.lock", "pyproject.toml", "setup.py",
                        "environment.yml", "environment.yaml", "Pipfile.lock", "Pipfile")
# setup.sh `unlisted_requirements()`: files that look like requirements but are no default; with no
# default found, the setup fails (exit 2) and asks for the `requirements` input
_PREFIXED, _SUFFIXED = re.compile(r"^requirements[-_].*\.txt$"), re.compile(r"^.*[-_]requirements\.txt$")
# the part of such a file's name beside `requirements`: `requirements/train.txt`, `requirements-train.txt`
# and `train-requirements.txt` are all "train", and so are `requirements/train-requirements.txt` and
# `requirements/requirements_train.txt` (the folder's files named as if they were beside it)
_PART = re.compile(r"^(?:requirements/(?:requirements[-_](?P<d>.+)|(?P<e>.+)[-_]requirements|(?P<a>.+))"
                   r"|requirements[-_](?P<b>.+)|(?P<c>.+)[-_]requirements)\.txt$")
_FOR_DEVELOPERS = frozenset({"dev", "develop", "development", "test", "tests", "testing", "lint", "docs", "doc"})
_FOR_THE_STAGES = (("base", "common", "core"), ("train", "training"))  # in this order
_SAFE_PATH = re.compile(r"[A-Za-z0-9_./-]+")  # the input is space-separated, and it goes into YAML as it is


def _bases(project: Path, root: Path) -> list[tuple[str, Path]]:
    """(prefix, folder): the project's folder, then the repository's root when it is another."""
    bases = [("", project)]
    if project.resolve() != root.resolve():
        bases.append((os.path.relpath(root, project).replace(os.sep, "/") + "/", root))
    return bases


def default_requirements(project: Path, root: Path) -> str:
    """The requirement entry the setup action installs without a `requirements` input, relative to
    the project ('' when none): its `requirements()`, rule for rule."""
    for prefix, folder in _bases(project, root):
        for name in DEFAULT_REQUIREMENTS:
            path = folder / name
            if not path.is_file():
                continue
            if name == "pyproject.toml" and not re.search(r"^\[(project|tool\.poetry)[].]", path.read_text("utf-8", "replace"),
                                                          re.MULTILINE) \
                    and not (folder / "setup.py").is_file() and not (folder / "setup.cfg").is_file():
                continue  # black's or ruff's settings only
            return prefix + name
    return ""


def unlisted_requirements(project: Path, root: Path) -> list[str]:
    """Files that look like requirements and are no default, relative to the project, as the setup
    action's `unlisted_requirements()` lists them: `requirements/*.txt`, `requirements-*.txt`,
    `requirements_*.txt`, `*-requirements.txt`, `*_requirements.txt`, in the project's folder, then at the root."""
    found: list[str] = []
    for prefix, folder in _bases(project, root):
        inside = sorted(path.name for path in (folder / "requirements").glob("*.txt") if path.is_file())
        beside = sorted(path.name for path in folder.glob("*.txt") if path.is_file())
        found += [prefix + "requirements/" + name for name in inside]  # in the setup's order: this folder,
        found += [prefix + name for name in beside if _PREFIXED.match(name)]  # then requirements-*.txt,
        found += [prefix + name for name in beside if _SUFFIXED.match(name)]  # then *-requirements.txt
    return list(dict.fromkeys(found))


@dataclass
class Requirements:
    """What `lockstep init` writes as the workflows' `requirements` input, and why."""

    entries: list[str]
    found: list[str]  # the files that looked like requirements


def infer_requirements(project: Path, root: Path) -> Requirements | None:
    """The `requirements` input to write when the setup action would find no default and fail:
    None when it finds one (or nothing looks like requirements). The rule, kept simple: by the part
    of their name beside `requirements`, leave out the files for developers (dev, test, lint,
    docs); take what is left in the project's folder, else at the root; of those, the ones named
    base/common/core then train/training when there are any, else all of them."""
    if default_requirements(project, root):
        return None
    found = unlisted_requirements(project, root)
    if not found:
        return None
    candidates: list[tuple[str, str]] = []  # (the part of the name beside `requirements`, the path)
    for here in (False, True):  # the project's folder first, then the root's (`../`)
        for name in found:
            match = _PART.match(name.rsplit("../", 1)[-1])
            part = next((group for group in match.groups() if group), "").lower() if match else ""
            if (name.startswith("../") == here and _SAFE_PATH.fullmatch(name)
                    and not set(re.split(r"[-_.]", part)) & _FOR_DEVELOPERS):
                candidates.append((part, name))
        if candidates:
            break
    chosen = [name for names in _FOR_THE_STAGES for wanted in names for part, name in candidates if part == wanted]
    return Requirements(chosen or [name for _part, name in candidates], found)


REQUIREMENTS_RULE = (
    "no file the setup installs by default (requirements.txt, src/requirements.txt, uv.lock, pyproject.toml, "
    "setup.py, environment.yml, Pipfile) is in the project's folder or at the repository's root, so `lockstep init` "
    "chose among the files that look like requirements ({found}): without the ones for developers (dev, test, lint, "
    "docs), those of the project's folder (else the root's), and of those base/common/core then train/training "
    "when there are any, else all"
)


def _requirements_lines(req: Requirements) -> str:
    """The workflows' `requirements:` input, with the rule as a comment for the user to check."""
    if not req.entries:
        return ""
    words = REQUIREMENTS_RULE.format(found=", ".join(req.found)).split()
    comment, line = [], "      # REVIEW `requirements`:"
    for word in words:
        if len(line) + 1 + len(word) > 110:
            comment.append(line)
            line = "      #"
        line += " " + word
    comment.append(line)
    return "\n".join(comment) + f"\n      requirements: {' '.join(req.entries)}\n"


@dataclass
class Written:
    files: list[Path]
    secrets: list[str]
    notes: list[str]
    requirements: Requirements | None = None


def write(project_dir: Path, *, library: str = DEFAULT_LIBRARY, repository: str = "", force: bool = False) -> Written:
    p = plan(project_dir, repository)
    root = gitrepo.toplevel(p.project)
    targets = {p.project / configmod.CONFIG_NAME: config_text(p)}
    requirements = infer_requirements(p.project, root)
    for name, text in workflow_texts(p.folder, library, p.label, p.remote_schemes, requirements).items():
        targets[root / ".github" / "workflows" / name] = text
    existing = [path for path in targets if path.exists()]
    if existing and not force:
        raise InputError(
            f"{', '.join(os.path.relpath(path) for path in existing)} already exist(s): nothing was written",
            hint="pass --force to overwrite them",
        )
    configmod.load_text(targets[p.project / configmod.CONFIG_NAME], configmod.CONFIG_NAME)  # what we write must load
    for path, text in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, "utf-8")
    secrets = [_SECRETS_BY_SCHEME[scheme] for scheme in dict.fromkeys(p.remote_schemes) if scheme in _SECRETS_BY_SCHEME]
    secrets.append("MLFLOW_TRACKING_URI (and MLFLOW_TRACKING_USERNAME/PASSWORD or TOKEN if the server needs them)")
    if p.remote_scheme == "local":
        p.notes.append("the DVC remote is a local folder: CI runners cannot reach it; add a cloud remote")
    elif not p.remote_scheme:
        p.notes.append("no DVC remote is configured: add one with `dvc remote add -d`")
    if requirements is not None and not requirements.entries:
        p.notes.append(f"{', '.join(requirements.found)} look like the project's requirements, but only for developers "
                       "(dev, test, lint, docs): the setup action installs none of them and stops; set the `requirements` "
                       "input of the workflows to the file(s) the stages need")
    return Written(list(targets), secrets, p.notes, requirements)


def summary(written: Written) -> str:
    lines = ["lockstep init wrote:"]
    lines += [f"  {os.path.relpath(path)}" for path in written.files]
    lines += ["Review the lines marked REVIEW in lockstep.yaml, then commit these files:",
              "  git add " + " ".join(os.path.relpath(path) for path in written.files),
              "Secrets to set in the repository (Settings > Secrets and variables > Actions):"]
    lines += [f"  {secret}" for secret in written.secrets]
    if written.requirements is not None and written.requirements.entries:
        lines += [f"Requirements: the workflows pass `requirements: {' '.join(written.requirements.entries)}` to the setup "
                  f"(REVIEW: it installs those for the stages): {REQUIREMENTS_RULE.format(found=', '.join(written.requirements.found))}"]
    lines += [f"Note: {note}" for note in written.notes]
    return "\n".join(lines)

