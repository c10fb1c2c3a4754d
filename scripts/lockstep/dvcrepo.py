"""Everything lockstep asks of DVC, through DVC's Python API in this one process.

- `stale_stages`: which stages recorded in dvc.lock no longer match the code, params and deps,
  and exactly what changed (file, or param key with old -> new value). Dependencies that are
  outputs of another stage are compared lock-to-lock, so the check needs no data pulled.
- `verify_remote`: every object the lock references is in the remote, object by object, files
  inside directory outputs included (`dvc status -c` can say "in sync" when they are not).
- `pull`, `push`, `reproduce`: the transfers and runs, with errors said the way a person needs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import DvcError
from .metrics import as_number, flatten as _flatten

LOCK_FILE = "dvc.lock"


@dataclass(frozen=True)
class Change:
    kind: str  # "cmd" | "file" | "untracked" | "param" | "upstream" | "never-run" | "new-dep" | "composed"
    path: str = ""
    key: str = ""
    old: Any = None
    new: Any = None

    def describe(self) -> str:
        if self.kind == "cmd":
            return f"its command changed ({self.old!r} -> {self.new!r})"
        if self.kind == "param":
            if self.new is _MISSING:
                return f"{self.path}:{self.key} was removed (was {self.old!r})"
            if self.old is _MISSING:
                return f"{self.path}:{self.key} was added ({self.new!r})"
            return f"{self.path}:{self.key} changed ({self.old!r} -> {self.new!r})"
        if self.kind == "composed":
            return f"{self.path}:{self.key} is {_short(self.old)} where the composition gives {_short(self.new)}"
        if self.kind == "file":
            return f"{self.path} was {self.new}"
        if self.kind == "untracked":
            return (f"DVC's hash of the folder {self.path} in {LOCK_FILE} counts {self.old}, this checkout "
                    f"{self.new}: the folder held files that git does not have when it was hashed")
        if self.kind == "upstream":
            return f"{self.path} no longer matches the output of stage '{self.key}' in {LOCK_FILE}"
        if self.kind == "new-dep":
            return f"{self.path} is a dependency in dvc.yaml but not in {LOCK_FILE}"
        if self.kind == "never-run":
            return f"it is in dvc.yaml but has no entry in {LOCK_FILE}"
        return self.kind


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class StaleStage:
    name: str  # the stage's address: `train`, or `sub/dvc.yaml:train`
    changes: list[Change] = field(default_factory=list)

    def describe(self) -> str:
        reasons = "; ".join(change.describe() for change in self.changes)
        return f"stage '{self.name}' would re-run because {reasons}"


@dataclass(frozen=True)
class Stage:
    """A stage of dvc.yaml, as lockstep sees it (DVC's own stage objects stay in this module)."""

    name: str
    address: str  # how `dvc repro` run in the project names it: `train`, or `sub/dvc.yaml:train`
    cmd: str | list[str]
    frozen: bool = False  # `dvc freeze`: `dvc repro` takes its outputs as they are


@dataclass(frozen=True)
class Output:
    """An output DVC tracks, as dvc.lock records it."""

    path: str  # relative to the project
    stage: str  # the name of the stage that produces it ('' for a `dvc add`-ed file)
    md5: str  # the hash dvc.lock records ('' when none yet)
    remote: str | None  # the output's own `remote:` (None: the default remote)
    cached: bool  # False for `cache: false` (git carries it)
    dvcfile: str = ""  # the file that records it, relative to the project: dvc.yaml, or a `dvc add`-ed file's `.dvc` file


@dataclass
class MissingObject:
    output: str  # the output's path in the project
    stage: str
    oid: str
    member: str | None = None  # the file inside a directory output, or None


@dataclass
class RemoteCheck:
    remote: str
    checked: int = 0
    missing: list[MissingObject] = field(default_factory=list)
    # outputs of `dvc import` stages: their data stays in the source repository's remote (`dvc push`
    # does not copy it), and DVC fetches it from there; "path (from url at rev)"
    imported: list[str] = field(default_factory=list)
    # outputs dvc.yaml marks `push: false`: `dvc push` never sends them, so no remote is asked
    unpushed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing

    def summary(self) -> str:
        """The passing sentence: what was checked where, and what comes from elsewhere."""
        said = f"all {self.checked} object(s) referenced by dvc.lock are in {self.remote}"
        if self.imported:
            shown = ", ".join(self.imported[:5]) + (f" and {len(self.imported) - 5} more" if len(self.imported) > 5 else "")
            said += f"; imported from other DVC repositories, fetched from their own remotes when needed: {shown}"
        if self.unpushed:
            shown = ", ".join(self.unpushed[:5]) + (f" and {len(self.unpushed) - 5} more" if len(self.unpushed) > 5 else "")
            said += f"; not pushed by design (`push: false` in dvc.yaml), made again by CI when needed: {shown}"
        return said

    def missing_outputs(self) -> dict[str, list[str]]:
        by_output: dict[str, list[str]] = {}
        for item in self.missing:
            by_output.setdefault(item.output, []).append(item.member or "(the whole output)")
        return by_output


# --- opening ------------------------------------------------------------------------------------


Remotes = tuple[dict[str, Any], str | None]  # DVC's `remote` sections, and the default remote's name


def open_repo(project_dir: str | Path, *, remotes: Remotes | None = None):
    """The DVC project, with the job's remote credentials (`DVC_REMOTE_AUTH`) in memory. With
    `remotes` (read from another version of its `.dvc/config`: the base commit's), those are its
    DVC remotes and default remote, not the ones in the workspace: a pull request cannot point the
    checks, or the job's credentials, at a remote of its choosing."""
    from dvc.exceptions import NotDvcRepoError

    project_dir = Path(project_dir)
    if not (project_dir / ".dvc").is_dir():
        raise DvcError(
            f"{project_dir}: not a DVC project (no .dvc folder)",
            hint="point `working-directory` at the folder that holds dvc.yaml and .dvc/ (`dvc init --subdir` for monorepos)",
            file=str(project_dir),
        )
    try:
        repo = _repo_class()(str(project_dir), remotes=remotes, auth=os.environ.get(REMOTE_AUTH_VARIABLE, ""))
    except NotDvcRepoError as exc:
        raise DvcError(f"{project_dir}: {exc}", hint="check `working-directory`") from None
    _OPEN.append(repo)
    try:
        repo.index.stages  # noqa: B018 - parse dvc.yaml and dvc.lock now, where errors are named
    except Exception as exc:  # noqa: BLE001 - DVC raises many kinds for a broken project file
        raise project_file_error(exc, project_dir) from None
    return repo


_REPO_CLASS: Any = None


def _repo_class():
    """DVC's Repo, whose configuration (built again whenever DVC resets the repo, as it does around
    every locked operation) gets its remotes settled by `_settle_remotes`."""
    global _REPO_CLASS
    if _REPO_CLASS is None:
        import functools

        from dvc.repo import Repo

        build = Repo.__dict__["config"]

        class SettledRemotes(Repo):
            def __init__(self, root_dir: str, *, remotes: Remotes | None, auth: str) -> None:
                self._lockstep_remotes, self._lockstep_auth = remotes, auth
                super().__init__(root_dir)

            @functools.cached_property
            def config(self):
                conf = build.__get__(self, Repo)
                _settle_remotes(conf, self._lockstep_remotes, self._lockstep_auth)
                return conf

        _REPO_CLASS = SettledRemotes
    return _REPO_CLASS


def _settle_remotes(conf, remotes: Remotes | None, auth: str) -> None:
    """Replace the remotes of a freshly read configuration with `remotes`, then add the
    credentials of `DVC_REMOTE_AUTH` to them (checked against DVC's schema)."""
    import copy

    if remotes is not None:
        conf["remote"] = copy.deepcopy(remotes[0])
        conf["core"].pop("remote", None)
        if remotes[1]:
            conf["core"]["remote"] = remotes[1]
    if not conf["core"].get("remote") and len(conf["remote"]) == 1:
        # one remote and no default: `dvc push -r NAME` on the developer's machine, the only remote here
        conf["core"]["remote"] = next(iter(conf["remote"]))
    urls = [str(options.get("url", "")) for options in conf["remote"].values()]
    for name, options in conf["remote"].items():
        if str(options.get("url", "")).startswith("s3://"):
            _without_missing_aws_login(name, options)
    if any(url.startswith("gdrive://") for url in urls):
        google_drive_signer()
    if any(url.startswith(("gs://", "gcs://")) for url in urls):
        google_cloud_credentials()
    if any(url.startswith("ssh://") for url in urls):
        ssh_credentials()
    overrides = remote_auth(_remotes(conf), auth)
    if overrides:
        try:
            checked = conf.validate({"remote": overrides})["remote"]
        except Exception as exc:  # noqa: BLE001 - DVC's ConfigError, said as the secret's problem
            raise DvcError(f"{REMOTE_AUTH_VARIABLE}: {exc}", hint="use the options DVC knows for the remote's type") from None
        conf["remote"].update(checked)


_SAID_AWS: set[str] = set()


def _without_missing_aws_login(name: str, options: dict, environ: Mapping[str, str] = os.environ) -> None:
    """An S3 remote's `profile` (or `credentialpath`, `configpath`) that names what a developer's
    machine has and this one does not, dropped in memory when the job has AWS credentials of its
    own (the secrets, or configure-aws-credentials' OIDC role): botocore would otherwise stop at
    ProfileNotFound before looking at them. What this machine has is kept."""
    if not any(environ.get(key) for key in ("AWS_ACCESS_KEY_ID", "AWS_WEB_IDENTITY_TOKEN_FILE",
                                            "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")):
        return
    from . import gha

    said = []
    for key in ("credentialpath", "configpath"):
        path = options.get(key)
        if path and _missing_file(path):
            options.pop(key)
            said.append(f"the AWS {key} {path} of remote '{name}' is not on this machine")
    profile = options.get("profile")
    if profile and not _aws_profile_exists(str(profile), str(options.get("configpath") or ""),
                                           str(options.get("credentialpath") or ""), environ):
        options.pop("profile")
        said.append(f"the AWS profile '{profile}' of remote '{name}' is not on this machine")
    for line in said:
        if line not in _SAID_AWS:  # the project is opened several times per command: said once
            _SAID_AWS.add(line)
            gha.info(f"{line}: the job's AWS credentials are used")


def _aws_profile_exists(profile: str, config: str, credentials: str, environ: Mapping[str, str]) -> bool:
    """Whether AWS's config or credentials file on this machine defines the profile."""
    import configparser

    home = Path(os.path.expanduser("~")) / ".aws"
    files = {
        Path(os.path.expanduser(config or environ.get("AWS_CONFIG_FILE") or str(home / "config"))):
            {f"profile {profile}", profile} if profile != "default" else {"default"},
        Path(os.path.expanduser(credentials or environ.get("AWS_SHARED_CREDENTIALS_FILE") or str(home / "credentials"))): {profile},
    }
    for path, sections in files.items():
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, OSError, UnicodeDecodeError):
            continue
        if sections & {section.strip() for section in parser.sections()}:
            return True
    return False


GOOGLE_CREDENTIALS_VARIABLE = "GOOGLE_CREDENTIALS"


def google_cloud_credentials(environ: Mapping[str, str] = os.environ) -> bool:
    """Hand a Google Cloud Storage remote the credentials in GOOGLE_CREDENTIALS (a service account's
    JSON key, or an authorized user's), in memory. DVC's `credentialpath` names a file, and a job
    that writes a key to a file leaves it where a pull request's code, run as the same user, can
    read it; gcsfs itself takes the key's content as its token. Used for a remote that names no
    `credentialpath` of its own, or whose `credentialpath` names a file this machine does not have
    (a developer's). Returns whether the credentials were handed over."""
    text = environ.get(GOOGLE_CREDENTIALS_VARIABLE, "").strip()
    if not text:
        return False
    try:
        info = json.loads(text)
    except ValueError:
        info = None
    if not isinstance(info, dict) or "type" not in info:
        raise DvcError(f"{GOOGLE_CREDENTIALS_VARIABLE} is not a Google credentials JSON object (no \"type\" key)",
                       hint="set the secret to the whole content of the service account's key file")
    try:
        import dvc_gs
    except ImportError:
        return False  # no Google Cloud Storage client: DVC names the missing extra when the remote is used
    def add(login: dict) -> None:
        if not login.get("token") or _missing_file(login["token"]):  # none, or a developer's key file
            login["token"] = dict(info)  # a copy per filesystem: gcsfs keeps what it is given

    _extend_login(dvc_gs.GSFileSystem, add)
    return True


def _missing_file(value: object) -> bool:
    """Whether a login option names a file this machine does not have (a path on a developer's
    machine, committed in .dvc/config: `credentialpath`, `keyfile`)."""
    return isinstance(value, (str, os.PathLike)) and not Path(os.path.expanduser(str(value))).is_file()


def _extend_login(filesystem: Any, add: Callable[[dict], None]) -> None:
    """Have a DVC filesystem class's login options (`_prepare_credentials`, what it hands its
    fsspec client) pass through `add` in this process; set again, it replaces the earlier `add`."""
    original = filesystem._prepare_credentials
    prepare = getattr(original, "lockstep_original", original)

    def with_credentials(self, **config):
        login = prepare(self, **config)
        add(login)
        return login

    with_credentials.lockstep_original = prepare  # type: ignore[attr-defined]
    filesystem._prepare_credentials = with_credentials


SSH_KEY_VARIABLE, SSH_KNOWN_HOSTS_VARIABLE = "SSH_PRIVATE_KEY", "SSH_KNOWN_HOSTS"


def ssh_credentials(environ: Mapping[str, str] = os.environ) -> bool:
    """Hand an SSH remote a private key (SSH_PRIVATE_KEY) and the server's host keys
    (SSH_KNOWN_HOSTS, known_hosts lines), in memory. DVC's `keyfile` names a file, which a pull
    request's code, run as the same user, could read; and a runner has no known_hosts entry for
    the team's server, so without one asyncssh refuses the connection whatever the credentials.
    The key is used for a remote with no `keyfile` of its own, or whose `keyfile` names files this
    machine does not have (a developer's). Returns whether anything was handed over."""
    key_text = environ.get(SSH_KEY_VARIABLE, "").strip()
    hosts_text = environ.get(SSH_KNOWN_HOSTS_VARIABLE, "").strip()
    if not key_text and not hosts_text:
        return False
    try:
        import asyncssh
        import dvc_ssh
    except ImportError:
        return False  # no SSH client: DVC names the missing extra when the remote is used
    try:
        key = asyncssh.import_private_key(key_text) if key_text else None
    except (asyncssh.KeyImportError, ValueError):
        raise DvcError(f"{SSH_KEY_VARIABLE} is not a private key lockstep can read without a passphrase",
                       hint="set the secret to the whole content of an unencrypted OpenSSH or PEM private key file") from None
    try:
        known = asyncssh.import_known_hosts(hosts_text) if hosts_text else None
    except ValueError:
        raise DvcError(f"{SSH_KNOWN_HOSTS_VARIABLE} is not known_hosts lines",
                       hint="set it to what `ssh-keyscan -p PORT HOST` prints for the remote's server") from None
    def add(login: dict) -> None:
        keys = login.get("client_keys")
        if key is not None and (not keys or (isinstance(keys, list) and all(_missing_file(k) for k in keys))):
            login["client_keys"] = [key]
            login["preferred_auth"] = ["publickey", *[m for m in login.get("preferred_auth", []) if m != "publickey"]]
        if known is not None:
            login["known_hosts"] = known

    _extend_login(dvc_ssh.SSHFileSystem, add)
    return True


