"""The toolchain's own code: the random provider stand-in and the licence gate."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOOLCHAIN = ROOT / "toolchain"


def _licences():
    spec = importlib.util.spec_from_file_location("licences", TOOLCHAIN / "licences.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(shutil.which("go") is None, reason="Go is needed to build the toolchain; .ci/run machines have it")
@pytest.mark.slow
def test_random_stand_in_passes_its_go_tests():
    result = subprocess.run(
        ["go", "test", "./..."],
        cwd=TOOLCHAIN / "random-provider",
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"},
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("text", "licence"),
    [
        ("GNU AFFERO GENERAL PUBLIC LICENSE\nVersion 3", "AGPL"),
        ("Apache License\nVersion 2.0, January 2004", "Apache-2.0"),
        ("Permission is hereby granted, free of charge, to any person", "MIT"),
        ("Mozilla Public License Version 2.0", "MPL-2.0"),
        ("All rights reserved. Do not copy.", "unrecognised"),
    ],
)
def test_licence_files_are_classified_and_agpl_is_named(tmp_path, text, licence):
    module_dir = tmp_path / "example.com" / "!some" / "mod@v1.0.0"
    module_dir.mkdir(parents=True)
    (module_dir / "LICENSE").write_text(text)
    assert _licences().classify("example.com/Some/mod", "v1.0.0", tmp_path) == licence


def test_a_package_inside_a_module_is_classified_by_its_module(tmp_path):
    module_dir = tmp_path / "example.com" / "mod@v1.0.0"
    module_dir.mkdir(parents=True)
    (module_dir / "COPYING").write_text("GNU AFFERO GENERAL PUBLIC LICENSE")
    assert _licences().classify("example.com/mod/sub/pkg", "v1.0.0", tmp_path) == "AGPL"


def test_every_version_is_pinned_once():
    pins = [line.split("=", 1)[0] for line in (TOOLCHAIN / "versions.env").read_text().splitlines() if line and not line.startswith("#")]
    assert len(pins) == len(set(pins)) >= 6
    assert all(
        value
        for line in (TOOLCHAIN / "versions.env").read_text().splitlines()
        if "=" in line and not line.startswith("#")
        for value in [line.split("=", 1)[1]]
    )


def test_the_browser_servers_proxy_image_is_the_release_the_tests_build_and_run():
    """The e2e runs oauth2-proxy built from the module at OAUTH2_PROXY_VERSION; the pod pulls the image of that release."""
    from mlops_platform.kubeflow.settings import OAUTH2_PROXY_IMAGE, OAUTH2_PROXY_VERSION

    pins = dict(line.split("=", 1) for line in (TOOLCHAIN / "versions.env").read_text().splitlines() if line and not line.startswith("#"))
    assert pins["OAUTH2_PROXY_VERSION"] == OAUTH2_PROXY_VERSION
    assert OAUTH2_PROXY_IMAGE == f"quay.io/oauth2-proxy/oauth2-proxy:{OAUTH2_PROXY_VERSION}"
