#!/usr/bin/env bash
# Install lockstep (with DVC and the extras the project's remotes need) into its own environment,
# and the project's stage requirements into another, so neither can break the other. Called by
# actions/setup/action.yml:
#   setup.sh plan      which Python, which requirement files, which DVC extras (to GITHUB_OUTPUT)
#   setup.sh begin     the bytecode cache's key, restore prefix and folder (to GITHUB_OUTPUT), and
#                      start installing both environments (the cache's restore then overlaps them)
#   setup.sh install   finish lockstep's environment (unless `begin` did, start both installs first)
#   setup.sh project   install only the project's environment (into SETUP_ENV_DIR when set: lockstep
#                      validate installs the base commit's there, for the base's evaluation)
#   setup.sh tool-background, project-background   what `begin` starts for each environment
# lockstep runs from the action's own source (a .pth file), so nothing is built. The two installs
# run side by side; with SETUP_BACKGROUND=true the project's goes on after this step, and
# `lockstep validate` / `lockstep rebuild` wait for it (LOCKSTEP_PROJECT_ENV_STATUS) before they run
# any of the project's code, so lockstep's first checks overlap it. No bytecode is compiled at
# install time: Python writes it on first import, for what is imported only (the `lockstep` and
# `dvc` commands clear PYTHONDONTWRITEBYTECODE for themselves and the stages they run).
# The project's install runs code the pull request controls (build backends): it runs without the
# runner's OIDC, cache and artifact tokens.
set -euo pipefail
root="${RUNNER_TEMP:?}/lockstep"
# the bytecode cache (lockstep/bytecode.py): restored here by actions/cache, filled by lockstep at the
# end of a job whose cache missed, linked into the fresh environments
bytecode="${RUNNER_TEMP:?}/lockstep-bytecode"
source_dir="$(cd "${GITHUB_ACTION_PATH:?}/../.." && pwd)"
python="${SETUP_PYTHON:-python3}"
wd="${SETUP_WORKING_DIRECTORY:-.}"

fail() { echo "::error title=lockstep setup::$1" >&2; exit 2; }

# The requirement entries (one per line), relative to the project: the input, else the first of
# requirements.txt, src/requirements.txt, uv.lock, pyproject.toml (one that declares a project, not
# only tools' settings), setup.py, environment.yml, environment.yaml, Pipfile.lock, Pipfile that exists
# in the project, else the first at the repository's root (a project in a sub-folder whose
# requirements sit at the top).
requirements() {
  if [ -n "${SETUP_REQUIREMENTS:-}" ]; then
    printf '%s\n' "$SETUP_REQUIREMENTS" | tr ' ' '\n' | sed '/^$/d'
    return
  fi
  local up=""
  if [ "$(realpath -m "$wd")" != "$(realpath -m .)" ]; then up="$(realpath -m --relative-to="$wd" .)/"; fi  # ../ or ../../
  for base in "" ${up:+"$up"}; do
    for candidate in requirements.txt src/requirements.txt uv.lock pyproject.toml setup.py environment.yml environment.yaml \
                     Pipfile.lock Pipfile; do
      local file="$wd/$base$candidate"
      [ -f "$file" ] || continue
      if [ "$candidate" = pyproject.toml ] && ! grep -qE '^\[(project|tool\.poetry)[].]' "$file" \
          && [ ! -f "$(dirname "$file")/setup.py" ] && [ ! -f "$(dirname "$file")/setup.cfg" ]; then
        continue  # black's or ruff's settings only: no dependencies there
      fi
      echo "$base$candidate"
      return
    done
  done
}

