"""pipenv's files as the setup action installs them (lockstep/pipfile.py)."""

from __future__ import annotations

import json

import pytest

from lockstep import pipfile

pytestmark = pytest.mark.unit

PIPFILE = """[[source]]
url = "https://pypi.org/simple"
verify_ssl = true
name = "pypi"

[packages]
numpy = "*"
pandas = {version = ">=2.2", extras = ["parquet"]}
feats = {git = "https://example.com/feats.git", ref = "v1"}
shared = {path = "./shared", editable = true}

[dev-packages]
pytest = "*"

[requires]
python_version = "3.11"
"""


def test_a_pipfile_gives_its_packages_not_its_dev_packages_from_its_sources():
    project = pipfile.parse("Pipfile", PIPFILE)
    assert project["python"] == "3.11"
    assert pipfile.requirements(project) == [
        "--index-url https://pypi.org/simple",
        "numpy",
        "pandas[parquet]>=2.2",
        "feats @ git+https://example.com/feats.git@v1",
        "-e shared",
    ]


def test_a_lock_gives_pins_with_hashes_only_when_every_package_has_them():
    lock = {"_meta": {"requires": {"python_version": "3.12"}, "sources": []},
            "default": {"six": {"version": "==1.16.0", "hashes": ["sha256:a", "sha256:b"], "markers": "python_version >= '3.8'"},
                        "attrs": {"version": "==25.1.0", "hashes": ["sha256:c"]}}}
    project = pipfile.parse("Pipfile.lock", json.dumps(lock))
    assert pipfile.requirements(project) == [
        "six==1.16.0 ; python_version >= '3.8' --hash=sha256:a --hash=sha256:b", "attrs==25.1.0 --hash=sha256:c"]
    lock["default"]["local"] = {"path": ".", "editable": True}  # no hash can be given for it: none is checked
    assert all("--hash" not in line for line in pipfile.requirements(pipfile.parse("Pipfile.lock", json.dumps(lock))))
    with pytest.raises(ValueError):
        pipfile.parse("Pipfile.lock", "{not json")
