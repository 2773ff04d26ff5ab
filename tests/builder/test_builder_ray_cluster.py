"""A real two-node Ray cluster on this machine builds the same store as the local engine.

The head and a second node are separate ``ray start`` processes (``--block``, so ending the
process group ends every Ray process they started); the build is the ``medvision build
--engine ray`` command line, connected through ``--ray-address``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from medvision.builder.engine import BuildOptions, build_dataset
from medvision.catalog.registry import get_spec
from medvision.store import open_dataset

pytestmark = pytest.mark.slow

RAY = Path(sys.executable).with_name("ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "RAY_USAGE_STATS_ENABLED": "0",
        # One machine, one user: token authentication would need the token on every node.
        "RAY_AUTH_MODE": "disabled",
    }


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def _nodes(address: str) -> int:
    probe = (
        f"import ray; ray.init(address={address!r}, log_to_driver=False); "
        "print(sum(n['Alive'] for n in ray.nodes()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], env=_env(), capture_output=True, text=True, timeout=90
    )
    return int(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else 0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not RAY.exists():
        pytest.fail(f"the ray extra is part of the test extra, but {RAY} is missing")
    port = _free_port()
    address = f"127.0.0.1:{port}"
    temp = tmp_path_factory.mktemp("ray")
    common = ["--num-cpus=1", "--block", "--disable-usage-stats"]
    head = subprocess.Popen(
        [
            *(str(RAY), "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1"),
            *("--include-dashboard=false", f"--temp-dir={temp}", *common),
        ],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    procs = [head]
    try:
        deadline = time.monotonic() + 120
        while _nodes(address) < 1:
            assert head.poll() is None, "ray head exited"
            assert time.monotonic() < deadline, "ray head did not come up in 120 s"
            time.sleep(2)
        node = subprocess.Popen(
            [str(RAY), "start", f"--address={address}", "--node-ip-address=127.0.0.1", *common],
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        procs.append(node)
        while _nodes(address) < 2:
            assert node.poll() is None, "second ray node exited"
            assert time.monotonic() < deadline, "second ray node did not join in 120 s"
            time.sleep(2)
        yield address
    finally:
        for proc in reversed(procs):
            _stop(proc)


def test_cli_build_on_a_two_node_cluster_equals_local(
    cluster: str, mini_source: Path, tmp_path: Path
) -> None:
    local = tmp_path / "local"
    build_dataset(get_spec("mini"), mini_source, local, BuildOptions(workers=1))
    out = tmp_path / "ray"
    env = {k: v for k, v in _env().items() if k != "RAY_ADDRESS"}
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "medvision.cli.app", "build", str(mini_source), "-o", str(out)),
            *("--engine", "ray", "--ray-address", cluster, "--workers", "2"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    a, b = open_dataset(local), open_dataset(out)
    assert a.manifest.n_samples == b.manifest.n_samples > 0

    def key(ds: object) -> set[tuple[object, ...]]:
        return {(s.sample_id, s.split, s.target, s.image_key) for s in ds.samples()}  # type: ignore[attr-defined]

    assert key(a) == key(b)
    assert b.manifest.options.get("engine") == "ray"
