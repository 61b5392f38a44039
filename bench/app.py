"""The app in a real browser: first paint, page switches, reruns, a Live refresh and the
Playground's first token.

    python bench/app.py                  # an empty runs directory, then 20 runs
    python bench/app.py --runs 20 --keep

For each runs directory it starts `streamlit run dashboard/app.py` on 127.0.0.1 (a free port)
and drives headless Chromium (/usr/bin/chromium through playwright; never a download). The 20
runs: 18 short fake ones and one of 100,000 steps, written through core.store.rundir and
core.store.metrics (the long one is 'running': this process is its pid and appends to it), and one
nano run trained for a few steps with core.train.engine.train, whose checkpoint the Playground loads.
Measured:
- first paint: from spawning `streamlit run` to the title and the first table (or, with no runs,
  the first message) drawn; also when the health check first answered;
- page switch: a sidebar link clicked -> the page's script finished with its title drawn
  (first visit, --pause seconds after the first paint, and again);
- rerun: a widget touched on each page -> its script finished (median of --repeats);
- live refresh: a train record appended -> the Live loss chart shows it (includes waiting for
  the page's refresh timer, 1.5 s);
- playground: the checkpoint's run chosen -> model loaded; Generate pressed -> first token drawn.
Targets on an idle machine: first paint < 3 s, switch < 0.5 s, rerun < 0.3 s, first token < 2 s.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common

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
TARGETS = {"first paint": 3.0, "page switch": 0.5, "rerun": 0.3, "first token": 2.0}
PAGES = ("New run", "Live metrics", "Playground", "Model info", "Runs")
LONG_RUN, CKPT_RUN = "long-100k", "nano-checkpoint"
# Records when Streamlit's script starts and stops running (the stApp attribute) and when each
# websocket message arrives, in page time.
SCRIPT_STATE_JS = """() => {
  window.__runs = [];
  window.__ws = [];
  const Socket = window.WebSocket;
  window.WebSocket = function (...args) {
    const ws = new Socket(...args);
    ws.addEventListener('message', () => window.__ws.push(performance.now()));
    return ws;
  };
  Object.assign(window.WebSocket, Socket);
  window.WebSocket.prototype = Socket.prototype;
  const watch = () => {
    const app = document.querySelector('[data-testid="stApp"]');
    if (!app) { requestAnimationFrame(watch); return; }
    new MutationObserver(() => window.__runs.push(
        [performance.now(), app.getAttribute('data-test-script-state')]))
      .observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
  };
  watch();
}"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python bench/app.py",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--runs",
        type=int,
        nargs="+",
        default=[0, 20],
        choices=[0, 20],
        help="runs directories to measure: empty and/or 20 runs",
    )
    parser.add_argument("--repeats", type=common.positive, default=3, help="reruns timed per page")
    parser.add_argument(
        "--long-steps", type=common.positive, default=100_000, help="train records of the long run"
    )
    parser.add_argument(
        "--pause",
        type=float,
        default=5.0,
        help="seconds between the first paint and the first page switch (a "
        "user's first look; the server loads torch meanwhile)",
    )
    parser.add_argument("--screenshots", type=Path, help="save a screenshot of each page here")
    parser.add_argument("--keep", action="store_true", help="keep the runs directory and print it")
    return parser


# --- the runs --------------------------------------------------------------------------------


def fake_run(root: Path, run_id: str, steps: int, state: str, max_steps: int, seed: int) -> None:
    """A run whose files look like the engine's: config, status, train/eval/sample records."""
    from core.config import preset
    from core.store import metrics
    from core.store.rundir import RunDir

    run = RunDir.create(root, run_id, preset("nano", max_steps=max_steps, seed=seed))
    log, t = metrics.MetricsLog(run.metrics_path), 1.7e9
    log.write("start", 0, t, resumed=False, world_size=1, max_steps=max_steps)
    for step in range(1, steps + 1):
        t += 0.05
        loss = 0.5 + 10 * 0.999**step + 0.01 * (step * 7919 % 13)
        log.write(
            "train",
            step,
            t,
            loss=loss,
            lr=3e-3,
            grad_norm=0.7,
            dt_ms=50.0,
            tokens_per_sec=10240.0,
            tokens_seen=step * 512,
            train_time_s=step * 0.05,
        )
        if step % 100 == 0:
            log.write("eval", step, t, val_loss=loss + 0.1)
        if step % 500 == 0:
            log.write("sample", step, t, prompt="ROMEO:", text=" what light through yonder")
    log.close()
    ended = None if state == "running" else t
    run.write_status(
        state=state,
        step=steps,
        max_steps=max_steps,
        pid=os.getpid(),
        started=1.7e9,
        ended=ended,
        host=socket.gethostname(),
        world_size=1,
        reason=None,
    )


