"""The retention job: ``madoguchi purge`` now, and once a day while ``madoguchi serve``
runs (:class:`DailyPurge`, which the launcher ticks). What is deleted and why is in
:mod:`knowledge.retention`; the period is ``MADOGUCHI_RETENTION_DAYS``."""

from __future__ import annotations

import logging
import sqlite3
import time

from assistant.operations.config import Settings
from knowledge.retention import PurgeReport, purge
from knowledge.store import open_db

log = logging.getLogger(__name__)
DAY_S = 24 * 3600.0
RETRY_S = 3600.0  # after a failed run (a locked database, a full disk)


def run_purge(settings: Settings, *, days: int | None = None, actor: str = "system:retention"):
    """Delete what is older than the retention period (or ``days``) in the knowledge
    database and Rasa's tracker store; the counts."""
    db = open_db(settings.database_path)
    try:
        return purge(
            db,
            days=settings.retention_days if days is None else days,
            trackers_path=settings.trackers_path,
            actor=actor,
        )
    finally:
        db.close()


class DailyPurge:
    """Runs the purge at the first :meth:`tick` and then every 24 hours. The launcher's
    watch loop calls ``tick()`` (about once a second); it returns at once unless a run is
    due, and a failed run is logged and tried again an hour later, never raised."""

    def __init__(self, settings: Settings, clock=time.monotonic):
        self.settings = settings
        self.clock = clock
        self.next_run = clock()

    def tick(self) -> PurgeReport | None:
        if self.clock() < self.next_run:
            return None
        try:
            report = run_purge(self.settings)
        except (sqlite3.Error, OSError) as error:
            log.error("the daily purge failed (%s); trying again in an hour", error)
            self.next_run = self.clock() + RETRY_S
            return None
        log.info("daily purge: %s", report.summary())
        self.next_run = self.clock() + DAY_S
        return report
