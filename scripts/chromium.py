"""Make sure Debian's chromium is there for the browser tests (tests/browser).

Playwright's own browser download needs the internet; the tests drive the distribution's
chromium instead. Run as root with apt-get available, this installs it when it is missing;
otherwise it prints one line naming the command, and the browser tests skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

INSTALL = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]


def ensure_chromium() -> bool:
    if shutil.which("chromium") or shutil.which("chromium-browser"):
        return True
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        print(
            "chromium is missing: the browser tests will skip (install it: "
            f"sudo {' '.join(INSTALL)})",
            file=sys.stderr,
        )
        return False
    print(f"installing chromium for the browser tests: {' '.join(INSTALL)}", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    done = subprocess.run(INSTALL, env=env, stdout=subprocess.DEVNULL, check=False)
    if done.returncode != 0:  # a stale package list: update it once and try again
        subprocess.run(["apt-get", "update"], env=env, stdout=subprocess.DEVNULL, check=False)
        subprocess.run(INSTALL, env=env, stdout=subprocess.DEVNULL, check=False)
    return shutil.which("chromium") is not None


if __name__ == "__main__":
    sys.exit(0 if ensure_chromium() else 1)
