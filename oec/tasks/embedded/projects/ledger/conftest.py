"""Lets ``python -m pytest`` import the ``ledger`` package from the project root without installing it."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
