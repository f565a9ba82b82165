"""The MLflow UI over modevo's runs, and a small client for its REST API.

`serve()` starts `python -m mlflow server` on the training store (sqlite:///<runs_dir>/mlflow.db, artifacts
under <runs_dir>/artifacts), bound to 127.0.0.1 unless another host is asked for explicitly.

Comparing a factor's conditions side by side
--------------------------------------------
Every training run of the experiment "modevo" carries the same tag names (view, paper_name, factors, scale,
budget, seed, corpus_hash, view_hash, code_version, precision, tokenizer, rendering, run_dir) and, once
`modevo eval` has scored it, the same metric names (modevo/score/tracking.py):

    eval/<task>/acc          step = tokens seen (one point per scored checkpoint: the learning curve)
    eval/<task>/layer_acc    step = layer (final checkpoint: the layer curve)
    tags task_hash.<task>, protocol_hash   (runs compare only when these agree)

`modevo ui` prints the address of the experiment's runs list (`#/experiments/<id>/runs`: MLflow 3 would
otherwise open on its GenAI overview). There, type a filter in the search box, e.g.

    tags.factors LIKE '%C%' AND tags.scale = 'smoke'

(factors is comma-separated, "A", "B,C" or "none", hence LIKE), tick the runs, press Compare. The
comparison page lines up their tags (check that corpus_hash, protocol_hash and task_hash.<task> agree) and
plots any metric across runs; for eval/<task>/layer_acc the x axis is the metric step, i.e. the layer,
and for eval/<task>/acc it is tokens seen. Grouping the run table by tags.view averages seeds.

The same search from code: `find_runs_by_tags(url, factors="C", scale="smoke")`, and a curve:
`metric_history(url, run_id, "eval/sblimp/layer_acc")`.

    python -m modevo.report.ui --runs-dir runs --port 5000      (or `make ui PORT=5000`)
"""

from __future__ import annotations

import argparse
import atexit
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from modevo.errors import InputError, ModevoError

log = logging.getLogger(__name__)

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
WILDCARD = {"0.0.0.0", "::", ""}
START_TIMEOUT_S = 60.0


