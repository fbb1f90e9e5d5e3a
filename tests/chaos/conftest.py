import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import machine  # noqa: E402
from lab import LIFEBOAT, Lab  # noqa: E402


@pytest.fixture(scope="session")
def lab():
    """One local AWS for the whole run; each example resets it."""
    if not LIFEBOAT.exists():
        pytest.fail(f"{LIFEBOAT} is missing: cargo build -p lifeboat-cli")
    lab = Lab().start()
    machine.LAB = lab
    yield lab
    machine.LAB = None
    lab.stop()
