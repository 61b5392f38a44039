"""scripts/setup.sh's choice of where torch comes from (`--torch-plan`: nothing installed): the
CPU wheel index on Linux without an NVIDIA GPU, the default index with a GPU or when the CPU
index does not answer. Local servers stand in for the index; no test reaches the network."""

import http.server
import os
import socket
import subprocess
import sys
import threading

import pytest
from conftest import ROOT

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the plan differs off Linux")


def plan(tmp_path, index: str, gpu: bool = False) -> str:
    fake_smi = tmp_path / "nvidia-smi"
    fake_smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H100 (UUID: GPU-0)'\n")
    fake_smi.chmod(0o755)
    env = dict(
        os.environ,
        TORCH_CPU_INDEX=index,
        TORCH_INDEX_TIMEOUT_S="1",
        NVIDIA_SMI=str(fake_smi) if gpu else str(tmp_path / "no-nvidia-smi"),
        NVIDIA_PROC=str(tmp_path / "no-driver"),
        PYTHON=sys.executable,
    )
    had_venv = (ROOT / ".venv").exists()
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "setup.sh"), "--torch-plan"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert (ROOT / ".venv").exists() == had_venv  # --torch-plan installs nothing
    return done.stdout.strip()


@pytest.fixture
def index(tmp_path):
    """A local wheel index with a torch/ page, served on 127.0.0.1."""
    root = tmp_path / "index"
    (root / "torch").mkdir(parents=True)
    (root / "torch" / "index.html").write_text("<a href='torch-2.13.0+cpu.whl'>torch</a>")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_linux_without_a_gpu_takes_the_cpu_index(tmp_path, index):
    assert plan(tmp_path, index) == f"cpu-index {index}"


def test_an_nvidia_gpu_keeps_the_default_cuda_build(tmp_path, index):
    assert plan(tmp_path, index, gpu=True).startswith("default: an NVIDIA GPU is present")


def test_a_closed_port_falls_back_to_the_default_index(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the socket goes
    assert plan(tmp_path, f"http://127.0.0.1:{port}").startswith(
        "default: PyTorch's CPU index did not answer within 1s"
    )


def test_an_index_that_never_answers_is_given_up_on(tmp_path):
    with socket.socket() as silent:  # accepts connections (the backlog), never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        assert plan(tmp_path, url).startswith("default: PyTorch's CPU index did not answer")
