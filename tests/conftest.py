"""Shared fixtures: offline tokenizer and data, a temp runs dir, tiny configs that train in seconds."""

import os
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"

# One thread per process: the e2e tests run the app, an engine and pytest at once on 2 cores,
# and torch threads spinning against each other there cost 20x (measured).
os.environ.setdefault("OMP_NUM_THREADS", "1")

# No test reaches the network: the tokenizer and tiny shakespeare come from this workplace's copy.
if SHARED_DATA.is_dir():
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(SHARED_DATA / "tiktoken_cache"))
    os.environ.setdefault("GPT_DATA_DIR", str(SHARED_DATA))


WAIT_S = 180  # generous: this machine's two cores are shared with other test runs


def wait_for(predicate, what: str, timeout: float = WAIT_S):
    """The first truthy value of predicate(), polled until timeout (then an AssertionError)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="session", autouse=True)
def _cache_dir(tmp_path_factory):
    """Token caches and the CPU peak measurement go to one temp folder for the whole session."""
    path = tmp_path_factory.mktemp("gpt-cache")
    os.environ["GPT_CACHE_DIR"] = str(path)
    yield path


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    path = tmp_path / "runs"
    path.mkdir()
    monkeypatch.setenv("GPT_RUNS_DIR", str(path))
    return path


@pytest.fixture(scope="session")
def shakespeare_path() -> Path:
    path = SHARED_DATA / "tinyshakespeare.txt"
    if not path.is_file():
        pytest.skip("tiny shakespeare is not on this machine (../shared/data)")
    return path


@pytest.fixture
def small_text(tmp_path, shakespeare_path) -> Path:
    """About 2,500 tokens of Shakespeare: enough for tiny batches, small enough to overfit."""
    path = tmp_path / "small.txt"
    path.write_text(shakespeare_path.read_text()[:10_000])
    return path


def make_tiny_config(data: Path, **overrides):
    """A 2-layer, 32-wide model that takes a few seconds for a few dozen steps on a CPU."""
    from core.config import TrainConfig

    return TrainConfig(
        **{
            **dict(
                n_layer=2,
                n_head=2,
                n_embd=32,
                block_size=32,
                seq_len=32,
                micro_batch_size=4,
                grad_accum_steps=2,
                max_lr=3e-3,
                min_lr=3e-4,
                warmup_steps=3,
                max_steps=12,
                eval_interval=5,
                eval_batches=2,
                sample_tokens=8,
                checkpoint_interval=5,
                keep_checkpoints=0,
                target_loss=0.0,
                dynamics_every=0,  # the per-eval probes cost seconds; tests that need them opt in
                data=str(data),
                device="cpu",
                seed=7,
            ),
            **overrides,
        }
    )


@pytest.fixture
def tiny_config(small_text):
    return make_tiny_config(small_text)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, shakespeare_path):
    """A completed tiny run with checkpoints, metrics, eval and sample lines (trained once)."""
    from core.store.rundir import RunDir
    from core.train.engine import train

    text = tmp_path_factory.mktemp("data") / "small.txt"
    text.write_text(shakespeare_path.read_text()[:10_000])
    run = RunDir.create(tmp_path_factory.mktemp("runs"), "trained", make_tiny_config(text))
    assert train(str(run.path)) == "completed"
    return run


# --- end-to-end: a real `streamlit run` and headless Chromium ----------------------------------
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def streamlit_app(runs_dir):
    """Start `streamlit run dashboard/app.py` on 127.0.0.1 against runs_dir; yields its URL."""
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    port = _free_port()
    env = {**os.environ, "GPT_RUNS_DIR": str(runs_dir), "PYTHONUNBUFFERED": "1"}
    log = open(runs_dir.parent / "streamlit.log", "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "dashboard" / "app.py"),
            "--server.headless",
            "true",
            "--server.address",
            "127.0.0.1",
            "--server.port",
            str(port),
            "--browser.gatherUsageStats",
            "false",
            "--server.fileWatcherType",
            "none",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            pass
        assert proc.poll() is None and time.time() < deadline, (
            runs_dir.parent / "streamlit.log"
        ).read_text()
        time.sleep(0.3)
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=20)
    log.close()


@pytest.fixture(scope="session")
def chromium():
    """A headless Chromium driven by Playwright (Debian's /usr/bin/chromium, never a download)."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("GPT_REQUIRE_BROWSER"):
            pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
        pytest.skip(f"browser tests need {CHROMIUM} (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium):
    """A fresh browser page (1400 x 1000); screenshot(page, name) saves under artifacts/."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


def screenshot(page, name: str) -> Path:
    """A screenshot of the whole page under artifacts/screenshots/. Streamlit scrolls inside its
    main block, not the document, so the viewport grows to the content's height for the shot."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.evaluate("document.activeElement && document.activeElement.blur()")  # no focus ring
    size = page.viewport_size
    height = page.evaluate("""() => {
      const main = document.querySelector('[data-testid="stMain"]');
      return main ? main.scrollHeight : document.body.scrollHeight;
    }""")
    page.set_viewport_size(
        {"width": size["width"], "height": max(size["height"], min(height, 8000))}
    )
    page.wait_for_timeout(800)  # charts re-lay out to the new size
    try:
        page.screenshot(path=str(path), full_page=True)
    finally:
        page.set_viewport_size(size)
        page.wait_for_timeout(300)
    return path


def wait_for_app(page) -> None:
    """Wait until Streamlit has rendered and finished running the page's script."""
    page.wait_for_selector('[data-testid="stApp"]')
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]')


@pytest.fixture
def open_app(monkeypatch):
    """Open one page of the app with AppTest against a runs dir: open_app(view, runs_path).
    Cached models are cleared around each test (st.cache_resource is process-wide)."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    def open_page(view: str, runs_path: Path) -> AppTest:
        monkeypatch.setenv("GPT_RUNS_DIR", str(runs_path))
        at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=60)
        at.run()
        return at.switch_page(view).run()

    st.cache_resource.clear()
    yield open_page
    st.cache_resource.clear()


@pytest.fixture
def sleeper():
    """A live process in its own session, standing in for a run's engine."""
    proc = subprocess.Popen(["sleep", "120"], start_new_session=True)
    yield proc
    proc.kill()
    proc.wait()
