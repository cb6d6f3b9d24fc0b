"""Where the tests find the repository's shared test vectors and tools."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
REPOSITORY = TESTS.parent.parent
VECTORS = REPOSITORY / "packages" / "core" / "test" / "vectors"

# Import the package from the source tree unless it is installed (pip install ./python).
if os.environ.get("TRACEMARK_PYTHON_INSTALLED") != "1":
    sys.path.insert(0, str(TESTS.parent / "src"))


def vectors(name: str) -> list[dict]:
    with open(VECTORS / f"{name}.json", encoding="utf-8") as handle:
        return json.load(handle)["cases"]


def vector_file(name: str) -> dict:
    """A whole vectors file. TRACEMARK_GUMBEL_VECTORS may name gumbel.json elsewhere (a fresh
    output of generate_gumbel_vectors.py, say); without it the committed file is the contract."""
    path = os.environ.get("TRACEMARK_GUMBEL_VECTORS") if name == "gumbel" else None
    location = Path(path) if path else VECTORS / f"{name}.json"
    if not location.exists():
        raise AssertionError(
            f"{location} is missing: run python3 packages/core/reference/generate_{name}_vectors.py"
        )
    with open(location, encoding="utf-8") as handle:
        return json.load(handle)


def relative_error(actual: float, expected: float) -> float:
    return abs(actual - expected) / max(abs(expected), 1e-6)
