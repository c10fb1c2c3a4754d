"""One version source, the release check, and the version everywhere it is shown."""

from __future__ import annotations

import re

import pytest

from lockstep import __version__, release

from conftest import ROOT, lockstep


def project(tmp_path, version="1.2.3", entry="## [1.2.3] - 2026-11-22"):
    (tmp_path / "pyproject.toml").write_text(f'[project]\nname = "lockstep"\nversion = "{version}"\n')
    (tmp_path / "CHANGELOG.md").write_text(f"# Changelog\n\n## [Unreleased]\n\n{entry}\n\n### Added\n- x\n")
    return tmp_path


def test_release_check_returns_the_major_tag(tmp_path):
    assert release.check("v1.2.3", project(tmp_path)) == "v1"


@pytest.mark.parametrize(
    ("tag", "version", "entry", "message"),
    [
        ("v1.2", "1.2.3", "## [1.2.3] - 2026-11-22", "is not vX.Y.Z"),
        ("1.2.3", "1.2.3", "## [1.2.3] - 2026-11-22", "is not vX.Y.Z"),
        ("v1.2.4", "1.2.3", "## [1.2.4] - 2026-11-22", "pyproject.toml says version 1.2.3, the tag says 1.2.4"),
        ("v1.2.3", "1.2.3", "## [1.2.2] - 2026-11-20", "CHANGELOG.md has no '## [1.2.3] - YYYY-MM-DD' entry"),
        ("v1.2.3", "1.2.3", "## [1.2.3]", "CHANGELOG.md has no"),
    ],
)
def test_release_check_refuses(tmp_path, tag, version, entry, message):
    with pytest.raises(release.ReleaseError, match=re.escape(message)):
        release.check(tag, project(tmp_path, version, entry))


def test_release_main_prints_annotation(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(project(tmp_path))
    assert release.main(["v9.0.0"]) == 1
    assert "::error title=release check failed::pyproject.toml says version 1.2.3" in capsys.readouterr().out


def test_version_comes_from_pyproject(tmp_path):
    declared = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    assert __version__ == declared
    proc = lockstep("--version", cwd=tmp_path)
    assert proc.stdout.strip() == f"lockstep {declared}"


def test_changelog_follows_keep_a_changelog():
    text = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in text and "keepachangelog.com" in text
    for heading in re.findall(r"^## \[(.+?)\](.*)$", text, re.M):
        version, rest = heading
        assert version == "Unreleased" or re.fullmatch(r"\d+\.\d+\.\d+", version)
        assert version == "Unreleased" or re.fullmatch(r" - \d{4}-\d{2}-\d{2}", rest)


def test_this_checkout_passes_its_own_release_check():
    """What the tag `v<pyproject version>` would run: the version in pyproject.toml has its dated
    CHANGELOG entry, so tagging this commit releases it."""
    declared = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    assert release.check(f"v{declared}", ROOT) == f"v{declared.split('.')[0]}"
