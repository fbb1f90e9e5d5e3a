"""Fixtures for the infrastructure tests: a private moto server per test module, and the
deployment helper from infra/ (the same code `make deploy-local` runs)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "infra"))

import lifeboat_infra  # noqa: E402

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MotoServer:
    """moto_server on a free loopback port, stopped (and waited for) on exit."""

    def __init__(self, log_dir: Path):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"moto-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "MotoServer":
        moto = VENV_BIN / "moto_server"
        if not moto.exists():
            pytest.fail(f"{moto} not found: create the venv (make setup) first")
        self.log = open(self.log_path, "wb")
        env = dict(os.environ)
        # A server that starts with IAM enforcement off, whatever the caller's environment says.
        env.pop("INITIAL_NO_AUTH_ACTION_COUNT", None)
        self.proc = subprocess.Popen(
            [str(moto), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1):
                    break
            except urllib.error.HTTPError:
                break
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"moto_server exited: see {self.log_path}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not answer on {self.endpoint}")
                time.sleep(0.1)
        return self

    def set_auth(self, enforce: bool) -> None:
        """IAM enforcement: `0` requests without auth means enforce from the next request on;
        `inf` switches it off again."""
        body = b"0" if enforce else b"inf"
        req = urllib.request.Request(
            f"{self.endpoint}/moto-api/reset-auth", data=body, method="POST",
            headers={"Content-Type": "application/octet-stream"},
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.status == 200

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()


@pytest.fixture(scope="module")
def moto(tmp_path_factory) -> MotoServer:
    """A fresh moto server for one test module: modules share no state (IAM enforcement, once
    switched on, applies to the whole server)."""
    with MotoServer(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture(scope="module")
def admin(moto) -> lifeboat_infra.LocalSession:
    """The account's administrator: moto's default credentials, which work only while IAM
    enforcement is off."""
    return lifeboat_infra.LocalSession(moto.endpoint, "us-east-1")
