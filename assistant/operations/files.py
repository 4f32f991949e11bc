"""Everything under ``MADOGUCHI_HOME`` is for the service's own user only.

The knowledge database (tickets, transcripts, accounts), Rasa's trackers, the logs and
the secret key hold residents' words and the keys to the consoles; nobody else on the
machine needs to read them. ``madoguchi serve`` and every CLI command run with umask 077,
and at start the home is made 0700 and any file or folder under it readable by group or
others (from an older version, a copy, a restore) is tightened, with a log line.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

PRIVATE_UMASK = 0o077
log = logging.getLogger(__name__)


def tighten(home: Path) -> int:
    """Take group and other permissions off ``home`` and everything in it (symbolic links
    are not followed); returns how many files and folders were changed."""
    changed = 0
    if not home.is_dir():
        return 0
    changed += _private(home)
    for folder, folders, files in os.walk(home):
        for name in folders + files:
            changed += _private(Path(folder) / name)
    return changed


def _private(path: Path) -> int:
    if path.is_symlink():
        return 0
    mode = path.stat().st_mode & 0o7777
    if not mode & 0o077:
        return 0
    os.chmod(path, mode & 0o700)
    return 1


def make_private(home: Path) -> int:
    """Umask 077 for this process (and its children), the home made 0700 and tightened."""
    os.umask(PRIVATE_UMASK)
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    changed = tighten(home)
    if changed:
        log.warning(
            "made %d files and folders under %s private to this user (they were readable "
            "by group or others)",
            changed,
            home,
        )
    return changed