# Files that look like the project's requirements but are none of the defaults above (a
# `requirements/` folder, `requirements-*.txt`), in the project's folder or at the
# repository's root: with no default found, the install would leave the stages without packages.
unlisted_requirements() {
  local up=""
  if [ "$(realpath -m "$wd")" != "$(realpath -m .)" ]; then up="$(realpath -m --relative-to="$wd" .)/"; fi
  for base in "" ${up:+"$up"}; do
    for file in "$wd/$base"requirements/*.txt "$wd/$base"requirements[-_]*.txt "$wd/$base"*[-_]requirements.txt; do
      if [ -f "$file" ]; then echo "$base${file#"$wd/$base"}"; fi
    done
  done
}

no_default_requirements() {
  local found listed
  found="$(unlisted_requirements)"
  [ -z "$found" ] && return 0
  listed="$(paste -sd, - <<< "$found" | sed 's/,/, /g')"
  fail "no requirements file lockstep installs by default in $wd or at the repository's root (requirements.txt, src/requirements.txt, uv.lock, pyproject.toml, setup.py, environment.yml, Pipfile.lock), but $listed look like the project's requirements, which the stages would then run without: set the setup's \`requirements\` input (the reusable workflows' \`requirements\`) to the file(s) the stages need, such as \`requirements: ${found%%$'\n'*}\`"
}

# A Python with tomllib (3.11+) to read TOML with the standard library: the job's when it has it,
# else another the machine has (GitHub's runners have their own python3, 3.12).
tomllib_python() {
  if "$python" -c 'import tomllib' 2> /dev/null; then echo "$python"; return; fi
  uv python find --no-python-downloads '>=3.11' 2> /dev/null || echo "$python"
}

# A requirement entry as a path from the workspace (what setup-uv's cache globs see).
from_workspace() {
  case "$1" in
    ../*) realpath -m --relative-to=. "$wd/$1" ;;
    *) echo "$wd/$1" ;;
  esac
}

# DVC extras for every remote URL scheme in the project's DVC config (s3 is always there, and
# DVC's HTTP support is not an extra).
dvc_extras() {
  { cat "$wd/.dvc/config" "$wd/.dvc/config.local" 2>/dev/null || true; } \
    | sed -n 's/^[[:space:]]*url[[:space:]]*=[[:space:]]*\([a-z0-9]*\):\/\/.*/\1/p' \
    | while read -r scheme; do
        case "$scheme" in
          gs|gcs) echo gs ;; azure|az) echo azure ;; ssh) echo ssh ;; gdrive) echo gdrive ;;
          webdav|webdavs) echo webdav ;; hdfs) echo hdfs ;; webhdfs) echo webhdfs ;; oss) echo oss ;;
        esac
      done | sort -u | paste -sd, -
}

