"""`python -m launcher run|bot|runner|updater`, the same as the `llama-discord-bot` console script."""

from __future__ import annotations

import sys

from launcher.cli import main

if __name__ == "__main__":
    sys.exit(main())