def google_drive_signer() -> bool:
    """Make a Google Drive remote's service-account login work with today's DVC. pydrive2 logs in
    through oauth2client, which signs the token request with pyOpenSSL's `crypto.sign` whenever
    pyOpenSSL imports; pyOpenSSL 24.3 removed it, and the cryptography current DVC needs takes a
    pyOpenSSL at least that new. oauth2client's own pure-Python RSA signer makes the same RS256
    signature: it is used instead, in this process, when `crypto.sign` is gone. Returns whether
    it was switched."""
    try:
        from oauth2client import crypt
        from OpenSSL import crypto
    except ImportError:
        return False  # no Google Drive client installed, or oauth2client already signs without pyOpenSSL
    if hasattr(crypto, "sign") or crypt.Signer is crypt.RsaSigner:
        return False
    crypt.Signer = crypt.RsaSigner
    return True


def trusted_remotes(repo, repo_text: str, local_text: str | None) -> Remotes:
    """The DVC remotes as DVC would read them with `repo_text` as `.dvc/config` and `local_text`
    as `.dvc/config.local` (None: without one), over this machine's system and global config;
    relative paths resolved as DVC resolves them."""
    from configobj import ConfigObj, ConfigObjError
    from dvc.config import ConfigError, _lower_keys, _parse_named, merge

    config = repo.config
    conf: dict[str, Any] = {}
    try:
        for level in ("system", "global"):
            merge(conf, config.load_one(level))
        for level, text in (("repo", repo_text), ("local", local_text)):
            if text is not None:
                merge(conf, config._load_paths(_parse_named(_lower_keys(ConfigObj(text.splitlines()).dict())), config.files[level]))
        conf = config.validate(conf)
    except (ConfigObjError, ConfigError) as exc:
        raise DvcError(f"the base commit's DVC config cannot be read: {exc}", hint="fix .dvc/config on the base branch",
                       file=".dvc/config") from None
    return _remotes(conf)


def checkout_remotes(repo) -> Remotes:
    """The DVC remotes of the project as checked out, from every config level DVC reads
    (`.dvc/config.local` included), before any credential of the job is added."""
    from dvc.config import ConfigError

    config = repo.config
    try:
        conf = config.validate(config.load_config_to_level())
    except ConfigError as exc:
        raise DvcError(f"the DVC config cannot be read: {exc}", hint="fix .dvc/config", file=".dvc/config") from None
    return _remotes(conf)


def _remotes(conf: Mapping[str, Any]) -> Remotes:
    """The remotes and the default remote of a DVC configuration (validated, levels merged)."""
    return dict(conf.get("remote") or {}), (conf.get("core") or {}).get("remote")


def remote_changes(before: Remotes, after: Remotes) -> list[str]:
    """What changed between two sets of DVC remotes, by remote and option name (never values:
    a URL or an option can hold a credential)."""
    (old, old_default), (new, new_default) = before, after
    changes = []
    for name in sorted(set(old) | set(new)):
        if name not in new:
            changes.append(f"remote '{name}' removed")
        elif name not in old:
            changes.append(f"remote '{name}' added")
        else:
            keys = sorted(k for k in set(old[name]) | set(new[name]) if old[name].get(k) != new[name].get(k))
            if keys:
                changes.append(f"remote '{name}': {', '.join(keys)} changed")
    if old_default != new_default:
        changes.append(f"default remote {old_default or '(none)'} -> {new_default or '(none)'}")
    return changes


_OPEN: list[Any] = []  # every project this process opened: DVC's git layer holds files until closed


def close_all() -> None:
    """Close every DVC project opened by this command (the CLI calls it on its way out)."""
    while _OPEN:
        repo = _OPEN.pop()
        try:
            repo.close()
        except Exception:  # noqa: BLE001, S110 - closing is best effort on the way out
            pass


REMOTE_AUTH_VARIABLE = "DVC_REMOTE_AUTH"
_MASKED_AUTH: set[str] = set()


def remote_auth(configured: Remotes, text: str) -> dict[str, dict[str, str]]:
    """Credentials for the DVC remotes `configured`, for this process only: `key=value` lines (for
    the default remote) or `NAME.key=value` (for the remote NAME), from the `DVC_REMOTE_AUTH`
    secret. They are merged into DVC's configuration in memory and never written to
    `.dvc/config.local`. Returns each remote's options with the credentials added."""
    from . import gha

    if not text.strip():
        return {}
    remotes, default = configured
    overrides: dict[str, dict[str, str]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise DvcError(
                f"{REMOTE_AUTH_VARIABLE} line {number} is not KEY=VALUE",
                hint="one `key=value` per line (e.g. `password=…`), or `REMOTE.key=value` for a named remote",
            )
        name, dot, option = key.partition(".")
        target: str | None
        if dot and name in remotes:
            target = name
        else:
            target, option = default, key
        if not target or target not in remotes:
            raise DvcError(
                f"{REMOTE_AUTH_VARIABLE} line {number}: no remote to apply `{key}` to",
                hint="set a default remote (`dvc remote default NAME`) or prefix the key with the remote's name",
                file=".dvc/config",
            )
        if value not in _MASKED_AUTH:  # the project is opened several times per command; mask once
            _MASKED_AUTH.add(value)
            gha.mask(value)
        merged = overrides.setdefault(target, dict(remotes[target]))
        merged[option] = value
    return overrides


# DVC 2's per-stage `live:` section, which DVC 3 refuses, and what replaces it
_DVC2_LIVE = ("this dvc.yaml is written for DVC 2, and DVC 3 no longer reads a stage's `live:` section: log with "
              "DVCLive's `Live()` in the stage's code, and declare the files it writes (such as `dvclive/metrics.json`) "
              "under `metrics:` and `plots:`; then run `dvc repro` with DVC 3 and commit dvc.yaml and dvc.lock")


def project_file_error(exc: BaseException, project_dir: str | Path = ".") -> DvcError:
    """A broken dvc.yaml, dvc.lock or params file, said with DVC's own message, file and line."""
    from dvc.utils.strictyaml import YAMLSyntaxError, YAMLValidationError

    file, line = None, None
    detail = str(exc)
    dvc2 = False  # a stage's `live:` section (DVC 2)
    if isinstance(exc, YAMLSyntaxError):
        file = os.path.relpath(exc.relpath, project_dir) if os.path.isabs(exc.relpath) else exc.relpath
        mark = getattr(exc.exc.__cause__, "problem_mark", None) or getattr(exc.exc.__cause__, "context_mark", None)
        problem = getattr(exc.exc.__cause__, "problem", None)
        line = mark.line + 1 if mark is not None else None
        detail = f"not valid YAML: {problem or exc.exc}"
    elif isinstance(exc, YAMLValidationError):
        from dvc.utils.serialize import parse_yaml_for_update
        from dvc.utils.strictyaml import determine_linecol

        file = os.path.relpath(exc.path, project_dir) if os.path.isabs(exc.path) else exc.path
        errors = []
        for error in exc.exc.errors:
            keys = [str(p) for p in error.path]
            dvc2 = dvc2 or (len(keys) == 3 and keys[0] == "stages" and keys[2] == "live")
            where = " -> ".join(keys)
            errors.append(f"{error.error_message}{' in ' + where if where else ''}")
            if line is None:
                try:
                    line = determine_linecol(parse_yaml_for_update(exc.text, exc.path), error.path)[0] or None
                except Exception:  # noqa: BLE001 - the line is a courtesy
                    line = None
        detail = "; ".join(errors) or str(exc)
    else:
        path = getattr(exc, "path", None) or getattr(exc, "relpath", None)
        if isinstance(path, str) and path:
            file = os.path.relpath(path, project_dir) if os.path.isabs(path) else path
    file = os.path.normpath(file) if file else None
    where = f"{file}{':' + str(line) if line else ''}: " if file else ""
    hint = "DVC cannot read this project as it is; run `dvc status` locally to see the same error, fix the file and push"
    if dvc2:
        hint = _DVC2_LIVE
    return DvcError(
        f"{where}{detail}",
        hint=hint,
        file=file,
        line=line,
    )


def lock_files(repo) -> list[str]:
    """The lock file beside each dvc.yaml of the project's pipelines (relative to the project, the
    top-level `dvc.lock` first), whether or not it exists yet."""
    files = {_lock_of(repo, stage) for stage in _pipeline_stages(repo)}
    return sorted(files, key=lambda name: (name != LOCK_FILE, name)) or [LOCK_FILE]


def _lock_of(repo, stage) -> str:
    """The lock file of a pipeline stage, relative to the project: `dvc.lock` beside its dvc.yaml."""
    folder = os.path.relpath(os.path.dirname(stage.dvcfile.path), repo.root_dir)
    return os.path.normpath(os.path.join(folder, LOCK_FILE)).replace(os.sep, "/")


def lock_digest(repo) -> str:
    """SHA-256 of the pipeline state: of dvc.lock's bytes when the project has one pipeline file,
    else of each lock file's path and digest. The identity of a pipeline state in tags and reports."""
    digests = []
    for name in lock_files(repo):
        path = Path(repo.root_dir) / name
        if path.is_file():
            digests.append((name, hashlib.sha256(path.read_bytes()).hexdigest()))
    if not digests:
        return ""
    if [name for name, _ in digests] == [LOCK_FILE]:
        return digests[0][1]
    return hashlib.sha256("".join(f"{name}\0{digest}\n" for name, digest in digests).encode()).hexdigest()


def locked_entries(repo, read: Callable[[str], str | None] | None = None) -> dict[str, dict[str, Any]]:
    """Every pipeline stage's dvc.lock entry, by stage address (`train`, `sub/dvc.yaml:train`), each
    read from the lock file beside the stage's dvc.yaml: from the workspace, or through
    `read(lock file)` (another commit's text)."""
    texts: dict[str, dict[str, Any]] = {}
    result: dict[str, dict[str, Any]] = {}
    for stage in _pipeline_stages(repo):
        name = _lock_of(repo, stage)
        if name not in texts:
            if read is not None:
                texts[name] = lock_entries(read(name))
            else:
                path = Path(repo.root_dir) / name
                texts[name] = lock_entries(path.read_text("utf-8") if path.is_file() else None)
        entry = texts[name].get(stage.name)
        if isinstance(entry, dict):
            result[_address(repo, stage)] = entry
    return result


def pipeline_stages(repo) -> list[Stage]:
    """Stages from dvc.yaml files (not .dvc files), in dependency order."""
    return [_info(repo, stage) for stage in _pipeline_stages(repo)]


def _info(repo, stage) -> Stage:
    return Stage(stage.name, _address(repo, stage), stage.cmd, bool(getattr(stage, "frozen", False)))


def _pipeline_stages(repo) -> list:
    """DVC's own stage objects of dvc.yaml files, in dependency order."""
    from dvc.stage import PipelineStage

    graph_order = _topological(repo)
    return [stage for stage in graph_order if isinstance(stage, PipelineStage)]


def _topological(repo) -> list:
    import networkx as nx

    graph = repo.index.graph
    # DVC's graph edges point from a stage to the stages it depends on.
    return list(reversed(list(nx.topological_sort(graph))))


def stage_named(repo, name: str) -> Stage:
    """The stage `name` (or its address), or a DvcError that lists the known stages."""
    return _info(repo, _stage(repo, name))


def _stage(repo, name: str):
    for stage in _pipeline_stages(repo):
        if stage.name == name or _address(repo, stage) == name:
            return stage
    names = ", ".join(_address(repo, stage) for stage in _pipeline_stages(repo)) or "(none)"
    raise DvcError(
        f"stage '{name}' not found in dvc.yaml",
        hint=f"known stages: {names}; fix lockstep.yaml or the `stages` input",
        file="dvc.yaml",
    )


def _address(repo, stage) -> str:
    """How `dvc repro` run in the project names a stage: `train`, or `sub/dvc.yaml:train`."""
    dvcfile = os.path.relpath(stage.dvcfile.path, repo.root_dir).replace(os.sep, "/")
    return stage.name if dvcfile == "dvc.yaml" else f"{dvcfile}:{stage.name}"


def downstream(repo, names: Iterable[str]) -> list[Stage]:
    """The named stages and every pipeline stage that depends on them, in run order."""
    import networkx as nx

    graph = repo.index.graph
    chosen = {_stage(repo, name) for name in names}
    closure = set(chosen)
    for stage in chosen:
        closure |= set(nx.ancestors(graph, stage))  # edges point to dependencies
    return [_info(repo, stage) for stage in _pipeline_stages(repo) if stage in closure]


def output_owner(repo, path: str) -> Output | None:
    """The output at `path` (relative to the project), with the stage that produces it, or None."""
    stage, out = _owner(repo, path)
    if out is None:
        return None
    return Output(
        path=os.path.relpath(out.fs_path, repo.root_dir).replace(os.sep, "/"),
        stage=_address(repo, stage) if hasattr(stage, "name") else "",  # a `dvc add`-ed file has no stage name
        md5=out.hash_info.value if out.hash_info else "",
        remote=out.remote,
        cached=bool(out.use_cache),
        dvcfile=os.path.relpath(stage.path, repo.root_dir).replace(os.sep, "/"),
    )


def _owner(repo, path: str):
    """DVC's (stage, out) producing `path` (relative to the project), or (None, None)."""
    target = os.path.normpath(path)
    for stage in repo.index.stages:
        for out in stage.outs:
            if os.path.normpath(out.def_path) == target and stage.wdir == repo.root_dir:
                return stage, out
            rel = os.path.relpath(out.fs_path, repo.root_dir)
            if os.path.normpath(rel) == target:
                return stage, out
    return None, None


def _producers(repo) -> dict[str, tuple[Any, Any]]:
    producers = {}
    for stage in repo.index.stages:
        for out in stage.outs:
            producers[out.fs_path] = (stage, out)
    return producers


def _inside(path: str, folder: str) -> bool:
    return path.startswith(folder.rstrip(os.sep) + os.sep)


def _holder(producers: Mapping[str, tuple[Any, Any]], path: str) -> tuple[Any, Any] | None:
    """The (stage, out) whose folder output holds `path` (`data/raw` for `data/raw/train.csv`)."""
    return next((producer for out_path, producer in producers.items() if _inside(path, out_path)), None)


def _held(producers: Mapping[str, tuple[Any, Any]], path: str) -> list[tuple[Any, Any]]:
    """The (stage, out) pairs whose outputs lie inside the folder `path` (`models/model.json` in `models`)."""
    return [producer for out_path, producer in producers.items() if _inside(out_path, path)]


def _read_outputs(producers: Mapping[str, tuple[Any, Any]], path: str) -> list[tuple[str, tuple[Any, Any]]]:
    """What a dependency at `path` reads of the stages' outputs, as (path to fetch, (stage, out)):
    the output itself; a file or folder inside a folder output (fetched alone, as `dvc pull
    data/raw/train.csv` does); or the outputs a folder dependency holds."""
    producer = producers.get(path) or _holder(producers, path)
    return [(path, producer)] if producer else [(item[1].fs_path, item) for item in _held(producers, path)]


def _produced(producers: Mapping[str, tuple[Any, Any]], path: str) -> bool:
    """Whether `path` is, is inside, or holds an output: data, not code alone. DVC links a stage to
    the stages whose outputs overlap its dependencies, not only to those of the same path."""
    return path in producers or _holder(producers, path) is not None or bool(_held(producers, path))


def _listing(repo, out):
    """The folder output's `.dir` listing as dvc.lock records it: from the cache, else from its
    remote (only the listing is read, never the files)."""
    from dvc_data.hashfile.tree import Tree

    hash_name = out.hash_info.name or "md5"
    cache = repo.cache.local if hash_name == "md5" else repo.cache.legacy
    try:
        return Tree.load(cache, out.hash_info)
    except (FileNotFoundError, OSError):
        pass
    try:
        return Tree.load(_remote_odb(repo, out.remote, hash_name), out.hash_info)
    except Exception as exc:  # noqa: BLE001 - missing listing, network and auth errors alike
        rel = os.path.relpath(out.fs_path, repo.root_dir).replace(os.sep, "/")
        raise DvcError(
            f"the listing of {rel} ({out.hash_info.value}), which {LOCK_FILE} records, is in neither the cache nor the "
            f"remote {remote_url(repo, out.remote) or '(default)'}: {_short_error(exc)}",
            hint=f"a dependency inside {rel} is checked against it: run `dvc push` for {rel} and re-run",
        ) from None


def _entries(repo, out, prefix: str = "") -> list[dict[str, Any]]:
    """The files of an output as (relpath under `prefix`, md5) listing entries: a file output is
    one entry, a folder output its listing's."""
    if not out.hash_info or not out.hash_info.value:
        return []
    if not out.hash_info.isdir:
        return [{"relpath": prefix.rstrip("/"), "md5": out.hash_info.value}]
    return [{"relpath": prefix + "/".join(key), "md5": info.value}
            for key, (_meta, info) in _listing(repo, out).iteritems() if info]


def _digest(entries: Sequence[Mapping[str, Any]]) -> str:
    from dvc_data.hashfile.tree import Tree

    tree = Tree.from_list([dict(entry) for entry in entries])
    tree.digest()
    return tree.hash_info.value if tree.hash_info else ""


def _inside_output_matches(repo, dep, upstream_out) -> bool:
    """Whether a dependency inside a folder output (a file, or a sub-folder) is, as its lock
    records it, what the upstream output's listing holds at that path: what `dvc status` finds on
    a developer's machine whose workspace holds the upstream output."""
    member = os.path.relpath(dep.fs_path, upstream_out.fs_path).replace(os.sep, "/")
    entries = _entries(repo, upstream_out)
    if not dep.hash_info.isdir:
        return any(entry["relpath"] == member and entry["md5"] == dep.hash_info.value for entry in entries)
    below = [{"relpath": entry["relpath"][len(member) + 1:], "md5": entry["md5"]}
             for entry in entries if entry["relpath"].startswith(member + "/")]
    return bool(below) and _digest(below) == dep.hash_info.value


def _folder_with_outputs_matches(repo, dep, held: Sequence[tuple[Any, Any]]) -> bool:
    """Whether a folder dependency that holds other stages' outputs is, as its lock records it,
    this checkout's files (git's) together with those outputs as dvc.lock records them: DVC hashed
    the developer's folder, outputs included."""
    from dvc_data.hashfile.hash import file_md5

    root = dep.fs_path
    outs = [out.fs_path for _stage, out in held]
    entries: list[dict[str, Any]] = []
    for _stage, out in held:
        entries += _entries(repo, out, os.path.relpath(out.fs_path, root).replace(os.sep, "/") + ("/" if out.hash_info and out.hash_info.isdir else ""))
    if os.path.isdir(root):
        for path in dep.repo.dvcignore.find(dep.repo.fs, root):
            if path in outs or any(_inside(path, out) for out in outs):
                continue
            entries.append({"relpath": os.path.relpath(path, root).replace(os.sep, "/"), "md5": file_md5(path, dep.repo.fs)})
    return _digest(entries) == dep.hash_info.value


# --- staleness ----------------------------------------------------------------------------------


def _dep_name(repo, dep) -> str:
    """How a report names a dependency: relative to the project, or as dvc.yaml writes it when it is
    outside the repository (a URL, a cloud path: `https://.../wine.data`, never `../https:/...`)."""
    if not dep.is_in_repo:
        return str(dep.def_path)
    return os.path.relpath(dep.fs_path, repo.root_dir)


def stale_stages(repo, only: Iterable[str] | None = None) -> list[StaleStage]:
    """Stages whose dvc.lock entry does not match dvc.yaml, the code, the params or the lock
    entries of the stages they depend on. Needs no DVC-tracked data in the workspace."""
    from dvc.dependency.param import ParamsDependency

    producers = _producers(repo)
    locked = locked_entries(repo)
    wanted = set(only) if only else None
    result = []
    for stage in _pipeline_stages(repo):
        address = _address(repo, stage)
        if wanted is not None and stage.name not in wanted and address not in wanted:
            continue
        if stage.frozen:
            continue
        changes: list[Change] = []
        if address not in locked:
            result.append(StaleStage(address, [Change("never-run")]))
            continue
        # an `always_changed` stage (ingestion of data DVC cannot see) re-runs by definition: its lock
        # entry records the last ingestion, which is not stale; its deps and params still count
        if locked[address].get("cmd") != stage.cmd:  # what DVC itself compares, read from the lock, not its internals
            changes.append(Change("cmd", old=locked[address].get("cmd", ""), new=stage.cmd))
        for dep in stage.deps:
            external = not dep.is_in_repo  # a URL, a cloud path, a file outside the repository
            rel = _dep_name(repo, dep)
            if isinstance(dep, ParamsDependency):
                changes.extend(_param_changes(dep, rel))
                continue
            if not dep.hash_info:
                changes.append(Change("new-dep", path=rel))
                continue
            if external:
                # data that changes outside git (`deps: [https://.../wine.data]` of a download stage):
                # DVC would ask its server, and an unreachable host or a new upload is nothing the
                # pull request did. The lock is what the developer downloaded, and CI pulls the
                # stage's outputs as it records them; like an `always_changed` ingestion, not stale
                continue
            producer = producers.get(dep.fs_path)
            if producer is not None and producer[0] is not stage:
                upstream_stage, upstream_out = producer
                if not _same_data(upstream_out, dep):
                    changes.append(Change("upstream", path=rel, key=_name_of(repo, upstream_stage)))
                continue
            # overlapping paths (DVC links these stages too): compared with the lock's hashes, since
            # CI's checkout has not pulled the data a developer's `dvc status` would read
            holder = _holder(producers, dep.fs_path)
            if holder is not None and holder[0] is not stage and dep.hash_info.name == "md5":
                if not _inside_output_matches(repo, dep, holder[1]):
                    changes.append(Change("upstream", path=rel, key=_name_of(repo, holder[0])))
                continue
            held = [item for item in _held(producers, dep.fs_path) if item[0] is not stage]
            if held and dep.hash_info.name == "md5":
                if not _folder_with_outputs_matches(repo, dep, held):
                    names = "', '".join(dict.fromkeys(_name_of(repo, item[0]) for item in held))
                    changes.append(Change("upstream", path=rel, key=names))
                continue
            status = dep.status()
            if status and not _differs_only_in_line_endings(dep):
                changes.append(_untracked_in_folder(dep, rel) or Change("file", path=rel, new=str(next(iter(status.values())))))
        if changes:
            result.append(StaleStage(address, changes))
    return result


def _name_of(repo, stage) -> str:
    return _address(repo, stage) if hasattr(stage, "name") else stage.addressing


def _untracked_in_folder(dep, rel: str) -> Change | None:
    """A folder dependency whose locked hash counts more files than this checkout has: DVC hashes
    every file in a folder, git-ignored ones included (Python's `__pycache__`, a package's
    `*.egg-info`, editor files), so the developer's hash held files no clean checkout has, and no
    other machine can reproduce it. Told apart from a plain change because the fix differs."""
    locked = dep.meta
    if not (dep.hash_info and dep.hash_info.isdir and locked and locked.nfiles is not None):
        return None
    try:
        current = dep.get_meta()
    except Exception:  # noqa: BLE001 - a folder that went away is a plain change
        return None
    if current.nfiles is None or locked.nfiles <= current.nfiles:
        return None
    return Change("untracked", path=rel, old=_files_and_bytes(locked.nfiles, locked.size),
                  new=_files_and_bytes(current.nfiles, current.size))


def _files_and_bytes(nfiles: int, size: int | None) -> str:
    return f"{nfiles} file{'' if nfiles == 1 else 's'}" + (f" ({size:,} bytes)" if size is not None else "")


def _differs_only_in_line_endings(dep) -> bool:
    """Whether a text file the lock records is this checkout's file with CRLF line endings: a lock
    made on Windows, where git's `core.autocrlf` checks text out with CRLF and DVC hashes the bytes
    as they are. The code is the same; CI's checkout has LF."""
    value = dep.hash_info.value if dep.hash_info else None
    path = Path(dep.fs_path)
    if not value or not path.is_file() or path.stat().st_size > 16 << 20:
        return False
    data = path.read_bytes()
    if b"\0" in data[:8192] or b"\r" in data or b"\n" not in data:
        return False
    return hashlib.md5(data.replace(b"\n", b"\r\n"), usedforsecurity=False).hexdigest() == value


def _same_data(out, dep) -> bool:
    """Whether a stage's dependency, as its lock records it, is what the upstream output holds.
    Data that DVC 2 added and nobody re-added keeps its legacy hash (`md5-dos2unix`, taken with
    CRLF read as LF), while a stage DVC 3 ran since records the same data's new `md5`: the two
    values cannot be compared without the data, so size and file count are (DVC itself reads the
    workspace, which CI has not pulled)."""
    theirs, ours = out.hash_info, dep.hash_info
    if theirs and ours and theirs.name != ours.name and {theirs.name, ours.name} <= {"md5", "md5-dos2unix"}:
        return (out.meta.size, out.meta.nfiles) == (dep.meta.size, dep.meta.nfiles)
    return theirs == ours


def lock_entries(text: str | None) -> dict[str, Any]:
    """The `stages` of a dvc.lock text ({} when absent or unreadable)."""
    import yaml

    if not text:
        return {}
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError:
        return {}
    return (data.get("stages") or {}) if isinstance(data, dict) else {}


def _param_changes(dep, rel: str) -> list[Change]:
    locked = dep.hash_info.value if dep.hash_info else {}
    try:
        current = dep.read_params()
    except Exception as exc:  # noqa: BLE001 - DVC raises several kinds for unreadable params
        return [Change("file", path=rel, new=f"unreadable ({exc})")]
    old, new = _flatten(locked or {}), _flatten(current or {})
    changes = []
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key, _MISSING), new.get(key, _MISSING)
        if before != after:
            changes.append(Change("param", path=rel, key=key, old=before, new=after))
    return changes


