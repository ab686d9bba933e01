from collections.abc import Iterator
from pathlib import Path

import pytest
from gate_process import GateProcess, running_gate


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[GateProcess]:
    """A real gate with the repository's example policies."""
    with running_gate(tmp_path) as process:
        yield process
