#!/usr/bin/env bash
# Install lockstep (with DVC) into its own environment, and the project's stage requirements
# into another, so neither can break the other. Called by actions/setup/action.yml.
set -euo pipefail
root="${RUNNER_TEMP:?}/lockstep"
source_dir="$(cd "${GITHUB_ACTION_PATH:?}/../.." && pwd)"
python="${SETUP_PYTHON:-python3}"

uv venv --quiet --allow-existing --python "$python" "$root/tool"
uv pip install --quiet --python "$root/tool/bin/python" --compile-bytecode "$source_dir"
mkdir -p "$root/bin"
ln -sf "$root/tool/bin/lockstep" "$root/bin/lockstep"
ln -sf "$root/tool/bin/dvc" "$root/bin/dvc"

uv venv --quiet --allow-existing --python "$python" "$root/project"
requirements="${SETUP_WORKING_DIRECTORY:-.}/${SETUP_REQUIREMENTS:-requirements.txt}"
if [ -f "$requirements" ]; then
  uv pip install --quiet --python "$root/project/bin/python" --compile-bytecode -r "$requirements"
else
  echo "no $requirements: the project environment has no extra packages"
fi

# GITHUB_PATH lines are prepended in order: the project's python first, then lockstep and dvc.
echo "$root/bin" >> "$GITHUB_PATH"
echo "$root/project/bin" >> "$GITHUB_PATH"
{
  echo "lockstep-version=$("$root/bin/lockstep" --version | cut -d' ' -f2)"
  echo "python-path=$root/project/bin/python"
} >> "$GITHUB_OUTPUT"
