"""Real tmpfs mounts for the fault tests: a small, full or read-only filesystem.

Mounting needs root. Without it, a test marked `mounts` runs again in a child pytest inside a user
and mount namespace of its own (`unshare -rm`: root there, over its own mounts only, which vanish
with it), and the outer run takes the child's verdict: passed, failed with the child's report, or
skipped with the child's reason. Where the kernel refuses user namespaces too, the test skips and
says so.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Set in the child, so that it runs the test itself instead of starting another child.
IN_NAMESPACE = "REMASTER_TEST_IN_MOUNT_NAMESPACE"


@contextlib.contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """A real tmpfs of `size` on `folder`, unmounted afterwards; skips where mounting is not allowed."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        why = mounted.stderr.decode().strip().splitlines()[0]
        pytest.skip(f"cannot mount a tmpfs here (needs root or a user namespace): {why}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def remount(folder: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(folder)], check=True)


def needs_namespace(item: pytest.Item) -> bool:
    """Whether this test mounts, cannot here, and should run in a namespace of its own instead."""
    return item.get_closest_marker("mounts") is not None and os.geteuid() != 0 and not os.environ.get(IN_NAMESPACE)


def run_in_namespace(item: pytest.Item) -> None:
    """Run one test in a child pytest under `unshare -rm`; fail or skip as the child did."""
    if shutil.which("unshare") is None:
        pytest.skip("mounts a tmpfs: needs root, or unshare(1) (util-linux) for a user namespace")
    with tempfile.TemporaryDirectory(prefix="mount-namespace-") as base:
        # A base folder of the child's own: /tmp/pytest-of-<user> may be another user's, as seen from the namespace.
        command = ["unshare", "-rm", sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"]
        command += [f"--basetemp={base}/tmp", item.nodeid]
        env = {**os.environ, IN_NAMESPACE: "1"}
        child = subprocess.run(command, cwd=item.config.rootpath, env=env, capture_output=True, text=True)
    report = (child.stdout + child.stderr).strip()
    if child.returncode != 0 and child.stderr.startswith("unshare:"):
        pytest.skip(f"mounts a tmpfs: needs root or a user namespace ({child.stderr.strip()})")
    if child.returncode != 0:
        pytest.fail(f"in a user and mount namespace (unshare -rm):\n{report}", pytrace=False)
    skipped = re.search(r"^SKIPPED \[\d+\] [^:]+:\d+: (.*)$", child.stdout, re.MULTILINE)
    if skipped:
        pytest.skip(f"in a user and mount namespace: {skipped.group(1)}")
    if not re.search(r"\b1 passed\b", child.stdout):
        pytest.fail(f"in a user and mount namespace, the test did not run:\n{report}", pytrace=False)