# FILE:LINE: `the line` for the first line of FILE that matches the extended regex (FILE alone when none does).
line_of() {
  local found
  found="$(grep -n -m1 -E -- "$2" "$1" 2> /dev/null || true)"
  if [ -z "$found" ]; then echo "$1"; return; fi
  echo "$1:${found%%:*}: \`$(sed -E 's/^[[:space:]]+|[[:space:]]+$//g' <<< "${found#*:}")\`"
}

# The Python for both environments: the input, else .python-version (the project's folder, then the
# root's), else a conda environment file's python, else a Pipfile's, else what pyproject.toml,
# runtime.txt, .tool-versions, a Dockerfile, setup.py or setup.cfg asks for (lockstep/pyversion.py),
# else 3.11. `source` names the file and line that asked, for the message when it is below 3.10.
python_version() {
  local version="${SETUP_PYTHON_VERSION:-}" source="the \`python-version\` input"
  if [ -z "$version" ]; then
    for file in "$wd/.python-version" .python-version; do
      [ -f "$file" ] || continue
      # pyenv's file: the first line that is no comment; a virtualenv's name or `system` is no version
      version="$(grep -v -E '^[[:space:]]*(#|$)' "$file" | head -n1 | tr -d '[:space:]' || true)"
      source="$(line_of "$file" '^[[:space:]]*[^#[:space:]]')"
      if [ -n "$version" ] && ! [[ "$version" =~ ^(pypy)?[0-9]+(\.[0-9]+)*[a-z0-9.+-]*$ ]]; then
        echo "::warning title=lockstep setup::$file names '$version', which is no Python version (a pyenv virtualenv's name?): the version comes from the project's other files or the default instead" >&2
        version=""
      fi
      break
    done
  fi
  if [ -z "$version" ] && command -v python3 > /dev/null; then
    # what a conda environment file pins, else a Pipfile, else the files pyversion.py reads
    local environment
    environment="$(requirements | grep -m1 -E '(^|/)environment\.ya?ml$' || true)"
    if [ -n "$environment" ]; then
      version="$(PYTHONPATH="$source_dir/scripts" python3 -m lockstep.condaenv python "$wd/$environment" 2>/dev/null || true)"
      source="$(line_of "$wd/$environment" '^[[:space:]]*-[[:space:]]*python([[:space:]=<>!~]|$)')"
    fi
    local pipfile
    pipfile="$(requirements | grep -m1 -E '(^|/)Pipfile(\.lock)?$' || true)"
    if [ -z "$version" ] && [ -n "$pipfile" ]; then
      version="$(PYTHONPATH="$source_dir/scripts" python3 -m lockstep.pipfile python "$wd/$pipfile" 2>/dev/null || true)"
      source="$(line_of "$wd/$pipfile" 'python_(full_)?version')"
    fi
    if [ -z "$version" ]; then
      # its warnings (a pinned version below 3.10 set aside) go to the log
      local found
      found="$(PYTHONPATH="$source_dir/scripts" python3 -m lockstep.pyversion find "$wd" . || true)"
      if [ -n "$found" ]; then IFS=$'\t' read -r version source <<< "$found"; fi
    fi
  fi
  version="${version:-3.11}"
  [[ "$version" =~ ^[0-9A-Za-z.+-]{1,32}$ ]] || fail "python version '$version' is not a version (from $source)"
  if [[ "$version" =~ ^([0-2]|3\.[0-9])(\.|$) ]]; then
    # both environments are made with one Python, and lockstep's (DVC's, MLflow's) needs 3.10
    fail "the project asks for Python $version (from $source), and lockstep needs Python 3.10 or newer, for its environment and the project's alike: set the \`python-version\` input to 3.10 or newer if the stages run there, and raise the requirements pinned to releases that predate it (such a release has no wheel for a newer Python, and its build from source usually fails)"
  fi
  echo "$version"
}

cache_key() {
  {
    "$python" -c 'import platform, sys; print(platform.machine(), sys.version, sys.base_prefix)'
    uv --version
    cat "$source_dir/pyproject.toml" "$source_dir/constraints.txt"
    dvc_extras
    requirements | while read -r entry; do echo "$entry"; cat "$wd/${entry%%\[*}" 2>/dev/null || true; done
  } | sha256sum | cut -c1-32
}

install_project() {
  local env_dir
  env_dir="$(realpath -m "${SETUP_ENV_DIR:-$root/project}")"  # lockstep validate installs the base's here (projectenv.py)
  uv venv --quiet --relocatable --python "$python" "$env_dir"
  local entries
  entries="$(requirements)"
  if [ -z "$entries" ]; then
    no_default_requirements
    echo "no requirements.txt, src/requirements.txt, uv.lock, pyproject.toml, setup.py, environment.yml or Pipfile in $wd or at the repository's root: the project environment has no extra packages (set the \`requirements\` input if the stages need some)"
    return
  fi
  local clean=(env -u ACTIONS_ID_TOKEN_REQUEST_TOKEN -u ACTIONS_ID_TOKEN_REQUEST_URL -u ACTIONS_RUNTIME_TOKEN
               -u ACTIONS_CACHE_URL -u ACTIONS_RESULTS_URL -u GITHUB_TOKEN)
  while read -r entry; do
    local file="${entry%%\[*}" extras=() wanted="" constraints=()
    [ -f "$wd/$file" ] || fail "requirements: $wd/$file does not exist (the \`requirements\` input or the default)"
    if [ "$file" != "$entry" ]; then
      IFS=, read -r -a names <<< "${entry#*\[}"
      for name in "${names[@]}"; do name="${name%\]}"; [ -n "$name" ] && extras+=(--extra "$name") && wanted="$wanted,$name"; done
    fi
    echo "installing the project's requirements from $wd/$entry"
    case "$file" in
      *uv.lock)
        UV_PROJECT_ENVIRONMENT="$env_dir" "${clean[@]}" uv sync --quiet --frozen --no-editable \
          --python "$env_dir/bin/python" --project "$(dirname "$wd/$file")" "${extras[@]}" ;;
      *)
        # from where a developer runs `pip install -r` (the project's folder; the root for the root's
        # file): `-e .` and other paths in the file are relative to it
        local from="$wd" listed
        case "$file" in ../*) from="$(dirname "$wd/$file")" ;; esac
        listed="$(realpath -m --relative-to="$from" "$wd/$file")"
        case "$file" in
          environment.yml|environment.yaml|*/environment.yml|*/environment.yaml)
            # a conda environment: its pip entries, and its conda packages by their PyPI names
            # (from the file's folder, where conda runs pip)
            from="$(dirname "$wd/$file")"
            listed="$env_dir.requirements.txt"
            PYTHONPATH="$source_dir/scripts" "$python" -m lockstep.condaenv requirements "$wd/$file" > "$listed" ;;
          Pipfile|Pipfile.lock|*/Pipfile|*/Pipfile.lock)
            # pipenv's: the lock's default packages at their versions (hashes and all), else the
            # Pipfile's packages; never the develop ones
            from="$(dirname "$wd/$file")"
            listed="$env_dir.requirements.txt"
            PYTHONPATH="$source_dir/scripts" "$(tomllib_python)" -m lockstep.pipfile requirements "$wd/$file" > "$listed" \
              || fail "requirements: $wd/$file cannot be read" ;;
          pyproject.toml|*/pyproject.toml)
            # Poetry's own tables (`[tool.poetry.dependencies]`, groups, sources): read here, as the
            # project cannot always be built (non-package mode); and a poetry.lock's versions as
            # constraints, as the developer's `poetry install` installed them
            local reader lock
            reader="$(tomllib_python)"
            lock="$(dirname "$wd/$file")/poetry.lock"
            if PYTHONPATH="$source_dir/scripts" "$reader" -m lockstep.poetryenv applies "$wd/$file"; then
              from="$(dirname "$wd/$file")"
              listed="$env_dir.requirements.txt"
              PYTHONPATH="$source_dir/scripts" "$reader" -m lockstep.poetryenv requirements "$wd/$file" "${wanted#,}" > "$listed" \
                || fail "requirements: $wd/$entry: see the message above"
              extras=()
            elif [ -n "$wanted" ]; then  # a PEP 735 dependency group is `--group`, an extra `--extra`
              mapfile -t extras < <(PYTHONPATH="$source_dir/scripts" "$reader" -m lockstep.poetryenv selection "$wd/$file" "${wanted#,}")
            fi
            if [ -f "$lock" ]; then
              PYTHONPATH="$source_dir/scripts" "$reader" -m lockstep.poetryenv constraints "$lock" > "$env_dir.constraints.txt" \
                || fail "requirements: $lock cannot be read as a poetry.lock"
              constraints=(-c "$env_dir.constraints.txt")
              echo "with the versions $lock pins ($(grep -c . "$env_dir.constraints.txt") package(s))"
            fi ;;
        esac
        # and with pip's choice among indexes: the best version any of them has (uv's default takes a
        # package from the first index that has it, and an `--extra-index-url` such as PyTorch's,
        # which carries old copies of common packages, then fails what pip installs); with pip's
        # hash rule: a file with a `--hash` in it installs only what it pins with one (uv otherwise
        # checks the hashes given and installs what the file left out, unchecked)
        local hashes=()
        local listed_path="$listed"
        case "$listed" in /*) ;; *) listed_path="$from/$listed" ;; esac
        if grep -qsE -- '--hash[= ]' "$listed_path"; then hashes=(--require-hashes); fi
        (cd "$from" && "${clean[@]}" UV_INDEX_STRATEGY="${UV_INDEX_STRATEGY:-unsafe-best-match}" \
          uv pip install --quiet --python "$env_dir/bin/python" -r "$listed" ${hashes[@]+"${hashes[@]}"} \
            ${constraints[@]+"${constraints[@]}"} "${extras[@]}") ;;
    esac
  done <<< "$entries"
}

# Start installing both environments, each in its own session (a runner may end a step's process
# group with the step), lockstep's first. Both at the same priority: the project's is the one the
# evaluation waits for (lockstep's own, without Hydra, is in before it), and at a lower priority it
# lost the cores to lockstep's checks.
start_installs() {
  rm -rf "$root"
  mkdir -p "$root"
  detach tool
  detach project
}

# Start `setup.sh NAME-background` detached, and return once it runs in its own session: it writes
# NAME.pid then (until then, the end of this step would end it).
detach() {
  local name="$1"; shift
  local session=(); if command -v setsid > /dev/null; then session=(setsid); fi
  ${session[@]+"${session[@]}"} "$@" bash "$0" "$name-background" < /dev/null > /dev/null 2>&1 &
  local tries=100 started=$!
  while [ ! -f "$root/$name.pid" ] && [ "$tries" -gt 0 ]; do sleep 0.02; tries=$((tries - 1)); done
  if [ ! -f "$root/$name.pid" ]; then echo "$started" > "$root/$name.pid"; fi
}

# The exit code of a background install (NAME.status), once it has one; 1 if it stopped without.
# The process is NAME's, or the one named second (MLflow's client is installed by lockstep's).
finished() {
  while [ ! -f "$root/$1.status" ] && kill -0 "$(cat "$root/${2:-$1}.pid")" 2> /dev/null; do sleep 0.05; done
  cat "$root/$1.status" 2> /dev/null || echo 1
}

# The DVC extras for the project's remotes (beyond S3), into lockstep's environment.
install_extras() {
  local extras
  extras="$(dvc_extras)"
  [ -n "$extras" ] || return 0
  echo "installing dvc[$extras] for the project's remotes"
  # pyOpenSSL before 22.1 (which pydrive2, Google Drive's client, allows) sets no upper bound on
  # cryptography, and cannot be imported with the one DVC needs
  local floor=(); if [[ ",$extras," == *,gdrive,* ]]; then floor=("pyopenssl>=22.1.0"); fi
  # and without Hydra when the project does not use it, though DVC requires it (install_hydra)
  local without=()
  if ! uses_hydra && uv pip install --help | grep -q -- '--excludes'; then  # a uv older than the option: with Hydra
    sed 's/[=;[:space:]].*//' "$root/tool-hydra.txt" > "$root/tool-hydra.names"
    without=(--excludes "$root/tool-hydra.names")
  fi
  uv pip install --quiet --python "$root/tool/bin/python" -c "$source_dir/constraints.txt" ${without[@]+"${without[@]}"} \
    "dvc[$extras]" ${floor[@]+"${floor[@]}"}
}