def checkpoint_run(root: Path) -> None:
    """A nano run trained for two steps: a real checkpoint for the Playground."""
    from core.config import preset
    from core.store.rundir import RunDir
    from core.train.engine import train

    cfg = preset(
        "nano", max_steps=2, eval_interval=0, checkpoint_interval=0, device="cpu", warmup_steps=1
    )
    run = RunDir.create(root, CKPT_RUN, cfg)
    assert train(str(run.path)) == "completed", run.log_path.read_text()[-2000:]


def make_runs(root: Path, long_steps: int) -> None:
    """The checkpoint's run first: the newest run (the long one) is what pages open on, so the
    Playground loads the checkpoint only when the bench chooses it."""
    checkpoint_run(root)
    for i in range(18):
        state = ("completed", "stopped", "failed")[i % 3]
        fake_run(root, f"run-{i:02d}", 200 + 37 * i, state, 1000, seed=i)
    fake_run(root, LONG_RUN, long_steps, "running", 2 * long_steps, seed=99)


def append_step(root: Path, step: int) -> None:
    """One more train record on the long run (the Live page should draw it)."""
    from core.store import metrics

    log = metrics.MetricsLog(root / LONG_RUN / "metrics.jsonl")
    log.write(
        "train",
        step,
        time.time(),
        loss=0.4,
        lr=3e-3,
        grad_norm=0.7,
        dt_ms=50.0,
        tokens_per_sec=10240.0,
        tokens_seen=step * 512,
        train_time_s=step * 0.05,
    )
    log.close()


