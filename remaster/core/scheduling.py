"""Keeping every thread of this process at the normal scheduling policy.

SVT-AV1 switches the thread that opens an encoder to real-time scheduling (SCHED_FIFO at the
highest priority) when it is allowed to, as root is; every thread started from that one after
inherits it. A CPU-bound real-time process can freeze a machine (nothing of normal priority runs
on its cores), and it skews every measurement. After opening an encoder, `normal_scheduling`
puts each real-time thread of the process back to SCHED_OTHER; the threads the encoder started
meanwhile are among them. Linux only: elsewhere there is no /proc/self/task, and nothing to do.
"""

from __future__ import annotations

import os
from pathlib import Path

REAL_TIME = (getattr(os, "SCHED_FIFO", None), getattr(os, "SCHED_RR", None))


def thread_ids() -> list[int]:
    """The ids of this process's threads (Linux), or [] where the system does not list them."""
    try:
        return [int(name) for name in os.listdir("/proc/self/task")]
    except FileNotFoundError:
        return []


def thread_policies() -> dict[int, int]:
    """Each thread's scheduling policy (os.SCHED_*), for the threads still there when asked."""
    policies = {}
    for tid in thread_ids():
        try:
            policies[tid] = os.sched_getscheduler(tid)
        except (ProcessLookupError, PermissionError):  # a thread that ended meanwhile
            continue
    return policies


def normal_scheduling() -> int:
    """Put every real-time thread of this process back to SCHED_OTHER; returns how many were."""
    if not Path("/proc/self/task").is_dir():
        return 0
    reset = 0
    for tid, policy in thread_policies().items():
        if policy in REAL_TIME:
            try:
                os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
            except ProcessLookupError:  # ended meanwhile
                continue
            reset += 1
    return reset