# Whether the project's DVC config has a `[hydra]` section (`dvc config hydra.enabled true`):
# then lockstep composes params.yaml as `dvc exp run` does, with Hydra (lockstep/toolenv.py).
uses_hydra() {
  grep -qsE '^[[:space:]]*\[[[:space:]]*hydra[[:space:]]*\][[:space:]]*$' "$wd/.dvc/config" "$wd/.dvc/config.local"
}

# Hydra and what only it needs, into lockstep's environment, for a project whose DVC config uses it.
install_hydra() {
  uses_hydra || return 0
  echo "installing Hydra for the project's DVC config ([hydra])"
  uv pip install --quiet --no-deps --python "$root/tool/bin/python" -r "$root/tool-hydra.txt"
}

# Record a background install's end: its exit code in NAME.status, written whole.
record_status() {
  echo "$2" > "$root/$1.status.part"
  mv "$root/$1.status.part" "$root/$1.status"
}

# Wait until the cache step has restored the bytecode (`install` says so), for at most ten minutes
# (a job that stopped before it: nothing to link).
wait_for_bytecode() {
  local tries=6000
  while [ ! -f "$root/bytecode.ready" ] && [ "$tries" -gt 0 ]; do sleep 0.1; tries=$((tries - 1)); done
}

# Extract the restored bytecode of a tree (tool, project, lockstep-source) into it
# (lockstep/bytecode.py: checked-hash files, which Python compiles again when their source differs).
link_bytecode() {
  [ -f "$bytecode/$1.zip" ] || return 0
  PYTHONPATH="$source_dir/scripts" "$python" -m lockstep.bytecode link "$bytecode/$1.zip" "${2:-$root/$1}"
}