# --- the remote ---------------------------------------------------------------------------------


def _remote_odb(repo, remote: str | None, hash_name: str):
    from dvc.config import NoRemoteError, RemoteConfigError

    try:
        return repo.cloud.get_remote_odb(remote, hash_name=hash_name)
    except NoRemoteError:
        names = sorted(repo.config.get("remote", {}))
        if names:
            raise DvcError(
                f"the project has {len(names)} DVC remotes ({', '.join(names)}) and none is the default",
                hint="choose the one CI pushes to and checks: `dvc remote default NAME`, and commit .dvc/config",
                file=".dvc/config",
            ) from None
        raise DvcError(
            "no DVC remote is configured for this project",
            hint="add one with `dvc remote add -d NAME s3://BUCKET/PATH` and commit .dvc/config",
            file=".dvc/config",
        ) from None
    except RemoteConfigError as exc:
        missing = re.search(r"remote '([^']+)' doesn't exist", str(exc))
        if missing:
            named = missing.group(1)
            where = "its default" if remote is None else "an output's `remote:`"
            defined = sorted(repo.config.get("remote", {}))
            raise DvcError(
                f"the project's DVC config names the remote '{named}' as {where}, and no such remote is configured here"
                + (f" (only {', '.join(defined)})" if defined else ""),
                hint=(f"a developer's .dvc/config.local (not in git) may hold it: define '{named}' in .dvc/config and commit it "
                      f"(`dvc remote add {named} URL`; credentials go in the {REMOTE_AUTH_VARIABLE} secret), or have a step "
                      f"before lockstep's add it (`dvc remote add --local {named} URL`)"),
                file=".dvc/config",
            ) from None
        if "cloud versioned" in str(exc):
            raise DvcError(
                f"the DVC remote {remote_url(repo, remote) or '(default)'} is cloud-versioned (`version_aware` or `worktree`): "
                "it keeps files by path and object version, not by content hash, and lockstep checks, pulls and pushes "
                "by content hash",
                hint="use a remote without `version_aware`/`worktree` for the pipeline's outputs (README, Known limits)",
                file=".dvc/config",
            ) from None
        raise DvcError(f"the DVC remote cannot be used: {exc}", hint="fix the remote in .dvc/config", file=".dvc/config") from None
    except Exception as exc:  # noqa: BLE001 - a backend refusing its configuration (missing credentials)
        raise DvcError(
            f"the DVC remote {remote_url(repo, remote) or '(default)'} cannot be used: {type(exc).__name__}: {exc}",
            hint=f"pass the remote's credentials as the {REMOTE_AUTH_VARIABLE} secret (README, DVC remotes); nothing was changed",
            file=".dvc/config",
        ) from None


def remote_url(repo, remote: str | None = None) -> str:
    try:
        name = remote or repo.config["core"].get("remote")
        return repo.config["remote"][name]["url"] if name else ""
    except KeyError:
        return ""


def object_path(repo, oid: str, remote: str | None = None) -> str:
    """Where an object lives in the remote (for lineage tags): s3://bucket/prefix/files/md5/ab/cd..."""
    base = remote_url(repo, remote).rstrip("/")
    if not base:
        return ""
    return f"{base}/files/md5/{oid[:2]}/{oid[2:]}"


def verify_remote(repo, stages: Sequence[str] | None = None, *, outputs: Iterable[str] | None = None) -> RemoteCheck:
    """Check that every object of every cached output in the lock is in its remote (of these
    stages' outputs only, or of only these `outputs`, paths relative to the project).

    Directory listings (`.dir` objects) are read from the remote itself, so the check works with
    an empty local cache, and then every file inside is checked, not only the listing.
    """
    return remote_probe(repo, stages, outputs=outputs)()


