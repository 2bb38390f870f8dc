"""The policy monitor: re-evaluates the usage policy of every running transfer on a fixed interval.

A transfer whose agreement's policy no longer holds (an expired validity period, a withdrawn credential)
is terminated with the reason; its tokens stop working at once. Replicas may all run it: a transfer is
changed under a version check, so it is terminated once.
"""

from __future__ import annotations

import logging

from connector.jobs.periodic import Periodic
from connector.services.transfers import TransferService

log = logging.getLogger("connector.monitor")


class PolicyMonitor(Periodic):
    """Runs `TransferService.monitor_once` every `interval` seconds."""

    def __init__(self, transfers: TransferService, interval: float) -> None:
        super().__init__("policy-monitor", interval, transfers.monitor_once, log)
