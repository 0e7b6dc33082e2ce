"""Entry point of the file service alone: `python cmd/file.py [serve options]`.

Container images and process managers run this; it is `musicsync serve file`.
"""

import sys

from musicsync.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", "file", *sys.argv[1:]]))