# --- the server and the browser --------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(runs_dir: Path, log_path: Path) -> tuple[subprocess.Popen, str, float]:
    """Spawn `streamlit run` against runs_dir; returns (process, URL, spawn time)."""
    port = free_port()
    env = {**os.environ, "GPT_RUNS_DIR": str(runs_dir)}
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(common.ROOT / "dashboard" / "app.py"),
        "--server.headless",
        "true",
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--browser.gatherUsageStats",
        "false",
    ]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        cwd=common.ROOT,
        env=env,
        stdout=open(log_path, "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return proc, f"http://127.0.0.1:{port}", t0


def wait_healthy(proc: subprocess.Popen, url: str, log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"streamlit did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.02)


def stop_app(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)


# The first end of a script run after t (ms, page clock): a run that was going at t counts (a
# fragment's timer may have started one that the user's action then continues). A rerun so fast
# that the page never shows it running ends with its last message (none for QUIET_MS after it).
QUIET_MS = 300
DONE_AFTER_JS = """(t) => {
  const before = window.__runs.filter(e => e[0] < t), after = window.__runs.filter(e => e[0] >= t);
  let going = before.length > 0 && before[before.length - 1][1] === 'running';
  for (const [when, state] of after) {
    if (state === 'running') going = true;
    else if (going) return when - t;
  }
  const messages = window.__ws.filter(m => m >= t);
  const last = messages[messages.length - 1];
  return messages.length && performance.now() - last > QUIET_MS ? last - t : null;
}""".replace("QUIET_MS", str(QUIET_MS))
# The page with this title drawn and its script finished.
PAGE_DONE_JS = """([t, title]) => {
  const app = document.querySelector('[data-testid="stApp"]');
  const titled = [...document.querySelectorAll('h1')].some(h => h.innerText.trim() === title);
  return titled && app.getAttribute('data-test-script-state') === 'notRunning'
    ? performance.now() - t : null;
}"""


def script_done_after(page, t_start: float, timeout_s: float = 120) -> float:
    """Seconds from t_start (page clock, ms) until the script run it started has ended."""
    handle = page.wait_for_function(
        DONE_AFTER_JS, arg=t_start, timeout=timeout_s * 1000, polling=10
    )
    return handle.json_value() / 1000


def now_ms(page) -> float:
    return page.evaluate("performance.now()")


def heading(page, title: str):
    return page.locator("h1").filter(has_text=re.compile(f"^{re.escape(title)}$"))


def first_paint(page, url: str, t0: float, has_runs: bool) -> float:
    """Open the app; seconds from spawn (t0) until the title and first table/message are drawn."""
    page.goto(url, wait_until="commit")
    heading(page, "Runs").wait_for(timeout=120_000)
    first = '[data-testid="stDataFrame"] canvas' if has_runs else '[data-testid="stAlert"]'
    page.wait_for_selector(first, timeout=120_000)
    return time.perf_counter() - t0


def switch(page, title: str) -> float:
    """Click a sidebar link; seconds until that page's script finished with its title drawn."""
    link = page.locator('[data-testid="stSidebarNav"] a').filter(
        has_text=re.compile(re.escape(title) + "$")
    )
    t = now_ms(page)
    link.click()
    handle = page.wait_for_function(PAGE_DONE_JS, arg=[t, title], timeout=120_000, polling=10)
    return handle.json_value() / 1000


def choose(page, key: str, option: str) -> float:
    """Pick an option of a select box; seconds until the rerun it starts has finished."""
    page.locator(f".st-key-{key}").get_by_role("button", name="Open").click()
    option_el = page.get_by_role("option", name=option, exact=True)
    t = now_ms(page)
    option_el.click()
    return script_done_after(page, t)


def type_number(page, key: str, value: int) -> float:
    """Type into a number input and press Enter; seconds until the rerun has finished."""
    box = page.locator(f".st-key-{key} input")
    box.fill(str(value))
    t = now_ms(page)
    box.press("Enter")
    return script_done_after(page, t)


def click(page, selector: str) -> float:
    t = now_ms(page)
    page.locator(selector).first.click()
    return script_done_after(page, t)


# --- what is measured ------------------------------------------------------------------------


def rerun_actions(has_runs: bool) -> dict:
    """A widget to touch on each page, as a function of the page and the attempt number."""
    actions = {"New run": lambda page, i: type_number(page, "nr_n_layer", 3 + i % 2)}
    if has_runs:
        actions.update(
            {
                "Runs": lambda page, i: choose(page, "runs_selected", f"run-0{i % 3}"),
                "Live metrics": lambda page, i: click(page, ".st-key-live_log label"),
                "Model info": lambda page, i: choose(page, "mi_run", f"run-0{i % 3}"),
            }
        )
    return actions


def measure_pages(page, args, has_runs: bool, shots: Path | None, label: str) -> list[dict]:
    rows = []
    for round_name in ("first visit", "again"):
        for title in PAGES:
            rows.append(
                row(label, f"page switch ({round_name})", title, switch(page, title), "page switch")
            )
            if shots and round_name == "again":
                page.screenshot(
                    path=str(
                        shots / f"bench-{label.replace(' ', '')}-{title.replace(' ', '-')}.png"
                    )
                )
    for title, action in rerun_actions(has_runs).items():
        switch(page, title)
        times = [action(page, i) for i in range(args.repeats)]
        rows.append(
            row(
                label, f"rerun (median of {args.repeats})", title, statistics.median(times), "rerun"
            )
        )
    return rows


LAST_X_JS = """(step) => {
  const box = document.querySelector('.st-key-live_chart_loss .js-plotly-plot');
  return !!box && !!box._fullData && box._fullData.some(t => t.x && t.x[t.x.length - 1] >= step);
}"""


def live_refresh(page, root: Path, step: int) -> float:
    """Append a step to the long run; seconds until the Live loss chart draws it."""
    switch(page, "Runs")
    choose(page, "runs_selected", LONG_RUN)  # the Live page opens on the selected run
    switch(page, "Live metrics")
    page.wait_for_selector(".st-key-live_chart_loss .main-svg", timeout=60_000)
    js = LAST_X_JS
    t0 = time.perf_counter()
    append_step(root, step)
    page.wait_for_function(js, arg=step, timeout=60_000, polling=20)
    return time.perf_counter() - t0


FIRST_TOKEN_JS = """() => [...document.querySelectorAll('[data-testid="stProgress"]')]
  .some(p => /^[1-9][0-9]* \\/ /.test(p.innerText.trim()))"""


def playground(page, repeats: int) -> tuple[float, float, float]:
    """(seconds from choosing the checkpoint's run to its model loaded, from pressing Generate
    to the first token drawn, median rerun after a checkbox is touched)."""
    switch(page, "Playground")
    loaded = choose(page, "pg_run", CKPT_RUN)
    page.locator(".st-key-pg_generate button").wait_for()
    t0 = time.perf_counter()
    page.locator(".st-key-pg_generate button").click()
    page.wait_for_function(FIRST_TOKEN_JS, timeout=60_000, polling=10)
    token = time.perf_counter() - t0
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]')
    reruns = [click(page, ".st-key-pg_greedy label") for _ in range(repeats)]
    return loaded, token, statistics.median(reruns)


LOCAL = re.compile(r"^(https?://(127\.0\.0\.1|localhost)[:/]|data:|blob:)")


def row(runs: str, measure: str, page: str, seconds: float, target: str | None = None) -> dict:
    """One line of the table, with the load average when it was measured."""
    limit = TARGETS.get(target)
    return dict(
        runs=runs,
        measure=measure,
        page=page,
        seconds=seconds,
        target=limit,
        met=None if limit is None else seconds < limit,
        load_1m=round(os.getloadavg()[0], 2),
    )


def with_runs(page, args, root: Path, label: str) -> list[dict]:
    """The figures that need runs: a Live refresh, the Playground's model and first token."""
    rows = [
        row(
            label,
            "live refresh (append -> drawn)",
            "Live metrics",
            live_refresh(page, root, args.long_steps + 1),
        )
    ]
    loaded, token, rerun = playground(page, args.repeats)
    return rows + [
        row(label, f"rerun (median of {args.repeats})", "Playground", rerun, "rerun"),
        row(label, "checkpoint chosen -> model loaded", "Playground", loaded),
        row(label, "first token (Generate -> drawn)", "Playground", token),
        row(label, "checkpoint chosen -> first token", "Playground", loaded + token, "first token"),
    ]


def new_page(browser, external: list[str]):
    """A browser page that records script runs and every request leaving this machine."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.add_init_script(f"({SCRIPT_STATE_JS})()")
    page.set_default_timeout(120_000)
    page.on("request", lambda r: None if LOCAL.match(r.url) else external.append(r.url))
    return context, page


def measure(args, browser, root: Path, n_runs: int) -> list[dict]:
    """Every figure for one runs directory, on a fresh server."""
    label, log_path, external = f"{n_runs} runs", root.parent / f"streamlit-{n_runs}.log", []
    context, page = new_page(browser, external)
    proc, url, t0 = start_app(root, log_path)
    try:
        wait_healthy(proc, url, log_path)
        rows = [row(label, "health check answers", "-", time.perf_counter() - t0)]
        paint = first_paint(page, url, t0, n_runs > 0)
        rows.append(row(label, "first paint", "Runs", paint, "first paint"))
        page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]')
        page.wait_for_timeout(args.pause * 1000)
        rows += measure_pages(page, args, n_runs > 0, args.screenshots, label)
        if n_runs:
            rows += with_runs(page, args, root, label)
    finally:
        stop_app(proc)
        context.close()
    if external:
        rows.append(dict(runs=label, measure=f"EXTERNAL REQUESTS: {sorted(set(external))}"))
    return rows


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    common.offline_env()
    if args.screenshots:
        args.screenshots.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.TemporaryDirectory(prefix="bench-app-")
    rows = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        for n_runs in sorted(args.runs):
            root = Path(tmp.name) / f"runs-{n_runs}"
            root.mkdir()
            if n_runs:
                make_runs(root, args.long_steps)
            rows += measure(args, browser, root, n_runs)
        browser.close()
    timed = [r for r in rows if r.get("target") is not None]
    result = {
        "targets_met": all(r["met"] for r in timed),
        "first_paint_s": {
            r["runs"]: round(r["seconds"], 2) for r in rows if r["measure"] == "first paint"
        },
        "external_requests": any("EXTERNAL" in r["measure"] for r in rows),
    }
    notes = [
        f"targets (idle machine): {TARGETS}; load_1m: the 1-minute load average when each "
        "figure was taken (above ~1 on a 2-core machine, others slowed these figures)"
    ]
    if args.keep:
        notes.append(f"runs kept in {tmp.name}")
        tmp._finalizer.detach()
    else:
        tmp.cleanup()
    return common.report(
        "app",
        result,
        rows,
        columns=["runs", "measure", "page", "seconds", "target", "met", "load_1m"],
        notes=notes,
    )


if __name__ == "__main__":
    main()
