"""An ordinary command prints no warnings (a new user saw platformdirs' RuntimeDirWarning on every CLI call)."""

import os
import subprocess
import sys

from tests.support import ROOT


def test_importing_the_storage_layer_without_xdg_runtime_dir_warns_nothing():
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    run = subprocess.run([sys.executable, "-W", "default", "-c", "import gateway.storage.db"], env=env,
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "Warning" not in run.stderr, run.stderr