def remote_probe(repo, stages: Sequence[str] | None = None, *,
                 outputs: Iterable[str] | None = None) -> Callable[[], RemoteCheck]:
    """`verify_remote` in two parts: what to check is read from `repo` now (and a remote that
    cannot be used raises DvcError here); the function returned asks the remote, and touches
    neither `repo` nor the project's DVC databases (SQLite files that another connection writing
    them makes fail with "database is locked"), so it may run in a thread while `repo` pulls."""
    chosen = [_stage(repo, name) for name in stages] if stages is not None else list(repo.index.stages)
    only = {os.path.normpath(path) for path in outputs} if outputs is not None else None
    url = remote_url(repo) or "(default)"
    check = RemoteCheck(remote=url)
    odbs: dict[tuple[str | None, str], Any] = {}
    planned: list[tuple[tuple[str | None, str], str, str, Any]] = []  # (odb key, output, stage, hash info)
    for stage in chosen:
        if getattr(stage, "is_repo_import", False):
            source = stage.deps[0].def_repo if stage.deps else {}
            for out in stage.outs:
                rel = os.path.relpath(out.fs_path, repo.root_dir).replace(os.sep, "/")
                check.imported.append(f"{rel} (from {source.get('url', '?')} at {str(source.get('rev_lock') or '?')[:12]})")
            continue
        for out in stage.outs:
            if not out.use_cache or not out.hash_info:
                continue
            rel = os.path.relpath(out.fs_path, repo.root_dir)
            if only is not None and os.path.normpath(rel) not in only:
                continue
            if not out.can_push:
                check.unpushed.append(rel.replace(os.sep, "/"))
                continue
            key = (out.remote, out.hash_info.name or "md5")
            if key not in odbs:
                odbs[key] = _remote_odb(repo, *key)
            planned.append((key, rel, stage.addressing, out.hash_info))

    def probe() -> RemoteCheck:
        from dvc_data.hashfile.tree import Tree

        # (remote name, hash name) -> {oid: [MissingObject candidates]}
        wanted: dict[tuple[str | None, str], dict[str, list[MissingObject]]] = {}
        for key, rel, addressing, hash_info in planned:
            bucket = wanted.setdefault(key, {})
            bucket.setdefault(hash_info.value, []).append(MissingObject(rel, addressing, hash_info.value))
            if hash_info.isdir:
                try:
                    tree = Tree.load(odbs[key], hash_info)
                except FileNotFoundError:
                    continue  # the listing itself is missing: reported by the existence check below
                except Exception as exc:  # noqa: BLE001 - network and auth errors from the fs
                    raise _unreachable(url, exc) from None
                for member, (_meta, info) in tree.iteritems():
                    bucket.setdefault(info.value, []).append(MissingObject(rel, addressing, info.value, "/".join(member)))
        for key, objects in wanted.items():
            try:
                present = set(odbs[key].oids_exist(list(objects), jobs=_jobs()))
            except Exception as exc:  # noqa: BLE001
                raise _unreachable(url, exc) from None
            check.checked += len(objects)
            for oid, places in objects.items():
                if oid not in present:
                    check.missing.extend(places)
        check.missing.sort(key=lambda item: (item.output, item.member or ""))
        return check

    return probe


def _jobs() -> int:
    return max(4, min(32, (os.cpu_count() or 2) * 4))


def _unreachable(url: str, exc: BaseException) -> DvcError:
    return DvcError(
        f"could not reach the DVC remote {url}: {type(exc).__name__}: {exc}",
        hint="check the remote's endpoint and the AWS credentials (or the OIDC role), then re-run; nothing was changed",
    )


# --- transfers and runs -------------------------------------------------------------------------


def pull(repo, targets: Sequence[str]) -> int:
    """Fetch and check out exactly these outputs. Returns the number of files fetched."""
    if not targets:
        return 0
    try:
        result = repo.pull(targets=[os.path.join(repo.root_dir, t) for t in targets], jobs=_jobs())
    except Exception as exc:  # noqa: BLE001 - DVC raises CheckoutError, DownloadError, fs errors
        raise DvcError(
            f"dvc pull of {', '.join(targets)} failed: {type(exc).__name__}: {exc}",
            hint="check that these outputs were pushed (`dvc push`) and that the remote is reachable",
        ) from None
    stats = result.get("stats", {}) if isinstance(result, dict) else {}
    return int(stats.get("fetched", 0) or 0)


def fetch_at(repo, read_lock: Callable[[str], str | None], path: str, target: Path, *, limit: int = 1 << 30) -> bool:
    """Copy the stage output `path` (relative to the project) as another commit's lock files record
    it to `target`: `read_lock(lock file)` gives that commit's text of a lock file. From the cache,
    else from the remote this checkout is configured with (the workspace is not touched). False when
    that commit's lock has no such output, or its files are over `limit` bytes in all."""
    import json

    from dvc.stage import PipelineStage

    stage, out = _owner(repo, path)
    if not isinstance(stage, PipelineStage) or out is None:
        return False
    locked = lock_entries(read_lock(_lock_of(repo, stage))).get(stage.name)
    outs = locked.get("outs") if isinstance(locked, dict) else None
    wanted = os.path.normpath(out.def_path)  # as the lock records it: relative to the stage's wdir
    entry = next((item for item in outs or [] if isinstance(item, dict)
                  and os.path.normpath(str(item.get("path", ""))) == wanted), None)
    oid = str((entry or {}).get("md5") or "")
    if not re.fullmatch(r"[0-9a-f]{32}(\.dir)?", oid) or int((entry or {}).get("size") or 0) > limit:
        return False
    # a lock entry without `hash: md5` was written by DVC 2: its objects are kept where DVC 2 kept them
    hash_name = "md5" if (entry or {}).get("hash") == "md5" else "md5-dos2unix"
    cache = repo.cache.local if hash_name == "md5" else repo.cache.legacy
    try:
        if oid.endswith(".dir"):
            _copy_object(repo, cache, oid, target.with_name(target.name + ".dir"), hash_name)
            listing = json.loads(target.with_name(target.name + ".dir").read_text("utf-8"))
            target.mkdir(parents=True, exist_ok=True)
            for item in listing:
                relpath, child = str(item.get("relpath", "")), str(item.get("md5", ""))
                parts = Path(relpath).parts
                if not relpath or Path(relpath).is_absolute() or ".." in parts or not re.fullmatch(r"[0-9a-f]{32}", child):
                    continue  # a listing naming paths outside its folder is not followed
                _copy_object(repo, cache, child, target / relpath, hash_name)
        else:
            _copy_object(repo, cache, oid, target, hash_name)
    except DvcError:
        raise
    except Exception as exc:  # noqa: BLE001 - the remote's backends raise many kinds
        raise DvcError(f"{path} as the base's dvc.lock records it ({oid[:12]}) could not be read: {_short_error(exc)}",
                       hint="check that the base commit's outputs were pushed (`dvc push`)") from None
    return True


def _copy_object(repo, cache, oid: str, target: Path, hash_name: str) -> None:
    """One object, from the cache when it has it, else streamed from the remote."""
    import shutil

    target.parent.mkdir(parents=True, exist_ok=True)
    if cache.exists(oid):
        shutil.copyfile(cache.oid_to_path(oid), target)
        return
    odb = _remote_odb(repo, None, hash_name)
    odb.fs.get_file(odb.oid_to_path(oid), str(target))


def push(repo, targets: Sequence[str] | None = None) -> int:
    try:
        paths = [os.path.join(repo.root_dir, t) for t in targets] if targets else None
        return int(repo.push(targets=paths, jobs=_jobs()) or 0)
    except Exception as exc:  # noqa: BLE001 - UploadError, fs and network errors
        raise DvcError(
            f"dvc push failed: {type(exc).__name__}: {exc}",
            hint="nothing was committed; check the remote's endpoint and credentials, then re-run the job",
        ) from None


GENERIC_STAGE_HINT = "the stage's own output is in the log above"


def reproduce(project_dir: str | Path, stage_names: Sequence[str], *, env: Mapping[str, str], force: bool = True,
              no_commit: bool = False) -> None:
    """Run the named stages (each alone, in pipeline order) with `dvc repro` in a child process
    whose environment is exactly `env`: the stages are the project's code, and they get only what
    the caller hands them. Their output goes to the log, with workflow commands switched off."""
    import subprocess
    import sys
    import tempfile

    from . import envrun, gha

    if not stage_names:
        return
    argv = [sys.executable, "-m", "dvc", "repro", "--single-item"]
    argv += ["--force"] if force else []
    argv += ["--no-commit"] if no_commit else []
    argv += ["--", *stage_names]
    tail: list[str] = []
    with gha.commands_paused(), tempfile.TemporaryDirectory(prefix="lockstep-envrun-") as shims:
        # `poetry run ...`, `uv run ...` and the project's console scripts, in lockstep's environment
        stage_env = envrun.prepare(env, project_dir, Path(shims))
        with subprocess.Popen(  # noqa: S603 - argv built here; stage names are checked against dvc.yaml
            argv, cwd=project_dir, env=stage_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            encoding="utf-8", errors="replace",
        ) as proc:
            for line in proc.stdout or ():
                sys.stderr.write(line)  # the project's output, apart from lockstep's own report on stdout
                tail.append(line.rstrip("\n"))
                del tail[:-15]
            code = proc.wait()
    sys.stderr.flush()
    if code != 0:
        # DVC names the stage that failed; its own last words (the error) follow, without the
        # traceback frames above them
        failed = next((m.group(1) for line in reversed(tail) if (m := re.search(r"failed to reproduce '([^']+)'", line))),
                      stage_names[-1])
        # DVC's own cause follows its "failed to reproduce 'train': " (missing data, a missing file)
        said = [re.sub(r"^.*failed to reproduce '[^']+':?\s*", "", line).strip() for line in tail
                if line.strip() and not line.startswith((" ", "\t", "Traceback"))]
        said = [line for line in said if line]
        last = " | ".join(said[-3:])[-1500:]
        hint = f"{GENERIC_STAGE_HINT}; reproduce it locally with `dvc repro -f -s {failed}`"
        missing = next((m.group(1) for line in reversed(tail) if (m := re.search(r"ModuleNotFoundError: No module named '([\w.]+)'", line))), "")
        if missing:
            hint = (f"the stage imports `{missing}`, which the project's environment does not have; it was installed from "
                    f"{_installed_from(project_dir)}: add the package that provides it there, or point the setup's "
                    "`requirements` input at the file that lists it")
            local = _local_package(Path(project_dir), missing.split(".")[0])
            if local:
                hint = (f"the stage imports `{missing}`, the project's own package ({local}/{missing.split('.')[0]}/), which "
                        "Python does not find from the project's folder: a developer's `pip install -e .` or shell puts "
                        f"{local} on the path, and lockstep installs the project's dependencies, not the project. Add "
                        f"`env: {{PYTHONPATH: {local}}}` to lockstep.yaml (the README's lockstep.yaml section), not a "
                        "requirement")
        absent = next((m.group(1) for line in reversed(tail)
                       # a shell's words, or lockstep/scriptrun.py's for a PDM script's command run without one
                       if (m := re.search(r"(?:\bsh: (?:\d+: )?|: line \d+: |\bpdm run: )([\w.+-]+): (?:command )?not found$", line))), "")
        if absent and not missing:
            hint = (f"the stage's command runs `{absent}`, which is not installed where the stages run: lockstep installs "
                    f"the project's requirements (from {_installed_from(project_dir)}) into an environment of its own, on a "
                    "runner that has none of the developer's machine's tools. A package's command: add the package to "
                    "the requirements. A console script of the project's own package: declare it under "
                    "`[project.scripts]` in pyproject.toml (lockstep runs those from the checkout). Anything else "
                    "(docker images built locally, R, system tools): a step before lockstep's in the workflow installs it")
        unread = next((m.group(1) for line in reversed(tail)
                       if (m := re.search(r"FileNotFoundError: \[Errno 2\] No such file or directory: '([^']+)'", line))), "")
        undeclared = _undeclared_input(project_dir, failed, unread) if unread and not missing else ""
        if undeclared:
            hint = undeclared
        server = next((m.group(1) for line in reversed(tail)
                       if (m := re.search(r"API request to (https?://\S+?)/api/2\.0/mlflow\S* failed", line))), "")
        experiment = any("active experiment ID does not match environment run ID" in line for line in tail)
        if experiment and not missing:
            from .procenv import RUN_ID_VARIABLE

            hint = (f"the stage logs into lockstep's MLflow run ({RUN_ID_VARIABLE}) after choosing an experiment of its own "
                    "(`mlflow.set_experiment`), and MLflow refuses a run of another experiment: set `mlflow.experiment` "
                    "in lockstep.yaml to the code's experiment (lockstep's run is then there), or have the code start a "
                    "run of its own")
        if server and not missing:
            hint = (f"the stage logs to an MLflow server of its own, {server}, which this job cannot reach (a URI set in the "
                    "code or its config, such as `mlflow.set_tracking_uri(...)`). lockstep gives the stages "
                    "MLFLOW_TRACKING_URI (in PR validation a local store, whose runs it forwards into the PR's MLflow "
                    "run when the job has MLflow): have the code use it (MLflow reads it when nothing else is set)")
        if not missing and any(_NEEDS_GPU.search(line) for line in tail):
            hint = ("the stage asks for a GPU (CUDA), and this runner has none: run the workflow on a runner that has one "
                    "(the reusable workflows' `runs-on` input takes its labels as JSON), or let the code fall back to the "
                    "CPU when `torch.cuda.is_available()` is false (a model saved on a GPU loads on a CPU with "
                    "`torch.load(..., map_location='cpu')`)")
        if not missing and any(_WANDB_LOGIN.search(line) for line in tail):
            hint = ("the stage logs to Weights & Biases, which wants an API key and its server, and the stages get no "
                    "credentials in PR validation. lockstep sets `WANDB_MODE=offline` for them (W&B then writes its run to "
                    "a local folder) unless lockstep.yaml's `env:` sets another mode or the code passes `mode=` to "
                    "`wandb.init`: leave the mode to the environment, or set `WANDB_MODE: disabled` in `env:`")
        error = DvcError(f"stage '{failed}' failed (`dvc repro` exited {code}): {last}", hint=hint, file="dvc.yaml")
        error.undeclared = undeclared_output(project_dir, failed, unread) if undeclared else ""
        raise error


# what PyTorch, Lightning and NVIDIA's tools say when the code asks for a GPU the machine does not have
_NEEDS_GPU = re.compile(r"Torch not compiled with CUDA enabled|Found no NVIDIA driver|No CUDA GPUs are available"
                        r"|torch\.cuda\.is_available\(\) is False|CUDA driver version is insufficient"
                        r"|CUDAAccelerator can not run|No supported gpu backend found|NVIDIA-SMI has failed")
# what Weights & Biases says when `wandb.init` runs online with no API key and no terminal to ask for one
_WANDB_LOGIN = re.compile(r"api_key not configured|wandb\.errors(?:\.errors)?\.(?:UsageError|AuthenticationError)")


def undeclared_output(project_dir: str | Path, stage_name: str, path: str) -> str:
    """The cached output of another stage that holds `path` (as the failed stage named it), which
    the stage does not declare: '' when there is none, or it is the stage's own or downstream of it."""
    try:
        repo = open_repo(project_dir)
        stage = _stage(repo, stage_name)
        rel = os.path.relpath(os.path.join(stage.wdir, os.path.normpath(path)), repo.root_dir)
        owner, out = _owner(repo, _owning_output(repo, rel))
    except Exception:  # noqa: BLE001 - no output to fetch
        return ""
    if owner is None or out is None or not out.use_cache or not hasattr(owner, "name") or owner is stage:
        return ""
    if stage.name in upstream_of(repo, [_address(repo, owner)]):
        return ""  # downstream of the failed stage: not something it can read first
    return os.path.relpath(out.fs_path, repo.root_dir).replace(os.sep, "/")


def _local_package(project: Path, top: str) -> str:
    """The folder ('.' or 'src', relative to the project) that holds the project's own package or
    module `top`, or '' when it is none of the project's."""
    for folder in (".", "src"):
        base = project / folder
        if (base / top / "__init__.py").is_file() or (base / f"{top}.py").is_file():
            return folder
    return ""


