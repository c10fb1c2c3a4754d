#!/usr/bin/env bash
# Install lockstep (with DVC) into its own environment, and the project's stage requirements
# into another, so neither can break the other. Called by actions/setup/action.yml:
#   setup.sh key       print the cache key and folder (to GITHUB_OUTPUT)
#   setup.sh install   install into the folder unless the restored cache already holds this key
# The environments are relocatable (uv venv --relocatable), so a cache restores anywhere.
set -euo pipefail
root="${RUNNER_TEMP:?}/lockstep"
source_dir="$(cd "${GITHUB_ACTION_PATH:?}/../.." && pwd)"
python="${SETUP_PYTHON:-python3}"
requirements="${SETUP_WORKING_DIRECTORY:-.}/${SETUP_REQUIREMENTS:-requirements.txt}"

cache_key() {
  {
    "$python" -c 'import platform, sys; print(platform.machine(), sys.version, sys.base_prefix)'
    uv --version
    cat "$source_dir/pyproject.toml" "$source_dir/constraints.txt"
    find "$source_dir/scripts" -type f -name '*.py' -o -type f -name '*.json' | LC_ALL=C sort | xargs cat
    if [ -f "$requirements" ]; then cat "$requirements"; fi
  } | sha256sum | cut -c1-32
}

case "${1:-install}" in
  key)
    {
      echo "key=lockstep-env-$(uname -s)-$(cache_key)"
      echo "dir=$root"
    } >> "$GITHUB_OUTPUT"
    ;;
  install)
    key="lockstep-env-$(uname -s)-$(cache_key)"
    if [ "$(cat "$root/.key" 2>/dev/null)" = "$key" ]; then
      echo "environments restored from the cache ($key)"
    else
      rm -rf "$root"
      uv venv --quiet --relocatable --python "$python" "$root/tool"
      uv pip install --quiet --python "$root/tool/bin/python" --compile-bytecode -c "$source_dir/constraints.txt" "$source_dir"
      uv venv --quiet --relocatable --python "$python" "$root/project"
      if [ -f "$requirements" ]; then
        uv pip install --quiet --python "$root/project/bin/python" --compile-bytecode -r "$requirements"
      else
        echo "no $requirements: the project environment has no extra packages"
      fi
      echo "$key" > "$root/.key"
    fi
    mkdir -p "$root/bin"
    ln -sf "$root/tool/bin/lockstep" "$root/bin/lockstep"
    ln -sf "$root/tool/bin/dvc" "$root/bin/dvc"
    # GITHUB_PATH lines are prepended in order: the project's python first, then lockstep and dvc.
    echo "$root/bin" >> "$GITHUB_PATH"
    echo "$root/project/bin" >> "$GITHUB_PATH"
    {
      echo "lockstep-version=$("$root/bin/lockstep" --version | cut -d' ' -f2)"
      echo "python-path=$root/project/bin/python"
    } >> "$GITHUB_OUTPUT"
    ;;
  *) echo "usage: setup.sh key|install" >&2; exit 2 ;;
esac