def _tracking_uri(runs_dir: Path) -> str:
    return f"sqlite:///{runs_dir / 'mlflow.db'}"


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` right now (the OS picks it)."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_free(host: str, port: int) -> bool:
    """Whether a server could bind host:port now (SO_REUSEADDR, as uvicorn binds)."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


# the runs tab of an experiment in MLflow 3's single-page app (a hash route; mlflow/server/js routes.ts:
# experimentPageTabRuns = "/experiments/:experimentId/runs"); the bare server address opens elsewhere
RUNS_ROUTE = "/#/experiments/{experiment_id}/runs"


def experiment_id(url: str, experiment: str = "modevo") -> str | None:
    """The id of `experiment` as the MLflow server at `url` knows it, None if it has none (or does not say)."""
    try:
        exp = _request(url, "/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": experiment},
                       timeout=10.0)["experiment"]
    except (InputError, KeyError, TypeError):
        return None
    return exp.get("experiment_id") if exp.get("lifecycle_stage", "active") == "active" else None


def runs_list_url(url: str, experiment: str = "modevo") -> str:
    """The browser address of `experiment`'s runs list on the UI at `url` (the bare address when the store
    has no such experiment yet)."""
    exp_id = experiment_id(url, experiment)
    return url.rstrip("/") + RUNS_ROUTE.format(experiment_id=exp_id) if exp_id is not None else url


def _url(host: str, port: int) -> str:
    h = "127.0.0.1" if host in WILDCARD else host
    return f"http://[{h}]:{port}" if ":" in h else f"http://{h}:{port}"


def _error_line(text: str) -> str:
    """The line of a server log that says what went wrong: the last exception or error line, else the last line."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.startswith("(Background on this error") or ln.startswith("[SQL:"):
            continue
        head = ln.split(":", 1)[0]
        if head.endswith(("Error", "Exception", "Exit")) or "ERROR" in ln or "[Errno" in ln:
            return ln
    return lines[-1] if lines else "(no output)"


def _group_alive(pgid: int) -> bool:
    """Whether any live (non-zombie) process is left in process group `pgid`."""
    proc = Path("/proc")
    if proc.is_dir():
        for d in proc.iterdir():
            if not d.name.isdigit():
                continue
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2:].split()  # state ppid pgrp ...
            if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                return True
        return False
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class UIServer:
    """A running MLflow UI: `.url`, `.stop()`; also a context manager. Its process group (the mlflow CLI
    and the uvicorn worker it starts) is stopped as a whole, at the latest when this Python process exits."""

    def __init__(self, process: subprocess.Popen, url: str, host: str, port: int, command: list[str],
                 log_path: Path):
        self.process = process
        self.pgid = process.pid  # start_new_session=True: the server leads its own process group
        self.url = url
        self.host = host
        self.port = port
        self.command = command
        self.log_path = log_path
        self.runs_url = url  # the experiment's runs list, once start() has looked its id up
        atexit.register(self.stop)

    def __repr__(self) -> str:
        return f"UIServer(url={self.url!r}, pid={self.process.pid}, running={self.running})"

    def __enter__(self) -> UIServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self.process.poll() is None or _group_alive(self.pgid)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to the server's process group, wait up to `timeout` s, then SIGKILL; idempotent."""
        atexit.unregister(self.stop)
        if self.running:
            self._signal_group(signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while self.running and time.monotonic() < deadline:
                try:
                    self.process.wait(timeout=0.1)
                except subprocess.TimeoutExpired:
                    pass
            if self.running:
                self._signal_group(signal.SIGKILL)
                try:
                    self.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
                deadline = time.monotonic() + 5
                while _group_alive(self.pgid) and time.monotonic() < deadline:
                    time.sleep(0.05)
        try:
            self.log_path.unlink()
        except OSError:
            pass

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> float:
        """Poll GET /health until the server answers 200; returns the seconds it took. A server that exits
        first, or never answers, is stopped and reported as one InputError line."""
        t0 = time.monotonic()
        while True:
            rc = self.process.poll()
            if rc is not None:
                line = _error_line(self.log_text())
                self.stop()
                raise InputError(f"the MLflow UI did not start (exit status {rc}): {line}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                    if r.status == 200:
                        return time.monotonic() - t0
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() - t0 > timeout:
                line = _error_line(self.log_text())
                self.stop()
                raise InputError(f"the MLflow UI did not answer at {self.url} within {timeout:.0f} s "
                                 f"(last server output: {line})")
            time.sleep(0.25)


def _die_with_parent():
    """On Linux, from the main thread: a preexec_fn asking the kernel to SIGTERM the server (which passes it
    on to its uvicorn worker) if this process dies without stopping it (SIGKILL, a crash). The signal
    follows the thread that started the server, so from other threads only atexit and stop() apply."""
    import threading

    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None

    def preexec() -> None:
        prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG

    return preexec


def server_command(runs_dir: Path, tracking_uri: str, host: str, port: int) -> list[str]:
    """The argument list that starts the server (never a shell string)."""
    artifacts = str(runs_dir / "artifacts")
    return [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", tracking_uri,
            "--default-artifact-root", artifacts, "--artifacts-destination", artifacts,
            "--host", host, "--port", str(port), "--workers", "1"]


def start(runs_dir: str | Path = "runs", tracking_uri: str | None = None, host: str = "127.0.0.1",
          port: int = 5000, timeout: float = START_TIMEOUT_S, experiment: str = "modevo") -> UIServer:
    """Start the MLflow UI and return once it answers (see serve); `.runs_url` is `experiment`'s runs list."""
    runs_dir = Path(runs_dir).resolve()
    uri = tracking_uri or _tracking_uri(runs_dir)
    if uri.startswith(("http://", "https://")):
        raise InputError(f"{uri} is already a tracking server: open it in a browser")
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file():
        raise InputError(f"no MLflow store at {uri[len('sqlite:///'):]}: train a run first (modevo train) "
                         "or pass --runs-dir / --tracking-uri")
    if host not in LOOPBACK:
        log.warning("the MLflow UI binds to %s: it is reachable from the network, with no login", host)
    if not port:
        port = free_port("127.0.0.1" if host in WILDCARD else host)
    elif not port_free(host, port):
        raise InputError(f"port {port} on {host} is in use (another MLflow UI?): pass another port "
                         "(--port, or PORT= for make ui)")
    cmd = server_command(runs_dir, uri, host, port)
    env = dict(os.environ)
    # a local viewer needs neither MLflow's job runner (extra worker processes) nor its telemetry
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    fd, log_name = tempfile.mkstemp(prefix="modevo-ui-", suffix=".log")
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=fd, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True, preexec_fn=_die_with_parent())
    except BaseException:
        os.unlink(log_name)
        raise
    finally:
        os.close(fd)
    handle = UIServer(proc, _url(host, port), host, port, cmd, Path(log_name))

    try:
        handle.wait_ready(timeout)
        handle.runs_url = runs_list_url(handle.url, experiment)  # the store's own id, asked of the server
    except BaseException:  # InputError, or Ctrl-C while waiting: the server never outlives the call
        handle.stop()
        raise
    return handle


def open_in_browser(url: str) -> bool:
    """Open `url` in the desktop's browser; False (nothing opened) where there is no desktop. Without a display
    Python's webbrowser would pick a console browser (lynx, w3m) and take over the terminal serving the UI."""
    import webbrowser

    desktop = sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or
                                                             os.environ.get("WAYLAND_DISPLAY"))
    if not desktop:
        return False
    try:
        return bool(webbrowser.open(url, new=2))
    except webbrowser.Error:
        return False


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def serve(runs_dir: str | Path = "runs", tracking_uri: str | None = None, host: str = "127.0.0.1",
          port: int = 5000, block: bool = True, timeout: float = START_TIMEOUT_S,
          browser: bool = False) -> UIServer | None:
    """Start the MLflow UI over <runs_dir>/mlflow.db (or `tracking_uri`), artifacts in <runs_dir>/artifacts.

    Binds to 127.0.0.1 unless `host` names another interface (then a one-line warning: it is reachable
    from the network). port=0 picks a free port. block=False returns a UIServer once it answers (`.url`,
    `.stop()`); block=True prints the URL (and with `browser` opens it on a desktop) and serves until Ctrl-C,
    then stops it and returns None.
    A missing store, a busy port or a server that dies or never answers is one InputError line."""
    handle = start(runs_dir, tracking_uri, host, port, timeout)
    if not block:
        return handle
    if handle.runs_url != handle.url:
        print(f"MLflow UI: the runs of experiment 'modevo' at {handle.runs_url} (Ctrl-C stops it)", flush=True)
    else:
        print(f"MLflow UI at {handle.url} (no experiment 'modevo' in the store yet; Ctrl-C stops it)", flush=True)
    if browser and not open_in_browser(handle.runs_url):
        bound = urllib.parse.urlparse(handle.url).port
        print("(no desktop browser here: open the address above in yours; over ssh, forward the port first: "
              f"ssh -L {bound}:127.0.0.1:{bound} <this machine>)", flush=True)
    previous = {}
    try:
        # the server runs in its own session, so a closed terminal or a kill reaches only this process:
        # turn SIGTERM and SIGHUP into Ctrl-C so that it stops the server too
        for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
            if sig is not None:
                try:
                    previous[sig] = signal.signal(sig, _interrupt)
                except ValueError:  # not the main thread: Ctrl-C and atexit still stop it
                    break
        rc = handle.process.wait()
    except KeyboardInterrupt:
        handle.stop()
        print(f"stopped the MLflow UI at {handle.url}", flush=True)
        return None
    finally:
        for sig, h in previous.items():
            signal.signal(sig, h)
    line = _error_line(handle.log_text())
    handle.stop()
    raise InputError(f"the MLflow UI exited (status {rc}): {line}")


# ---- REST client (urllib only) ----

def _request(url: str, path: str, body: dict | None = None, params: dict | None = None,
             timeout: float = 30.0) -> dict:
    full = url.rstrip("/") + path + ("?" + urllib.parse.urlencode(params) if params else "")
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(full, data=data, method="GET" if body is None else "POST",
                                 headers={"Content-Type": "application/json", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        try:
            err = json.loads(e.read() or b"{}")
        except ValueError:
            err = {}
        if err.get("error_code") == "RESOURCE_DOES_NOT_EXIST":
            raise InputError(f"MLflow at {url}: {err.get('message', 'not found')}") from None
        raise InputError(f"MLflow at {url} refused {path}: HTTP {e.code} "
                         f"{err.get('message') or e.reason}".splitlines()[0]) from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise InputError(f"no MLflow server answers at {url}: {reason}") from None


def _quote(value: str) -> str:
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise InputError(f"a tag value cannot hold both quote characters: {value!r}")


def tag_filter(**tags) -> str:
    """An MLflow search filter from tag values: `factors` is matched per factor (its tag is comma-separated,
    so factors="B,C" needs both), a value with % is a LIKE pattern, anything else must equal the tag."""
    parts = []
    for key, value in tags.items():
        if value is None:
            continue
        col = f"tags.`{key}`"
        value = str(value)
        if key == "factors" and "%" not in value and value != "none":
            parts += [f"{col} LIKE {_quote('%' + f.strip() + '%')}" for f in value.split(",") if f.strip()]
        elif "%" in value:
            parts.append(f"{col} LIKE {_quote(value)}")
        else:
            parts.append(f"{col} = {_quote(value)}")
    return " AND ".join(parts)


def find_runs_by_tags(url: str, experiment: str = "modevo", **tags) -> list[dict]:
    """Active runs of `experiment` on the server at `url` whose tags match (see tag_filter), oldest first:
    [{"run_id", "run_name", "status", "tags": {...}, "metrics": {key: latest value}}]. Tag names with dots
    go through a dict: find_runs_by_tags(url, **{"task_hash.sblimp": h})."""
    exp = _request(url, "/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": experiment})
    exp_id = exp["experiment"]["experiment_id"]
    body = {"experiment_ids": [exp_id], "filter": tag_filter(**tags), "run_view_type": "ACTIVE_ONLY",
            "max_results": 1000, "order_by": ["attributes.start_time ASC"]}
    out = []
    while True:
        page = _request(url, "/api/2.0/mlflow/runs/search", body=body)
        for r in page.get("runs", []):
            info, data = r["info"], r.get("data", {})
            out.append({"run_id": info["run_id"], "run_name": info.get("run_name", ""),
                        "status": info.get("status", ""),
                        "tags": {t["key"]: t["value"] for t in data.get("tags", [])},
                        "metrics": {m["key"]: m["value"] for m in data.get("metrics", [])}})
        if not page.get("next_page_token"):
            return out
        body["page_token"] = page["next_page_token"]


def metric_history(url: str, run_id: str, key: str) -> list[tuple[int, float]]:
    """One metric's points [(step, value)] by step: for eval/<task>/layer_acc the step is the layer."""
    params = {"run_id": run_id, "metric_key": key, "max_results": 25000}
    points = []
    while True:
        page = _request(url, "/api/2.0/mlflow/metrics/get-history", params=params)
        points += [(int(m.get("step", 0)), float(m["value"])) for m in page.get("metrics", [])]
        if not page.get("next_page_token"):
            return sorted(points)
        params["page_token"] = page["next_page_token"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m modevo.report.ui", description="the MLflow UI over modevo's runs")
    p.add_argument("--runs-dir", default="runs", help="folder holding mlflow.db and artifacts/ (default: runs)")
    p.add_argument("--tracking-uri", default=None, help="another store (default: sqlite:///<runs-dir>/mlflow.db)")
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to bind (default 127.0.0.1; any other makes the UI reachable from the network)")
    p.add_argument("--port", type=int, default=5000, help="0 picks a free port (default 5000)")
    args = p.parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("modevo: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        serve(args.runs_dir, args.tracking_uri, args.host, args.port, block=True)
    except ModevoError as e:
        print(f"modevo: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C while it was starting: start() has stopped it already
        print("modevo: interrupted; the MLflow UI is stopped", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