def _undeclared_input(project_dir: str | Path, stage_name: str, path: str) -> str:
    """A hint when the file a failed stage could not open is (inside) another stage's output that
    the stage does not list in its deps: CI fetches only what a stage declares, where a developer's
    workspace has everything. '' when that is not the case."""
    try:
        repo = open_repo(project_dir)
        stage = _stage(repo, stage_name)
        rel = os.path.relpath(os.path.join(stage.wdir, os.path.normpath(path)), repo.root_dir)
        owner = _owning_output(repo, rel)
        deps = [os.path.normpath(os.path.relpath(dep.fs_path, repo.root_dir)) for dep in stage.deps]
    except Exception:  # noqa: BLE001 - the hint is a courtesy; the failure stands as it is
        return ""
    if not owner or any(owner == dep or owner.startswith(dep + os.sep) for dep in deps):
        return ""
    return (f"the stage reads {rel.replace(os.sep, '/')}, which dvc.yaml does not list in its deps: it is "
            f"(in) the output {owner.replace(os.sep, '/')}, which CI fetches only for a stage that declares it (a "
            f"developer's workspace has every output). Add {owner.replace(os.sep, '/')} to the stage's deps, run `dvc "
            "repro`, and commit dvc.lock")


def _installed_from(project_dir: str | Path) -> str:
    """What the setup action installed the project's environment from (LOCKSTEP_PROJECT_REQUIREMENTS,
    paths relative to the project), for a message."""
    from .projectenv import requirement_files

    named = requirement_files()
    if not named:
        return "no requirements file (none of requirements.txt, src/requirements.txt, uv.lock, pyproject.toml, setup.py, environment.yml was found)" \
            if "LOCKSTEP_PROJECT_REQUIREMENTS" in os.environ else "the project's requirements"
    return ", ".join(os.path.relpath(os.path.join(str(project_dir), name)) for name in named)


def unpushed_producers(repo, stage_names: Sequence[str]) -> list[str]:
    """The pipeline stages to run again before these stages, because these read (directly, or
    through each other) a cached output that dvc.yaml marks `push: false`: `dvc push` never sends
    it, so no remote holds it, and a runner has only what it makes. Their addresses, in run order;
    [] when the stages read no such output. Imports and frozen stages are not run again."""
    from dvc.stage import PipelineStage

    producers = _producers(repo)
    chosen = {_stage(repo, name) for name in stage_names}
    remade: set = set()
    pending = list(chosen)
    while pending:
        stage = pending.pop()
        for dep in stage.deps:
            for _path, (upstream_stage, upstream_out) in _read_outputs(producers, dep.fs_path):
                if upstream_stage in chosen or upstream_stage in remade or not upstream_out.use_cache or upstream_out.can_push:
                    continue
                if isinstance(upstream_stage, PipelineStage) and not getattr(upstream_stage, "frozen", False):
                    remade.add(upstream_stage)
                    pending.append(upstream_stage)
    return [_address(repo, stage) for stage in _pipeline_stages(repo) if stage in remade]


def unpushed_outputs(repo, stage_names: Sequence[str]) -> list[str]:
    """The cached outputs of these stages that dvc.yaml marks `push: false` (paths relative to the project)."""
    return [os.path.relpath(out.fs_path, repo.root_dir).replace(os.sep, "/")
            for name in stage_names for out in _stage(repo, name).outs if out.use_cache and not out.can_push]


def output_hashes(repo, stage_names: Sequence[str]) -> dict[str, str]:
    """The hash dvc.lock records for each cached output of these stages (path relative to the
    project: hash value)."""
    hashes: dict[str, str] = {}
    for name in stage_names:
        for out in _stage(repo, name).outs:
            if out.use_cache and out.hash_info:
                hashes[os.path.relpath(out.fs_path, repo.root_dir).replace(os.sep, "/")] = str(out.hash_info.value)
    return hashes


def dep_outputs(repo, stage_names: Sequence[str]) -> list[str]:
    """Dependencies of these stages that are DVC-tracked outputs of OTHER stages (what to pull)."""
    stages = [_stage(repo, name) for name in stage_names]
    producers = _producers(repo)
    chosen = set(stages)
    targets: list[str] = []
    for stage in stages:
        for dep in stage.deps:
            for path, (upstream_stage, upstream_out) in _read_outputs(producers, dep.fs_path):
                if upstream_stage in chosen or not upstream_out.use_cache:
                    continue
                rel = os.path.relpath(path, repo.root_dir)
                if rel not in targets:
                    targets.append(rel)
    return targets


def code_folders(repo, stage_names: Sequence[str]) -> list[str]:
    """Folders these stages depend on that no stage or `.dvc` file produces (code, in git): DVC
    hashes every file in them, so whatever running the stages leaves there (Python's bytecode)
    would enter dvc.lock. Relative to the project."""
    from dvc.dependency.param import ParamsDependency

    producers = _producers(repo)
    found: list[str] = []
    for name in stage_names:
        for dep in _stage(repo, name).deps:
            if isinstance(dep, ParamsDependency) or _produced(producers, dep.fs_path) or not os.path.isdir(dep.fs_path):
                continue
            rel = os.path.relpath(dep.fs_path, repo.root_dir)
            if rel not in found:
                found.append(rel)
    return found


def git_deps(repo, stage_names: Sequence[str], limit: int = 200) -> list[str]:
    """The files these stages depend on that no stage or `.dvc` file produces (code and params,
    in git), a folder's files included, at most `limit`; relative to the project."""
    producers = _producers(repo)
    found: list[str] = []
    for name in stage_names:
        for dep in _stage(repo, name).deps:
            if not dep.is_in_repo or _produced(producers, dep.fs_path):
                continue
            paths = [dep.fs_path] if os.path.isfile(dep.fs_path) else sorted(
                str(p) for p in Path(dep.fs_path).rglob("*") if p.is_file() and "__pycache__" not in p.parts)
            for path in paths:
                rel = os.path.relpath(path, repo.root_dir)
                if rel not in found and len(found) < limit:
                    found.append(rel)
    return found


def files_dvc_hashes(repo, folder: str) -> list[str]:
    """The files DVC counts in a folder dependency (what `.dvcignore` leaves), relative to the project."""
    root = os.path.join(repo.root_dir, folder)
    return sorted(os.path.relpath(path, repo.root_dir).replace(os.sep, "/")
                  for path in repo.dvcignore.find(repo.fs, root))


def input_paths(repo, stage_names: Sequence[str]) -> tuple[set[str], dict[str, set[str]]]:
    """The git-tracked inputs of these stages: file paths (relative to the project) and, per
    params file, the param keys they read. Used to tell whether new commits on main touched them."""
    from dvc.dependency.param import ParamsDependency

    stages = [_stage(repo, name) for name in stage_names]
    producers = _producers(repo)
    files: set[str] = {os.path.relpath(stage.dvcfile.path, repo.root_dir).replace(os.sep, "/") for stage in stages} or {"dvc.yaml"}
    params: dict[str, set[str]] = {}
    for stage in stages:
        for dep in stage.deps:
            rel = os.path.relpath(dep.fs_path, repo.root_dir)
            if isinstance(dep, ParamsDependency):
                keys = set(_flatten(dep.hash_info.value if dep.hash_info else {}))
                keys |= set(dep.params or [])
                params.setdefault(rel, set()).update(keys or {"*"})
            elif dep.is_in_repo and not _produced(producers, dep.fs_path):  # a URL is data, not a file of the PR's
                files.add(rel)
    return files, params


def metrics_files(repo) -> list[str]:
    files = []
    for stage in _pipeline_stages(repo):
        for out in stage.outs:
            if out.metric:
                files.append(os.path.relpath(out.fs_path, repo.root_dir))
    return files


def _outputs(repo, stage_names: Sequence[str], *, cached: bool) -> list[str]:
    stages = [_stage(repo, name) for name in stage_names]
    return [os.path.relpath(out.fs_path, repo.root_dir) for stage in stages for out in stage.outs if out.use_cache is cached]


def git_outputs(repo, stage_names: Sequence[str]) -> list[str]:
    """Outputs of these stages that DVC does not cache (`cache: false`: git carries them)."""
    return _outputs(repo, stage_names, cached=False)


def persisted_outputs(repo, stage_names: Sequence[str]) -> list[Output]:
    """Outputs with `persist: true` of these stages, as dvc.lock records them (md5 '' when the lock
    has no entry for them yet). DVC leaves such an output in place while its stage re-runs: a
    checkpoint training resumes from, records a collecting stage adds to."""
    found = []
    for name in stage_names:
        stage = _stage(repo, name)
        for out in stage.outs:
            if out.persist:
                found.append(Output(
                    path=os.path.relpath(out.fs_path, repo.root_dir).replace(os.sep, "/"),
                    stage=_address(repo, stage),
                    md5=out.hash_info.value if out.hash_info else "",
                    remote=out.remote,
                    cached=bool(out.use_cache),
                ))
    return found


def all_outputs(repo) -> list[str]:
    """Every output DVC knows in the project (stages' and `dvc add`-ed data), relative to it."""
    return [os.path.relpath(out.fs_path, repo.root_dir).replace(os.sep, "/") for stage in repo.index.stages for out in stage.outs]


def git_tracked_outputs(repo, stage_names: Sequence[str]) -> list[str]:
    """Outputs with `cache: false` (metrics, plots) of these stages: git carries them."""
    return _outputs(repo, stage_names, cached=False)


def cached_outputs(repo, stage_names: Sequence[str]) -> list[str]:
    """Outputs of these stages that DVC caches and pushes."""
    return _outputs(repo, stage_names, cached=True)


def params_files(repo) -> list[str]:
    """The params files the pipeline's stages read (relative to the project), in pipeline order."""
    from dvc.dependency.param import ParamsDependency

    files: list[str] = []
    for stage in _pipeline_stages(repo):
        for dep in stage.deps:
            if isinstance(dep, ParamsDependency):
                rel = os.path.relpath(dep.fs_path, repo.root_dir)
                if rel not in files:
                    files.append(rel)
    return files


def parse_python_params(text: str, source: str) -> Any:
    """A Python params file's values as DVC reads them (`ast.parse` and `ast.literal_eval`: none of
    its code runs). Raises ValueError (DVC's ParseError) for a file that is not valid Python;
    safeload.load_python_params bounds the size first."""
    from dvc.utils.serialize import ParseError, parse_py

    try:
        return parse_py(text, source)
    except ParseError as exc:
        raise ValueError(str(exc)) from None


def params_keys(text: str, name: str) -> dict[str, Any]:
    """A params file's values, flattened and keyed `train.seed` for params.yaml and
    `file.yaml:train.seed` for another file (as lockstep names params everywhere)."""
    from .metrics import parse_file_or_empty

    return {(k if name == "params.yaml" else f"{name}:{k}"): v for k, v in parse_file_or_empty(text, name).items()}


def params_values(repo, project: str | Path) -> dict[str, Any]:
    """The values of every params file the pipeline's stages read, in the workspace (`params_keys`)."""
    params: dict[str, Any] = {}
    for name in params_files(repo):
        path = Path(project) / name
        if path.is_file():
            params.update(params_keys(path.read_text("utf-8", errors="replace"), name))
    return params


def set_params(project_dir: str | Path, assignments: Sequence[str], params_file: str = "params.yaml",
               allowed: Sequence[str] = ()) -> dict[str, Any]:
    """Apply `key.path=value` assignments to the params file, or `file:key.path=value` to another
    one (named as lockstep names its params: `config/train.yaml:train.steps=5`), keeping each file's
    comments and layout (YAML, JSON, TOML or Python, by the file's suffix in any case, as DVC
    chooses; a Python file's values are read back, and one that did not land is an error). Another file must be one of `allowed`: the files the
    pipeline reads as params (never dvc.yaml or code: a dispatch sets values, it does not change
    what runs). Values are read as YAML (`300` is a number, `true` a bool). Returns
    {name: (old, new)}, names as given."""
    import yaml
    from dvc.utils.serialize import MODIFIERS

    from .errors import InputError

    known = {os.path.normpath(file) for file in (params_file, *allowed)}
    by_file: dict[str, list[tuple[str, str, Any]]] = {}
    for assignment in assignments:
        name, sep, raw = assignment.partition("=")
        name = name.strip()
        file, _, key = name.rpartition(":") if ":" in name else ("", "", name)
        if not sep or not key:
            raise InputError(f"set-params: {assignment!r} is not KEY=VALUE", hint="e.g. `train.n_estimators=300`")
        file = file or params_file
        if os.path.isabs(file) or ".." in Path(file).parts or os.path.normpath(file) not in known:
            raise InputError(f"set-params: {file!r} is not a params file of this pipeline",
                             hint=f"name one that a stage reads under `params:` ({', '.join(sorted(known))})")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise InputError(f"set-params: the value of {name} is not valid YAML: {raw!r}") from None
        shell = sorted({ch for text in _strings(value) for ch in text if ch in _SHELL_CHARACTERS})
        if shell:
            # a param can be interpolated into a stage's command (`${train.model}`): a dispatch sets
            # a value, it never adds to what the shell runs
            raise InputError(f"set-params: the value of {name} has characters a shell would interpret: {' '.join(shell)}",
                             hint="set-params takes plain values (numbers, words, dates, paths); change anything else in a reviewed commit")
        by_file.setdefault(file, []).append((name, key, value))
    changes: dict[str, Any] = {}
    for file, items in by_file.items():
        path = Path(project_dir) / file
        if not path.is_file():
            raise InputError(f"set-params: {file} not found in {project_dir}",
                             hint="set-params changes an existing params file; name another as `file:key=value`")
        before = path.read_bytes()
        with MODIFIERS[path.suffix.lower()](str(path)) as data:  # chosen as DVC chooses its reader
            for name, key, value in items:
                node = data
                parts = key.split(".")
                for part in parts[:-1]:
                    if not isinstance(node, dict) or part not in node:
                        raise InputError(f"set-params: {key} does not exist in {file}", hint="only existing params can be set")
                    node = node[part]
                if not isinstance(node, dict) or parts[-1] not in node:
                    raise InputError(f"set-params: {key} does not exist in {file}", hint="only existing params can be set")
                changes[name] = (node[parts[-1]], value)
                node[parts[-1]] = value
        if path.suffix.lower() == ".py":
            _check_written(path, file, before, items)
    return changes


def _check_written(path: Path, file: str, before: bytes, items: list[tuple[str, str, Any]]) -> None:
    """Read the params file back: DVC's writer for a Python params file rewrites ` = <old>` as
    ` = <new>` on the value's line, which leaves a quoted string as it was, saying nothing. A value
    that did not land puts the file back as it was and is an error, not a rebuild with the old value."""
    from .errors import InputError
    from .metrics import parse_file_or_empty

    written = parse_file_or_empty(path.read_text("utf-8", errors="replace"), file)
    unchanged = [name for name, key, value in items if written.get(key, object()) != value]
    if unchanged:
        path.write_bytes(before)
        raise InputError(
            f"set-params: {', '.join(unchanged)} could not be set in {file}: written back, it still reads "
            f"{', '.join(repr(written.get(key)) for name, key, _value in items if name in unchanged)}; {file} is as it was",
            hint="DVC changes a Python params file's numbers and booleans in place, not its strings: change the value in a "
                 "reviewed commit, or keep the param in a YAML, JSON or TOML params file",
        )


_SHELL_CHARACTERS = frozenset(";&|$`<>(){}[]!*?~#'\"\\\n\r")


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for key, inner in value.items() for text in (*_strings(key), *_strings(inner))]
    if isinstance(value, list):
        return [text for inner in value for text in _strings(inner)]
    return []


