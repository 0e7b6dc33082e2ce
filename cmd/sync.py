"""Entry point of the sync service alone: `python cmd/sync.py [serve options]`.

Container images and process managers run this; it is `musicsync serve sync`.
"""

import sys

from musicsync.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", "sync", *sys.argv[1:]]))
