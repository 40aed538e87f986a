"""`python -m alphabet`: the `alphabet` command, for where its script is not on PATH."""

from __future__ import annotations

import sys

from alphabet.cli import main

sys.exit(main())