def params_file_of(name: str, default: str = "params.yaml") -> str:
    """The file of a param named as lockstep names them: `train.steps` or `config/train.yaml:train.steps`."""
    return name.rpartition(":")[0] if ":" in name else default


# --- DVC's Hydra composition (`dvc exp run` composes params.yaml from conf/) ------------------


HYDRA_OUTPUT = "params.yaml"  # where `dvc exp run` writes the composition: DVC's default params file


@dataclass(frozen=True)
class Hydra:
    """DVC's `[hydra]` settings of a project whose params.yaml `dvc exp run` composes."""

    config_dir: str  # relative to the project, as DVC joins it to the project's root
    config_name: str
    refused: str = ""  # why lockstep does not compose it: composing would import the project's code, or read outside it

    def describe(self) -> str:
        return f"{self.config_dir.rstrip('/')}/{self.config_name}.yaml"


def hydra_settings(repo) -> Hydra | None:
    """The project's Hydra composition, when `.dvc/config` enables it (`hydra.enabled`) and a
    stage reads params.yaml (which is what it composes); None otherwise."""
    conf = repo.config.get("hydra", {})
    if not conf.get("enabled") or HYDRA_OUTPUT not in params_files(repo):
        return None
    return hydra_of(Path(repo.root_dir), conf)


def hydra_of(root: Path, conf: Mapping[str, Any]) -> Hydra:
    """The settings as `dvc exp run` reads them (`config_dir` default `conf`, relative to the
    project; `config_name` default `config`), and whether lockstep can compose them as DVC does
    without running any of the project's code. DVC imports a `config_module`, and every module of
    a `hydra_plugins` package under `plugins_path` (the project's root unless set); lockstep does
    neither, and says so instead of composing something else."""
    config_dir = str(conf.get("config_dir") or "conf")
    hydra = Hydra(config_dir, str(conf.get("config_name") or "config"))
    root = root.resolve()
    folder = root / config_dir
    refused = ""
    if conf.get("config_module"):
        refused = (f"`hydra.config_module` ({conf['config_module']!r}) composes from a Python module, and importing it "
                   "runs its code")
    elif (root / str(conf.get("plugins_path") or "") / "hydra_plugins").is_dir():
        refused = ("the project has Hydra plugins (a `hydra_plugins` package where `hydra.plugins_path` points), which "
                   "composing imports: they are its code")
    elif os.path.isabs(config_dir) or not folder.resolve().is_relative_to(root):
        refused = f"`hydra.config_dir` ({config_dir!r}) is outside the project"
    elif not folder.is_dir():
        refused = f"{config_dir}/ does not exist"
    else:
        outside = [str(path.relative_to(folder)) for path in sorted(folder.rglob("*"))
                   if path.is_symlink() and not path.resolve().is_relative_to(root)]
        if outside:
            refused = f"{config_dir}/ has symlinks leading out of the project ({', '.join(outside[:3])})"
    return Hydra(hydra.config_dir, hydra.config_name, refused) if refused else hydra


# Composed in a child: DVC's own `compose_and_dump`, its plugins folder an empty one, in isolated
# mode (no folder of the checkout on sys.path, no PYTHON* variable), so that nothing of the
# project is imported; Hydra's composition reads YAML and never calls a `_target_`.
_COMPOSE = """\
import json, sys
from dvc.utils.hydra import compose_and_dump
args = json.loads(sys.argv[1])
try:
    compose_and_dump(args["output"], args["config_dir"], None, args["config_name"], args["plugins"], args["overrides"])
except Exception as exc:
    sys.exit("lockstep-hydra: " + " ".join(f"{type(exc).__name__}: {exc}".split()))
"""


def compose(root: str | Path, hydra: Hydra, overrides: Sequence[str] = (), *, into: Path | None = None) -> dict[str, Any]:
    """What `dvc exp run` (with `-S` overrides) would write to params.yaml, as data; written to
    `into` too, as DVC writes it, when given. Composed without secrets in its environment
    (`${oc.env:...}` reads only what the project's code may read) and without the project's code
    (see `hydra_of`: a refused composition is an error)."""
    import importlib.util
    import subprocess
    import sys
    import tempfile

    import yaml

    from .procenv import for_untrusted_code

    root = Path(root).resolve()
    if hydra.refused:
        raise DvcError(f"{hydra.describe()}: lockstep does not compose it: {hydra.refused}")
    if importlib.util.find_spec("hydra") is None or importlib.util.find_spec("omegaconf") is None:
        # the setup action installs Hydra only for a project whose .dvc/config has a [hydra] section
        from .errors import InputError

        raise InputError(f"{hydra.describe()}: DVC's Hydra composition is enabled, and Hydra is not installed in lockstep's "
                       "environment (the setup action installs it when the project's .dvc/config has a [hydra] section)",
                       hint="enable it in the committed .dvc/config (`dvc config hydra.enabled true`), not in a global "
                            "or system DVC config, and run the setup action on that checkout",
                       file=".dvc/config")
    with tempfile.TemporaryDirectory(prefix="lockstep-hydra-") as scratch:
        output, plugins = Path(scratch) / HYDRA_OUTPUT, Path(scratch) / "no-plugins"
        plugins.mkdir()
        args = {"output": str(output), "config_dir": str(root / hydra.config_dir), "config_name": hydra.config_name,
                "plugins": str(plugins), "overrides": list(overrides)}
        proc = subprocess.run(  # noqa: S603 - this interpreter, code of this module, arguments as JSON
            [sys.executable, "-I", "-c", _COMPOSE, json.dumps(args)], cwd=root, capture_output=True, text=True,
            env=for_untrusted_code(os.environ), timeout=120, check=False,
        )
        if proc.returncode != 0:
            said = next((line.removeprefix("lockstep-hydra: ") for line in proc.stderr.splitlines()
                         if line.startswith("lockstep-hydra: ")), f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}")[:600]
            raise DvcError(f"{hydra.describe()}: Hydra cannot compose it: {said}",
                           hint="run `dvc exp run` locally: it composes params.yaml the same way, and shows the same error",
                           file=hydra.describe())
        text = output.read_text("utf-8")
        if into is not None:
            into.write_text(text, "utf-8")
    data = yaml.safe_load(text) or {}
    return data if isinstance(data, dict) else {}


def compose_params(project_dir: str | Path, hydra: Hydra, assignments: Sequence[str] = ()) -> dict[str, Any]:
    """Compose params.yaml from the project's Hydra config, as `dvc exp run -S ...` does: the
    assignments (`train.steps=30`, or a config group's option, `train=large`) are Hydra overrides
    of the composition, not edits of the file afterwards. As `set_params`, only existing params
    (or config groups) can be set, to plain values; Hydra reads the value. Returns {name: (old,
    new)}, old as the committed params.yaml has it."""
    import yaml

    from .errors import InputError

    root = Path(project_dir)
    before = compose(root, hydra)
    known = _flatten(before)
    overrides = []
    for assignment in assignments:
        name, sep, raw = assignment.partition("=")
        name = name.strip()
        key = name.split(":", 1)[1] if ":" in name else name
        if not sep or not re.fullmatch(r"[A-Za-z_][\w-]*(?:[./][A-Za-z_0-9][\w-]*)*", key):
            raise InputError(f"set-params: {assignment!r} is not KEY=VALUE",
                             hint="e.g. `train.n_estimators=300`, or a config group's option: `train=large`")
        shell = sorted({ch for ch in raw if ch in _SHELL_CHARACTERS})
        if shell:
            raise InputError(f"set-params: the value of {name} has characters a shell would interpret: {' '.join(shell)}",
                             hint="set-params takes plain values (numbers, words, dates, paths); change anything else in a reviewed commit")
        group = (root / hydra.config_dir / key).is_dir()
        if not group and key not in known and not any(k.startswith(key + ".") for k in known):
            raise InputError(f"set-params: {key} does not exist in what {hydra.describe()} composes",
                             hint="only existing params, or a config group of the Hydra config, can be set")
        overrides.append(f"{key}={raw}")
    path = root / HYDRA_OUTPUT
    try:
        committed = yaml.safe_load(path.read_text("utf-8")) if path.is_file() else {}
    except yaml.YAMLError:
        committed = {}
    after = compose(root, hydra, overrides, into=path)
    return {name.strip(): (_at(committed, key), _at(after, key))
            for name, key in ((a.partition("=")[0], a.partition("=")[0].strip().split(":")[-1]) for a in assignments)}


def _at(data: Any, key: str) -> Any:
    for part in key.replace("/", ".").split("."):
        data = data.get(part) if isinstance(data, dict) else None
    return data


def composition_drift(committed: Mapping[str, Any], composed: Mapping[str, Any]) -> list[Change]:
    """The keys where the committed params.yaml differs from the composition, as data (order and
    formatting aside): `old` the committed value, `new` the composed one."""
    old, new = _flatten(committed), _flatten(composed)
    return [Change("composed", path=HYDRA_OUTPUT, key=key, old=old.get(key, _MISSING), new=new.get(key, _MISSING))
            for key in sorted(set(old) | set(new)) if old.get(key, _MISSING) != new.get(key, _MISSING)]


def stale_composition(repo) -> tuple[Hydra | None, list[Change]]:
    """The project's Hydra settings, and how its committed params.yaml differs from what
    `dvc exp run` composes from them (nothing when lockstep does not compose them: `refused`)."""
    import yaml

    hydra = hydra_settings(repo)
    if hydra is None or hydra.refused:
        return hydra, []
    path = Path(repo.root_dir) / HYDRA_OUTPUT
    try:
        committed = yaml.safe_load(path.read_text("utf-8")) if path.is_file() else {}
    except yaml.YAMLError:
        return hydra, []  # DVC's own check of the params file names the error
    composed = compose(repo.root_dir, hydra)
    return hydra, composition_drift(committed if isinstance(committed, dict) else {}, composed)


# --- what a rebuild changed, from DVC's own diff -----------------------------------------------


@dataclass(frozen=True)
class OutputChange:
    path: str  # the output's path in the project, as dvc.yaml declares it
    change: str  # "added" | "deleted" | "modified" | "renamed"


def changed_outputs(repo, a_rev: str) -> list[OutputChange]:
    """The DVC outputs whose recorded content differs between the locks (and `.dvc` files) of the
    commit `a_rev` and of the workspace: what a rebuild changed. Read from the records, not the
    workspace: outputs a rebuild did not pull are not there, and are no change (`dvc diff` calls
    them deleted). A directory output counts once."""
    def recorded() -> dict[str, str]:
        found = {}
        for stage in repo.index.stages:
            for out in stage.outs:
                path = os.path.relpath(out.fs_path, repo.root_dir).replace(os.sep, "/")
                found[path] = out.hash_info.value if out.hash_info else ""
        return found

    after = recorded()
    try:
        before: dict[str, str] = {}
        for revision in repo.brancher(revs=[a_rev]):
            if revision != "workspace":
                before = recorded()
    except Exception as exc:  # noqa: BLE001 - DVC raises many kinds for an unreadable revision
        raise DvcError(
            f"the outputs recorded at {a_rev[:12]} could not be read: {type(exc).__name__}: {exc}",
            hint="DVC could not compare the rebuilt lock with the commit it started from; nothing was pushed",
        ) from None
    changes = {path: "added" for path in after.keys() - before.keys()}
    changes |= {path: "deleted" for path in before.keys() - after.keys()}
    changes |= {path: "modified" for path in after.keys() & before.keys() if after[path] != before[path]}
    return [OutputChange(path, change) for path, change in sorted(changes.items())]


# --- metrics, read the way `dvc metrics show` reads them ----------------------------------------


@dataclass
class MetricsRead:
    """Metrics of one revision (or the workspace): flat values named as `dvc metrics show` names
    them (`auc.test`), where each file was read from, and why a file could not be read."""

    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # file -> "git" | "workspace" | "DVC ..."
    problems: dict[str, str] = field(default_factory=dict)  # file -> why it was not read
    # file -> why it gave no number (a CSV, a label): read, but nothing in it can be compared or gated
    no_numbers: dict[str, str] = field(default_factory=dict)

    def source_of(self, metric: str) -> str:
        return self._origin.get(metric, "")

    _origin: dict[str, str] = field(default_factory=dict, repr=False)

    def files(self) -> list[str]:
        """The files the values were read from."""
        return sorted(set(self._origin.values()))

    def only(self, files: Sequence[str]) -> MetricsRead:
        """The metrics read from these files (names kept as this read gave them)."""
        keep = set(files)
        return MetricsRead(
            values={name: value for name, value in self.values.items() if self._origin.get(name) in keep},
            sources={name: source for name, source in self.sources.items() if name in keep},
            problems={name: why for name, why in self.problems.items() if name in keep or name == "(all)"},
            no_numbers={name: why for name, why in self.no_numbers.items() if name in keep},
            _origin={name: origin for name, origin in self._origin.items() if origin in keep},
        )


def harmonize(*reads: MetricsRead | None) -> None:
    """Give each metric the same name in every read. A key is named with its file (`file:key`)
    when it is in several files of one read; when one of those files could not be read in another
    read (an output not pushed), the key lost its file there and a gate on `file:key` said the
    metric was missing. Names are changed in place to the qualified form any read gave."""
    present = [read for read in reads if read is not None]
    qualified: dict[tuple[str, str], str] = {}
    for read in present:
        for label, origin in read._origin.items():
            if label.startswith(origin + ":"):
                qualified[(origin, label[len(origin) + 1:])] = label
    for read in present:
        for label in list(read.values):
            origin = read._origin.get(label, "")
            target = qualified.get((origin, label))
            if target and target != label and target not in read.values:
                read.values[target] = read.values.pop(label)
                read._origin[target] = read._origin.pop(label)


def clear_named_metrics(repo, stage_names: Sequence[str]) -> list[str]:
    """Remove the metrics files named after these stages (`named_metrics`) before they run, as DVC
    removes a stage's declared outputs: a stage that no longer writes one leaves it missing, rather
    than its committed copy to be read as recomputed. Returns the files removed."""
    root = Path(repo.root_dir)
    removed = []
    for name, address in named_metrics(repo).items():
        path = root / name
        if address in stage_names and path.is_file() and not path.is_symlink() and path.resolve().is_relative_to(root.resolve()):
            path.unlink()
            removed.append(name)
    return removed


def remove_persisted(repo, stage_names: Sequence[str]) -> list[str]:
    """Remove the `persist: true` outputs of these stages that the workspace holds (in a fresh
    checkout, those git carries) before they run, as DVC removes an output that does not persist:
    the stage starts from its declared inputs only. Returns the outputs removed."""
    import shutil

    root = Path(repo.root_dir).resolve()
    removed = []
    for out in persisted_outputs(repo, stage_names):
        path = root / out.path
        if not path.parent.resolve().is_relative_to(root):
            continue
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.is_dir():
            shutil.rmtree(path)
        else:
            continue
        removed.append(out.path)
    return removed


def metrics_written_by(repo, stage_names: Sequence[str]) -> list[str]:
    """The metrics files these stages write: their own `metrics:`, files of top-level `metrics:`
    inside their outputs (dvclive's folder), and those named after them (`named_metrics`). Not the
    metrics files other stages write, nor those git carries that no stage declares (a training
    run's dvclive folder committed as it is)."""
    outputs = [path.replace(os.sep, "/").rstrip("/")
               for path in [*_outputs(repo, stage_names, cached=True), *_outputs(repo, stage_names, cached=False)]]
    named = {name for name, address in named_metrics(repo).items() if address in stage_names}
    return [name for name in all_metrics_files(repo)
            if name in named or any(name == out or name.startswith(out + "/") for out in outputs)]