case "${1:-install}" in
  plan)
    if [ -z "$(requirements)" ]; then no_default_requirements; fi
    version="$(python_version)"
    {
      echo "python-version=$version"
      echo "dvc-extras=$(dvc_extras)"
      echo "requirements<<LOCKSTEP_EOF"
      requirements | sed 's#\[.*##' | while read -r entry; do from_workspace "$entry"; done
      echo "LOCKSTEP_EOF"
    } >> "$GITHUB_OUTPUT"
    ;;
  begin)
    # another key's archive (older requirements, another lockstep) is restored when this one has
    # none: what still matches its source is used, the rest compiled again
    prefix="lockstep-bytecode-$(uname -s)-$(uname -m)-$("$python" -c 'import sys; print(sys.implementation.cache_tag)')-"
    {
      echo "key=$prefix$(cache_key)"
      echo "restore-prefix=$prefix"
      echo "dir=$bytecode"
    } >> "$GITHUB_OUTPUT"
    start_installs
    ;;
  project)
    rm -rf "${SETUP_ENV_DIR:-$root/project}"
    install_project
    ;;
  tool-background)
    # started by `begin` or `install`: lockstep's dependencies as constraints.txt lists them, a
    # complete resolution (every platform's markers), so nothing is resolved here (a third of a warm
    # install's time). First what lockstep's checks need, with Hydra only for a project whose DVC
    # config uses it (tool.status: `install` goes on from there), then the packages only MLflow's client needs (mlflow.status: lockstep waits for them
    # before it imports MLflow or runs the project's code), while the checks run (lockstep/toolenv.py).
    set +e
    echo "$$" > "$root/tool.pid.part" && mv "$root/tool.pid.part" "$root/tool.pid"
    (
      # meanwhile, once the cache step is over, lockstep's own source (there already) gets its bytecode
      ( wait_for_bytecode; link_bytecode lockstep-source "$source_dir/scripts" ) &
      source_linked="$!"
      "$python" -I -S "$source_dir/scripts/lockstep/toolenv.py" split "$source_dir/constraints.txt" \
          "$root/tool-first.txt" "$root/tool-later.txt" "$root/tool-hydra.txt" \
        && uv venv --quiet --relocatable --python "$python" "$root/tool" \
        && uv pip sync --quiet --python "$root/tool/bin/python" "$root/tool-first.txt" \
        && install_hydra \
        && install_extras \
        && { wait_for_bytecode; link_bytecode tool; }
      code="$?"
      wait "$source_linked"
      exit "$code"
    ) > "$root/tool-install.log" 2>&1
    code="$?"
    record_status tool "$code"
    if [ "$code" -ne 0 ]; then record_status mlflow "$code"; exit 0; fi
    ( uv pip install --quiet --no-deps --python "$root/tool/bin/python" -r "$root/tool-later.txt" \
        && link_bytecode tool ) > "$root/mlflow-install.log" 2>&1
    record_status mlflow "$?"
    ;;
  project-background)
    # started by `begin` or `install`: the exit code lands in project.status (lockstep/projectenv.py
    # waits for it). The restored bytecode is linked once `install` says the cache step is over.
    set +e
    echo "$$" > "$root/project.pid.part" && mv "$root/project.pid.part" "$root/project.pid"
    ( install_project && wait_for_bytecode && link_bytecode project ) > "$root/project-install.log" 2>&1
    code="$?"
    record_status project "$code"
    # then, when the cache restored no bytecode for it (a first run, no cache), compile what the
    # stages will import, at the lowest priority, while lockstep's checks run (lockstep/precompile.py:
    # nothing of it runs). An archive of another key is not improved on: what it holds is read as it is.
    if [ "$code" -eq 0 ] && [ ! -f "$bytecode/project.zip" ]; then
      env_dir="${SETUP_ENV_DIR:-$root/project}"
      nice -n 19 "$env_dir/bin/python" -I -S "$source_dir/scripts/lockstep/precompile.py" "$env_dir" "$wd" \
        > "$root/precompile.log" 2>&1
    fi
    ;;
  install)
    if [ ! -f "$root/project.pid" ]; then start_installs; fi
    touch "$root/bytecode.ready"  # the cache step is over: the project's install may link what it restored
    status="$root/project.status"
    code="$(finished tool)"
    if [ "$code" -ne 0 ]; then
      echo "::error title=lockstep setup::lockstep's own environment did not install (exit $code): see the log below" >&2
      cat "$root/tool-install.log" >&2
      exit "$code"
    fi
    cat "$root/tool-install.log"
    site="$("$root/tool/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
    echo "$source_dir/scripts" > "$site/lockstep-source.pth"  # its bytecode was linked meanwhile (tool-background)
    if [ "${SETUP_CACHE:-false}" = true ] && [ "${SETUP_CACHE_HIT:-}" != true ]; then
      printf 'LOCKSTEP_BYTECODE_SAVE=%s\nLOCKSTEP_ENVIRONMENTS=%s\n' "$bytecode" "$root" >> "$GITHUB_ENV"
    fi
    # which files the project's packages come from: a PR that changes them is marked for review
    if [ -n "${GITHUB_ENV:-}" ]; then
      echo "LOCKSTEP_PROJECT_REQUIREMENTS=$(requirements | tr '\n' ' ')" >> "$GITHUB_ENV"
    fi
    if [ "${SETUP_BACKGROUND:-false}" = true ]; then
      echo "LOCKSTEP_MLFLOW_CLIENT_STATUS=$root/mlflow.status" >> "$GITHUB_ENV"
      echo "LOCKSTEP_PROJECT_ENV_STATUS=$status" >> "$GITHUB_ENV"
      echo "the project's requirements go on installing in the background; lockstep waits for them before running the project's code"
    else
      code="$(finished mlflow tool)"
      if [ "$code" -ne 0 ]; then
        echo "::error title=lockstep setup::MLflow's client did not install into lockstep's environment (exit $code): see the log below" >&2
        cat "$root/mlflow-install.log" >&2
        exit "$code"
      fi
      code="$(finished project)"
      if [ "$code" -ne 0 ]; then
        cat "$root/project-install.log" >&2
        # a pinned release with no wheel for this Python, named (lockstep/projectenv.py)
        PYTHONPATH="$source_dir/scripts" "$root/tool/bin/python" -m lockstep.projectenv explain "$root/project-install.log" \
          "$root/project/pyvenv.cfg" >&2 || true
        exit "$code"
      fi
      cat "$root/project-install.log"
    fi
    mkdir -p "$root/bin"
    wrapper() {
      printf '#!/bin/sh\n# bytecode is written on first import (setup.sh)\nPYTHONDONTWRITEBYTECODE= exec %s "$@"\n' "$2" > "$root/bin/$1"
      chmod +x "$root/bin/$1"
    }
    wrapper lockstep "\"$root/tool/bin/python\" -m lockstep"
    wrapper dvc "\"$root/tool/bin/dvc\""
    # GITHUB_PATH lines are prepended in order: the project's python first, then lockstep and dvc.
    echo "$root/bin" >> "$GITHUB_PATH"
    echo "$root/project/bin" >> "$GITHUB_PATH"
    {
      echo "lockstep-version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$source_dir/pyproject.toml")"  # as lockstep --version says, run from its source
      echo "python-path=$root/project/bin/python"
    } >> "$GITHUB_OUTPUT"
    ;;
  *) echo "usage: setup.sh plan|begin|install|project" >&2; exit 2 ;;
esac
