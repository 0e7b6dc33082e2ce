"""Entry point of the auth service alone: `python cmd/auth.py [serve options]`.

Container images and process managers run this; it is `musicsync serve auth`.
"""

import sys

from musicsync.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", "auth", *sys.argv[1:]]))