def read_metrics(repo, *, rev: str | None = None, files: Sequence[str] | None = None) -> MetricsRead:
    """Every metric DVC knows (stage `metrics:`, top-level `metrics:`, files inside cached outputs
    such as dvclive's folder), from the workspace or from a git revision. For a revision, a file
    that git does not hold is read through DVC: from the cache, else from the remote."""
    from . import gitrepo

    root = Path(repo.root_dir)
    targets = [str(root / name) for name in files] if files else None
    for name in files or ():
        _inside_project(root, name)
    # DVC opens the workspace's metrics files even when asked for a revision only
    _refuse_links_outside(root, list(files or ()) or all_metrics_files(repo))
    shown: dict[str, Any]
    result: dict[str, Any]
    try:
        if rev is None:
            shown = repo.metrics.show(targets=targets, hide_workspace=False)
            result = shown.get("workspace") or next(iter(shown.values()), {})
        else:
            shown = repo.metrics.show(targets=targets, revs=[rev], hide_workspace=True)
            result = shown.get(rev) or {k: v for k, v in shown.items() if k != "workspace"}.get(rev, {})
            if not result:
                result = next((v for k, v in shown.items() if k != "workspace"), {})
    except Exception as exc:  # noqa: BLE001 - DVC reports a broken revision in many ways
        return MetricsRead(problems={"(all)": f"{type(exc).__name__}: {exc}"})
    read = MetricsRead()
    if "error" in result and not result.get("data"):
        read.problems["(all)"] = _short_error(result["error"])
        return read
    prefix = gitrepo.prefix_of(root) if rev is not None else ""
    per_file: dict[str, dict[str, Any]] = {}
    for name, entry in sorted((result.get("data") or {}).items()):
        name = name.replace(os.sep, "/")
        if "error" in entry:
            read.problems[name] = _unreadable_metrics(repo, name, entry["error"], rev)
            continue
        per_file[name] = _file_values(name, entry.get("data"))
        if not any(as_number(value) is not None for value in per_file[name].values()):
            read.no_numbers[name] = _no_numbers(name, entry.get("data"))
        if rev is None:
            read.sources[name] = "workspace"
        elif gitrepo.show(root, rev, prefix + name) is not None:
            read.sources[name] = f"git ({rev[:12]})"
        else:
            owner = _owning_output(repo, name)
            read.sources[name] = f"DVC cache or remote (output {owner} in dvc.lock at {rev[:12]})" if owner else "DVC"
    seen: dict[str, int] = {}
    for values in per_file.values():
        for key in values:
            seen[key] = seen.get(key, 0) + 1
    for name, values in per_file.items():
        for key, value in values.items():
            label = key if seen[key] == 1 else f"{name}:{key}"
            read.values[label] = value
            read._origin[label] = name
    return read


def _file_values(name: str, data: Any) -> dict[str, Any]:
    """A metrics file's values as `dvc metrics show` names them: nested keys with dots, and a file
    that holds one value (`metrics.txt` with `0.93`; a CSV, which DVC reads as YAML, is one string)
    by the file's own path, when it is a number (a text is no metric: a CSV, or the text of a
    symbolic link that git carries, which must not reach the report)."""
    if isinstance(data, (int, float)) and not isinstance(data, bool):
        return {name: data}
    return _flatten(data if isinstance(data, dict) else {})


def _no_numbers(name: str, data: Any) -> str:
    """Why a metrics file gave no number, and what to write instead."""
    fix = "write the metrics as JSON or YAML, `name: value` (e.g. `{\"accuracy\": 0.93}`), as `dvc metrics show` reads them"
    if isinstance(data, str) and ("," in data or "\t" in data or name.endswith((".csv", ".tsv"))):
        return (f"{name} holds no number DVC can read: DVC reads a metrics file as JSON, YAML or TOML, and reads "
                f"this one (a CSV or TSV?) as the single text {data[:60]!r}, so nothing in it is compared or gated; {fix}")
    return f"{name} holds no numeric metric ({'empty' if not data else type(data).__name__}), so nothing in it is compared or gated; {fix}"


def _inside_project(root: Path, name: str) -> None:
    from .errors import ConfigError

    candidate = (root / name)
    if os.path.isabs(name) or ".." in Path(name).parts or not candidate.resolve().is_relative_to(root.resolve()):
        raise ConfigError(
            f"metrics file {name!r} is outside the DVC project",
            hint="list metrics files by their path inside the project (no absolute paths, no `..`, no symlinks leading out)",
        )


def _refuse_links_outside(root: Path, names: Sequence[str]) -> None:
    """A metrics file (or a file in a metrics folder) of the workspace that is a symlink leading
    outside the project is refused by name before DVC opens anything."""
    top = root.resolve()
    for name in names:
        path = root / name
        items = [path]
        if path.is_dir() and path.resolve().is_relative_to(top):
            items += sorted(path.rglob("*"))
        for item in items:
            if not item.resolve().is_relative_to(top):
                shown = os.path.relpath(item, root).replace(os.sep, "/")
                raise DvcError(
                    f"metrics file {shown!r} is a symbolic link leading outside the DVC project: it was not read",
                    hint="commit the metrics file itself (not a link), written by the stage inside the project",
                    file=shown,
                )


def _owning_output(repo, name: str) -> str:
    target = os.path.normpath(name)
    for stage in repo.index.stages:
        for out in stage.outs:
            rel = os.path.normpath(os.path.relpath(out.fs_path, repo.root_dir))
            if target == rel or target.startswith(rel + os.sep):
                return rel
    return ""


def _short_error(exc: Any) -> str:
    return f"{type(exc).__name__}: {exc}" if isinstance(exc, BaseException) else str(exc)


def _unreadable_metrics(repo, name: str, error: Any, rev: str | None) -> str:
    """Why a metrics file could not be read, with the cause a person can fix."""
    from . import gitrepo

    root = Path(repo.root_dir)
    owned = output_owner(repo, name)
    if owned is not None and not owned.cached:
        ignored = gitrepo.ignored_by(root, name)
        if ignored:
            return (
                f"{name} is not in git: {ignored} ignores it, and the output is declared `cache: false`, so DVC "
                "does not keep it either; lockstep uses the values it recomputes. To compare committed values, "
                f"commit the file (add `!{name}` to that .gitignore) or let DVC cache it (remove `cache: false`)"
            )
        return f"{name} is not in git at {rev[:12] if rev else 'this commit'} (declared `cache: false`, so DVC does not keep it)"
    return f"{name} could not be read: {_short_error(error)}"


def all_metrics_files(repo) -> list[str]:
    """Every metrics file DVC knows: stage `metrics:` and top-level `metrics:` (folders expanded)."""
    return list(dict.fromkeys([*metrics_files(repo), *top_level_metrics_files(repo)]))


def top_level_metrics_files(repo) -> list[str]:
    """The files dvc.yaml's top-level `metrics:` names, relative to the project."""
    files = []
    for dvcfile, entries in _top_level_metrics(repo).items():
        wdir = os.path.relpath(os.path.dirname(dvcfile), repo.root_dir)
        for entry in entries:
            files.append(os.path.normpath(os.path.join(wdir, entry)).replace(os.sep, "/"))
    return files


def top_level_files(repo) -> list[str]:
    """The files and folders dvc.yaml's top-level `plots:` and `params:` name (DVCLive writes its
    plots and params there), relative to the project. Read leniently: they describe what to show,
    and a form this DVC keeps differently gives none."""
    found: list[str] = []
    for attribute in ("_plots", "_params"):
        declared = getattr(repo.index, attribute, None)
        for dvcfile, entries in (declared.items() if isinstance(declared, dict) else ()):
            wdir = os.path.relpath(os.path.dirname(dvcfile), repo.root_dir)
            names: list[str] = []
            for entry in entries if isinstance(entries, list) else ():
                if isinstance(entry, str):
                    names.append(entry)
                elif isinstance(entry, dict):  # {path: {x: ...}} or {plot id: {y: {file: column}}}
                    for key, spec in entry.items():
                        names.append(str(key))
                        for axis in ("x", "y"):
                            value = spec.get(axis) if isinstance(spec, dict) else None
                            names += [str(file) for file in value] if isinstance(value, dict) else []
            found += [os.path.normpath(os.path.join(wdir, name)).replace(os.sep, "/") for name in names]
    return list(dict.fromkeys(found))


def _top_level_metrics(repo) -> dict[str, list[str]]:
    """The top-level `metrics:` of each dvc.yaml, {dvc.yaml path: [entries]}. DVC keeps them in
    the private `Index._metrics` and offers no public reader: read strictly, so that a DVC that
    changes it stops lockstep with this message instead of silently dropping metrics files
    (tests/test_boundaries.py guards it against the installed DVC)."""
    found = getattr(repo.index, "_metrics", _MISSING)
    entries = found.values() if isinstance(found, dict) else ()
    if not isinstance(found, dict) or not all(isinstance(e, list) and all(isinstance(i, str) for i in e) for e in entries):
        raise DvcError(
            f"this DVC ({_dvc_version()}) keeps the top-level `metrics:` of dvc.yaml in a form lockstep does not know, "
            "so lockstep cannot tell which metrics files to check",
            hint="install the DVC version lockstep was released with (constraints.txt), or report the DVC version in an issue",
        )
    return found


def _dvc_version() -> str:
    from dvc import __version__ as version

    return f"dvc {version}"


def output_digest(repo, path: str) -> str:
    """The hash dvc.lock records for the output at `path` ('' when none)."""
    owned = output_owner(repo, path)
    return owned.md5 if owned is not None else ""


def upstream_of(repo, names: Iterable[str]) -> set[str]:
    """The named stages and every stage they depend on (their names)."""
    import networkx as nx

    graph = repo.index.graph
    chosen = {_stage(repo, name) for name in names}
    closure = set(chosen)
    for stage in chosen:
        closure |= set(nx.descendants(graph, stage))  # edges point to dependencies
    return {stage.name for stage in closure if hasattr(stage, "name")}


def evaluation_signature(repo, stage_names: Sequence[str]) -> dict[str, Any]:
    """What defines how these stages evaluate, apart from the model and the data they read: each
    stage's command, the values of its params, the content of its code dependencies (deps that no
    stage produces), and the metrics files DVC knows. Two checkouts evaluate alike when equal."""
    from dvc.dependency.param import ParamsDependency

    producers = _producers(repo)
    signature: dict[str, Any] = {"metrics": sorted(all_metrics_files(repo))}
    for name in stage_names:
        stage = _stage(repo, name)
        entry: dict[str, Any] = {"cmd": stage.cmd, "params": {}, "code": {}}
        for dep in stage.deps:
            rel = _dep_name(repo, dep).replace(os.sep, "/")
            if isinstance(dep, ParamsDependency):
                try:
                    entry["params"][rel] = _flatten(dep.read_params() or {})
                except Exception as exc:  # noqa: BLE001 - unreadable params differ from readable ones
                    entry["params"][rel] = f"unreadable: {exc}"
            elif not dep.is_in_repo:
                entry["code"][rel] = "outside the repository"  # data at a URL: the same on both sides
            elif not _produced(producers, dep.fs_path):
                entry["code"][rel] = _content_digest(Path(dep.fs_path))
        signature[name] = entry
    return signature


def _content_digest(path: Path) -> str:
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    if path.is_dir():
        digest = hashlib.sha256()
        for item in sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            digest.update(item.relative_to(path).as_posix().encode("utf-8", "surrogateescape") + b"\0")
            digest.update(hashlib.sha256(item.read_bytes()).digest())
        return digest.hexdigest()
    return "(missing)"


def evaluation_inputs(repo, stage_names: Sequence[str], model_path: str | None = None) -> list[str]:
    """Paths the stages read that other stages produce (the model and the data), relative to the
    project; with the model at `model_path` too when they read it without declaring it
    (`unlinked_model`)."""
    inputs = dep_outputs(repo, stage_names)
    if model_path and unlinked_model(repo, stage_names, model_path):
        inputs.append(os.path.normpath(model_path))
    return inputs


def _producer_of(repo, path: str) -> tuple[Any, Any] | None:
    """DVC's (stage, out) whose output is `path` (relative to the project) or a folder holding it."""
    producers = _producers(repo)
    full = os.path.normpath(os.path.join(repo.root_dir, path))
    return producers.get(full) or _holder(producers, full)


def recorded_output(repo, path: str) -> tuple[str, str]:
    """The output that holds `path` (relative to the project: the output itself, or a folder output
    it lies in) and the md5 its dvc.lock records, as (output path, md5); ('', '') when no stage
    or `.dvc` file outputs it."""
    producer = _producer_of(repo, path)
    if producer is None:
        return "", ""
    out = producer[1]
    return (os.path.relpath(out.fs_path, repo.root_dir).replace(os.sep, "/"),
            out.hash_info.value if out.hash_info and out.hash_info.value else "")


def unlinked_model(repo, stage_names: Sequence[str], model_path: str) -> bool:
    """Whether these evaluation stages evaluate the model at `model_path` (a cached output of
    another stage, or `dvc add`-ed) without listing it, or a folder that holds it, among their deps:
    then they are not downstream of its training in DVC's graph, and `dvc repro` does not re-run
    them when the model changes. lockstep still pulls, scans and re-evaluates the model for them."""
    if not stage_names:
        return False
    path = os.path.normpath(os.path.join(repo.root_dir, model_path))
    producer = _producer_of(repo, model_path)
    if producer is None or not producer[1].use_cache:
        return False
    stages = {_stage(repo, name) for name in stage_names}
    if producer[0] in stages:
        return False  # a stage that trains and evaluates
    for stage in stages:
        for dep in stage.deps:
            if dep.fs_path == path or _inside(path, dep.fs_path) or _inside(dep.fs_path, path):
                return False
    return True


def model_artifacts(repo) -> list[tuple[str, str]]:
    """The models dvc.yaml files declare under `artifacts:` (`type: model`), as (name, path relative
    to the project), in file order; none when DVC cannot read them."""
    try:
        declared = repo.artifacts.read()
    except Exception:  # noqa: BLE001 - an unreadable artifacts section declares nothing lockstep needs
        return []
    found = []
    for dvcfile, artifacts in declared.items():
        folder = os.path.dirname(str(dvcfile))
        for name, artifact in (artifacts or {}).items():
            if getattr(artifact, "type", None) == "model" and getattr(artifact, "path", None):
                found.append((str(name), os.path.normpath(os.path.join(folder, artifact.path)).replace(os.sep, "/")))
    return found


def evaluation_stages(repo, configured: Sequence[str] | None = None, model_path: str | None = None) -> list[str]:
    """The evaluation stages (addresses): those lockstep.yaml names (`evaluation.stages`), else
    those that write a metrics file DVC knows and evaluate the model (`metrics_stages`); [] when
    there are none."""
    if configured:
        return [_address(repo, _stage(repo, name)) for name in configured]
    return metrics_stages(repo, model_path)


def metrics_stages(repo, model_path: str | None = None) -> list[str]:
    """Stages that write a metrics file DVC knows and evaluate the model (their addresses), in
    pipeline order: those whose outputs hold one, else those a git-carried metrics file is named
    after (`named_metrics`); without the training side's (`training_metrics_stages`)."""
    owners = metrics_owners(repo)
    training = training_metrics_stages(repo, owners, model_path)
    return [address for address in owners if address not in training]


