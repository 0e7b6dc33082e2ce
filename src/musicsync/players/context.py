"""What the player services are built from (server.py makes one per server)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..db import Database
from ..storage import BlobStore
from ..sync.notifier import ChangeNotifier


@dataclass
class PlayerContext:
    """The database, the notifier of committed changes (call ``published`` after a commit
    that recorded a change), the blob store (None without the file service), the clock."""

    db: Database
    notifier: ChangeNotifier
    store: BlobStore | None = None
    clock: Callable[[], float] = field(default=time.time)

    def now(self) -> int:
        return int(self.clock())
