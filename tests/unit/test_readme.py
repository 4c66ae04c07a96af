"""The README's configuration reference names every setting the code reads."""

import dataclasses

from gateway.core.settings import DispatchSettings, RetrySettings, Settings
from tests.support import ROOT


def test_every_setting_is_in_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    names = ["GATEWAY_" + f.name.upper() for f in dataclasses.fields(Settings) if f.name not in ("retry", "dispatch")]
    names += ["GATEWAY_RETRY_" + f.name.upper() for f in dataclasses.fields(RetrySettings)]
    names += ["GATEWAY_DISPATCH_" + f.name.upper() for f in dataclasses.fields(DispatchSettings)]
    missing = [n for n in names if n not in readme]
    assert not missing, missing


def test_quick_start_is_the_two_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make run" in readme and "make test" in readme