def training_metrics_stages(repo, owners: Sequence[str], model_path: str | None = None) -> list[str]:
    """Of these metrics stages, those whose metrics are the training run's own (a training time,
    a training loss, a data stage's row counts): the model's stage and the stages upstream of it
    when `model_path` is a stage's output, else the stages upstream of another of them. Re-running
    them in CI would retrain the model (and a wall-clock metric never agrees). None when that would
    leave no stage: one stage that trains and evaluates is its own evaluation."""
    owner = output_owner(repo, model_path) if model_path else None
    if owner is not None and owner.stage:
        upstream = upstream_of(repo, [owner.stage])
        training = [address for address in owners if _stage(repo, address).name in upstream]
    else:
        training = [address for address in owners
                    if any(other != address and _stage(repo, address).name in upstream_of(repo, [other]) for other in owners)]
    return training if len(training) < len(owners) else []


# dvclive's default layout (`Live()`): `dvclive/metrics.json` (its `Live.metrics_file`, `{dir}/metrics.json`),
# beside `params.yaml` and `plots/metrics/`; `Live("eval")` writes the same files under `eval/`
DVCLIVE_DIR = "dvclive"
DVCLIVE_METRICS = "metrics.json"


def undeclared_metrics(repo) -> tuple[str, list[str]]:
    """When dvc.yaml declares no metrics: the most downstream stage that reads another stage's
    output (the model) and writes JSON or YAML outputs holding numbers (`eval/metrics.json` under
    `outs:`), or a folder output holding dvclive's `metrics.json` (`outs: [dvclive]`), as
    (address, files relative to the project); else dvclive's default `dvclive/metrics.json`,
    written by a stage that does not declare it, with that stage; ('', []) when there is none.
    Read from the workspace, after the developer's `dvc repro` (a folder output's file also from
    the `.dir` listing dvc.lock records, when the workspace does not hold it)."""
    root = Path(repo.root_dir)
    stages = _pipeline_stages(repo)
    readers = [stage for stage in stages if dep_outputs(repo, [_address(repo, stage)])]
    for stage in reversed(readers):
        files = []
        for out in stage.outs:
            path = Path(out.fs_path)
            if path.suffix.lower() in (".json", ".yaml", ".yml") and path.is_file() and _holds_numbers(path):
                files.append(os.path.relpath(path, root).replace(os.sep, "/"))
            elif _folder_holds_metrics(repo, out):
                files.append(os.path.relpath(path / DVCLIVE_METRICS, root).replace(os.sep, "/"))
        if files:
            return _address(repo, stage), files
    default = root / DVCLIVE_DIR / DVCLIVE_METRICS
    producers = _producers(repo)
    owner = producers.get(str(default)) or _holder(producers, str(default))
    if owner is not None:  # an output of a stage that reads no other's (the one stage there is)
        writer = owner[0] if owner[0] in stages else None  # a `dvc add`-ed folder: no stage writes it
        found = ((default.is_file() and _holds_numbers(default))
                 or (Path(owner[1].fs_path) == default.parent and _folder_holds_metrics(repo, owner[1])))
    else:  # no stage declares it: the stage that reads the model writes it (or the one stage there is)
        writer = readers[-1] if readers else stages[0] if len(stages) == 1 else None
        found = default.is_file() and _holds_numbers(default)
    if writer is not None and found:
        return _address(repo, writer), [f"{DVCLIVE_DIR}/{DVCLIVE_METRICS}"]
    return "", []


def _holds_numbers(path: Path) -> bool:
    from .metrics import parse_file_or_empty

    values = parse_file_or_empty(path.read_text("utf-8", errors="replace"), path.name)
    return any(as_number(value) is not None for value in values.values())


def _folder_holds_metrics(repo, out) -> bool:
    """Whether a folder output holds dvclive's `metrics.json` with numbers in the workspace, or,
    when the workspace does not hold the folder, in the listing dvc.lock records for it."""
    path = Path(out.fs_path)
    if path.is_dir():
        return (path / DVCLIVE_METRICS).is_file() and _holds_numbers(path / DVCLIVE_METRICS)
    if not (out.hash_info and out.hash_info.isdir and out.hash_info.name == "md5"):
        return False
    try:
        return any(entry["relpath"] == DVCLIVE_METRICS for entry in _entries(repo, out))
    except DvcError:  # the listing is in neither the cache nor the remote: nothing to tell from
        return False


def metrics_owners(repo) -> list[str]:
    """Every stage that writes a metrics file DVC knows, the training side's included."""
    owners: list[str] = []
    files = all_metrics_files(repo)
    for stage in _pipeline_stages(repo):
        for out in stage.outs:
            rel = os.path.normpath(os.path.relpath(out.fs_path, repo.root_dir))
            address = _address(repo, stage)
            if address not in owners and (out.metric or any(os.path.normpath(f) == rel or os.path.normpath(f).startswith(rel + os.sep) for f in files)):
                owners.append(address)
    return owners or list(dict.fromkeys(named_metrics(repo).values()))


def named_metrics(repo) -> dict[str, str]:
    """When no stage outputs a metrics file: the metrics files named after the stage that writes
    them, file -> stage address. DVCLive in a stage writes `Live("results/<stage>")` and names the
    files in dvc.yaml's top-level `metrics:` (or a dvc.yaml of its own there), and git carries
    them: DVC's experiments example keeps `results/train/metrics.json` and
    `results/evaluate/metrics.json`, output by no stage. A file is named after a stage when a
    folder of its path is the stage's name; of the stages found, those upstream of another found
    one (training, before the evaluation that reads its model) are left out: their metrics are
    the run's own, as committed. Empty when some stage outputs a metrics file."""
    files = all_metrics_files(repo)
    stages = _pipeline_stages(repo)
    for stage in stages:
        for out in stage.outs:
            rel = os.path.normpath(os.path.relpath(out.fs_path, repo.root_dir))
            if out.metric or any(os.path.normpath(f) == rel or os.path.normpath(f).startswith(rel + os.sep) for f in files):
                return {}
    found: dict[str, str] = {}
    for name in files:
        folders = Path(name).parts[:-1]
        stage = next((s for s in stages if s.name in folders or s.name.split("@")[0] in folders), None)
        if stage is not None:
            found[name] = _address(repo, stage)
    chosen = set(found.values())
    upstream = {address for address in chosen
                if any(other != address and _stage(repo, address).name in upstream_of(repo, [other]) for other in chosen)}
    return {name: address for name, address in found.items() if address not in upstream}


# --- plots and data, base vs PR (the reviewer's view) --------------------------------------------


@dataclass
class PlotRead:
    """One plot DVC knows (top-level `plots:`, stage `plots:`, dvclive's), read at two revisions.

    `rows` are DVC's own datapoints for a data plot, each with the fields `x` and `y` name and the
    file and field it came from; `images` are (file, bytes) for an image plot. Everything here
    comes from the repository: it is untrusted."""

    id: str
    kind: str  # "vega" | "image"
    template: str = ""
    x: str = ""
    y: str = ""
    x_label: str = ""
    y_label: str = ""
    base_rows: list[dict] = field(default_factory=list)
    pr_rows: list[dict] = field(default_factory=list)
    base_images: list[tuple[str, bytes]] = field(default_factory=list)
    pr_images: list[tuple[str, bytes]] = field(default_factory=list)
    pr_from: str = "workspace"  # "workspace" (after re-evaluation) or "HEAD" (committed, not in the workspace)
    errors: list[str] = field(default_factory=list)


def read_plots(repo, base_rev: str | None) -> list[PlotRead]:
    """Every plot DVC knows, for the base commit and the PR: the workspace after re-evaluation,
    or the committed revision (through DVC's cache or remote) for a plot the workspace lacks
    (outputs of stages that were not re-run and not pulled). Read with `repo.plots.show` and
    matched to DVC's own renderers, as `dvc plots diff` does."""
    import base64

    from dvc.render.match import match_defs_renderers

    revs = ([base_rev] if base_rev else []) + ["HEAD", "workspace"]
    try:
        shown = repo.plots.show(revs=revs, onerror=None)
    except Exception as exc:  # noqa: BLE001 - DVC reports broken plot definitions in many ways
        raise DvcError(f"the plots could not be read: {_short_error(exc)}", hint="run `dvc plots diff` locally to see the same error") from None
    keys = {rev: _rev_key(shown, rev) for rev in revs}
    try:
        matched = match_defs_renderers(data=shown, out=None, templates_dir=repo.plots.templates_dir)
    except Exception as exc:  # noqa: BLE001
        raise DvcError(f"the plots could not be matched to templates: {_short_error(exc)}",
                       hint="run `dvc plots diff` locally to see the same error") from None
    plots = []
    for renderer, source_errors, definition_errors in matched:
        props = getattr(renderer, "properties", {}) or {}
        read = PlotRead(
            id=str(renderer.name),
            kind="image" if renderer.TYPE == "image" else "vega",
            template=str(props.get("template") or ""),
            x=str(props.get("x") or ""),
            y=str(props.get("y") or ""),
            x_label=str(props.get("x_label") or props.get("x") or ""),
            y_label=str(props.get("y_label") or props.get("y") or ""),
        )
        by_rev: dict[str, list[dict]] = {}
        for point in renderer.datapoints:
            by_rev.setdefault(str(point.get("rev")), []).append(point)
        pr_rev = keys["workspace"] if by_rev.get(keys["workspace"]) else keys["HEAD"]
        read.pr_from = "workspace" if pr_rev == keys["workspace"] else "HEAD"
        base_points = by_rev.get(keys[base_rev], []) if base_rev else []
        pr_points = by_rev.get(pr_rev, [])
        if read.kind == "image":
            read.base_images = [(str(p.get("filename", "")), _image_bytes(p.get("src", ""), base64)) for p in base_points]
            read.pr_images = [(str(p.get("filename", "")), _image_bytes(p.get("src", ""), base64)) for p in pr_points]
        else:
            read.base_rows = [{k: v for k, v in p.items() if k != "rev"} for p in base_points]
            read.pr_rows = [{k: v for k, v in p.items() if k != "rev"} for p in pr_points]
        for rev, errors in source_errors.items():
            if rev in (keys.get(base_rev or ""), pr_rev):
                side = "PR" if rev == pr_rev else "base"
                read.errors += [f"{source} ({side}): {_short_error(error)}" for source, error in errors.items()]
        for rev, error in definition_errors.items():
            if rev in (keys.get(base_rev or ""), pr_rev):
                read.errors.append(f"{'PR' if rev == pr_rev else 'base'}: {_short_error(error)}")
        plots.append(read)
    return plots


def _rev_key(shown: Mapping[str, Any], rev: str) -> str:
    """The key `plots.show` gave a revision (it may shorten or keep it)."""
    if rev in shown:
        return rev
    return next((key for key in shown if key != "workspace" and (rev.startswith(key) or key.startswith(rev))), rev)


def _image_bytes(src: Any, base64) -> bytes:
    text = str(src or "")
    if "," in text and text.startswith("data:"):
        try:
            return base64.b64decode(text.split(",", 1)[1])
        except ValueError:
            return b""
    return b""


@dataclass
class DataChange:
    """One DVC-tracked output (data or model) that differs between two revisions."""

    path: str
    change: str  # "added" | "modified" | "deleted"
    is_dir: bool = False
    base_size: int | None = None
    pr_size: int | None = None
    base_files: int | None = None
    pr_files: int | None = None
    files_added: int = 0  # inside a directory output
    files_modified: int = 0
    files_deleted: int = 0


def data_diff(repo, base_rev: str, head_rev: str = "HEAD") -> list[DataChange]:
    """What changed in DVC-tracked outputs (cached data and models, `dvc add`-ed or produced by
    stages) between two revisions, from `dvc diff`, with sizes and file counts from the
    metadata dvc.lock and .dvc files record."""
    try:
        found = repo.diff(base_rev, head_rev)
    except Exception as exc:  # noqa: BLE001 - a revision DVC cannot read, a missing .dir object
        raise DvcError(f"`dvc diff` of {base_rev[:12]}..{head_rev[:12]} failed: {_short_error(exc)}",
                       hint=f"run `dvc diff {base_rev[:12]} {head_rev}` locally to see the same error") from None
    meta = {}
    try:
        for rev in repo.brancher(revs=[base_rev, head_rev]):
            if rev == "workspace":
                continue
            side = "base" if rev == base_rev or base_rev.startswith(rev) else "pr"
            for out in repo.index.outs:
                rel = os.path.relpath(out.fs_path, repo.root_dir).replace(os.sep, "/")
                meta[(side, rel)] = (out.meta.size, out.meta.nfiles, bool(out.meta.isdir))
    except Exception:  # noqa: BLE001,S110 - sizes are a courtesy; the diff itself stands
        pass
    changes: dict[str, DataChange] = {}
    tops = sorted({key[1] for key in meta}, key=len, reverse=True)

    def owner(path: str) -> str:
        path = path.rstrip("/")
        return next((top for top in tops if path == top or path.startswith(top + "/")), path)

    for kind in ("added", "modified", "deleted"):
        for entry in found.get(kind, []):
            path = str(entry.get("path", "")).replace(os.sep, "/")
            top = owner(path)
            if path.rstrip("/") == top:
                item = changes.setdefault(top, DataChange(top, kind))
                item.change = kind
                item.is_dir = item.is_dir or path.endswith("/")
            else:
                item = changes.setdefault(top, DataChange(top, "modified", is_dir=True))
                setattr(item, f"files_{kind}", getattr(item, f"files_{kind}") + 1)
    for entry in found.get("renamed", []):
        old = entry.get("path", {}).get("old", "")
        new = entry.get("path", {}).get("new", "")
        top = owner(str(new))
        item = changes.setdefault(top, DataChange(top, "modified", is_dir=True))
        item.files_added += 1
        if owner(str(old)) == top:
            item.files_deleted += 1
    for item in changes.values():
        base = meta.get(("base", item.path))
        head = meta.get(("pr", item.path))
        if base:
            item.base_size, item.base_files = base[0], base[1]
            item.is_dir = item.is_dir or base[2]
        if head:
            item.pr_size, item.pr_files = head[0], head[1]
            item.is_dir = item.is_dir or head[2]
    return sorted(changes.values(), key=lambda c: c.path)


def stage_inputs(repo, stage_names: Sequence[str]) -> tuple[dict[str, str], dict[str, Any]]:
    """What these stages read, as dvc.lock records it (for the model card): each file or folder
    dependency with its digest (`md5:<hex>`, a folder's ends in `.dir`), and the values of the params
    they read (named `section.key` for params.yaml, `file.yaml:section.key` for other files)."""
    from dvc.dependency.param import ParamsDependency

    deps: dict[str, str] = {}
    params: dict[str, Any] = {}
    for stage in (_stage(repo, name) for name in stage_names):
        for dep in stage.deps:
            rel = _dep_name(repo, dep).replace(os.sep, "/")
            info = dep.hash_info
            if isinstance(dep, ParamsDependency):
                for key, value in _flatten(info.value if info and isinstance(info.value, dict) else {}).items():
                    params[key if rel == "params.yaml" else f"{rel}:{key}"] = value
            else:
                deps[rel] = f"{info.name}:{info.value}" if info and info.value else "(not in dvc.lock)"
    return deps, params
