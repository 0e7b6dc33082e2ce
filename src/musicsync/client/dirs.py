"""Where the client keeps its files on this computer."""

from __future__ import annotations

import os
from pathlib import Path

# Tests and scripts point the client elsewhere than the user's own configuration.
CONFIG_DIR_ENV = "MUSICSYNC_CONFIG_DIR"


def config_dir() -> Path:
    """The client's configuration folder: MUSICSYNC_CONFIG_DIR, else the OS's usual place.

    XDG on Linux (~/.config/musicsync), ~/Library/Application Support/musicsync on
    macOS, %APPDATA%/musicsync on Windows. Not created here.
    """
    override = os.environ.get(CONFIG_DIR_ENV)
    if override:
        return Path(override)
    import platformdirs
    return Path(platformdirs.user_config_dir("musicsync", appauthor=False, roaming=True))
