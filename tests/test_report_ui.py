"""The MLflow UI over a runs folder: started on a free local port, a factor's runs found by their tags
through the REST API, a layer curve read back, then stopped with nothing left behind."""

import json
import logging
import socket
import urllib.parse
import urllib.request

import pytest

from modevo.errors import InputError
from modevo.report import ui

RUNS = [  # (view, factors) as the trainer tags them
    ("text-bpe", "A"),
    ("phone-bpe", "A"),
    ("phone-repeat@varied", "B,C"),
]
LAYER_ACC = {"text-bpe": [0.50, 0.62, 0.71], "phone-bpe": [0.48, 0.55, 0.69], "phone-repeat@varied": [0.5, 0.52, 0.6]}


def make_store(runs_dir):
    """A store like `modevo train` + `modevo eval` leave: experiment modevo, trainer tags, eval metrics."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    runs_dir.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(tracking_uri=f"sqlite:///{runs_dir.resolve() / 'mlflow.db'}")
    exp = client.create_experiment("modevo", artifact_location=str((runs_dir / "artifacts").resolve()))
    ids = {}
    for i, (view, factors) in enumerate(RUNS):
        tags = {"view": view, "paper_name": view, "factors": factors, "scale": "smoke", "budget": "tokens",
                "seed": "0", "corpus_hash": "c0ffee", "view_hash": f"v{i}", "code_version": "test",
                "precision": "32", "tokenizer": "", "rendering": "", "run_dir": str(runs_dir / view),
                "task_hash.sblimp": "t1", "protocol_hash": "p1"}
        run = client.create_run(exp, run_name=f"{view} tokens s0", tags=tags)
        curve = LAYER_ACC[view]
        metrics = [Metric("eval/sblimp/acc", curve[-1] - 0.1 + 0.05 * s, 0, s * 1000) for s in range(3)]
        metrics += [Metric("eval/sblimp/layer_acc", v, 0, layer) for layer, v in enumerate(curve)]
        client.log_batch(run.info.run_id, metrics=metrics)
        client.set_terminated(run.info.run_id)
        ids[view] = run.info.run_id
    return ids


def fake_store(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "mlflow.db").write_bytes(b"")  # serve() checks the file before it starts anything
    return runs


def test_missing_store_is_one_line(tmp_path):
    with pytest.raises(InputError) as e:
        ui.serve(tmp_path / "nowhere", port=ui.free_port(), block=False)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"no MLflow store at {(tmp_path / 'nowhere').resolve() / 'mlflow.db'}: train a run first")


def test_busy_port_is_one_line(tmp_path):
    runs = fake_store(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(InputError, match=f"port {port} on 127.0.0.1 is in use"):
            ui.serve(runs, port=port, block=False)


def test_command_is_an_argument_list_and_other_hosts_warn(tmp_path, monkeypatch, caplog):
    runs = fake_store(tmp_path)
    seen = {}

    def popen(cmd, **kw):
        seen.update(cmd=cmd, kw=kw)
        raise RuntimeError("not started in this test")

    monkeypatch.setattr(ui.subprocess, "Popen", popen)
    with pytest.raises(RuntimeError):  # the default host: no warning
        ui.serve(runs, port=0, block=False)
    assert "--host" in seen["cmd"] and seen["cmd"][seen["cmd"].index("--host") + 1] == "127.0.0.1"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]

    with caplog.at_level(logging.WARNING, logger="modevo.report.ui"), pytest.raises(RuntimeError):
        ui.serve(runs, host="0.0.0.0", port=0, block=False)
    cmd = seen["cmd"]
    assert isinstance(cmd, list) and all(isinstance(a, str) for a in cmd)
    assert not seen["kw"].get("shell") and seen["kw"]["start_new_session"]
    assert cmd[1:4] == ["-m", "mlflow", "server"]
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0"
    assert cmd[cmd.index("--backend-store-uri") + 1] == f"sqlite:///{runs.resolve() / 'mlflow.db'}"
    assert cmd[cmd.index("--default-artifact-root") + 1] == str(runs.resolve() / "artifacts")
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "reachable from the network" in warnings[0] and "\n" not in warnings[0]


def test_tag_filter():
    assert ui.tag_filter(factors="A", scale="smoke") == "tags.`factors` LIKE '%A%' AND tags.`scale` = 'smoke'"
    assert ui.tag_filter(factors="B,C") == "tags.`factors` LIKE '%B%' AND tags.`factors` LIKE '%C%'"
    assert ui.tag_filter(factors="none", view="phone-repeat%") == \
        "tags.`factors` = 'none' AND tags.`view` LIKE 'phone-repeat%'"


@pytest.mark.slow
def test_ui_finds_a_factors_runs_and_stops_cleanly(tmp_path):
    runs = tmp_path / "runs"
    ids = make_store(runs)
    port = ui.free_port()
    handle = ui.serve(runs, port=port, block=False)
    try:
        assert handle.url == f"http://127.0.0.1:{port}"  # bound to loopback by default
        assert handle.running
        with urllib.request.urlopen(handle.url + "/", timeout=10) as r:  # the UI page itself
            assert r.status == 200 and "text/html" in r.headers.get("Content-Type", "")

        found = ui.find_runs_by_tags(handle.url, factors="A", scale="smoke")
        assert sorted(r["tags"]["view"] for r in found) == ["phone-bpe", "text-bpe"]
        assert {r["run_id"] for r in found} == {ids["text-bpe"], ids["phone-bpe"]}
        for r in found:
            assert r["status"] == "FINISHED" and r["run_name"] == f"{r['tags']['view']} tokens s0"
            assert r["tags"]["protocol_hash"] == "p1" and r["tags"]["task_hash.sblimp"] == "t1"
            assert r["metrics"]["eval/sblimp/layer_acc"] == pytest.approx(LAYER_ACC[r["tags"]["view"]][-1])
            assert set(r["metrics"]) == {"eval/sblimp/acc", "eval/sblimp/layer_acc"}  # same names for every run
        assert [r["tags"]["view"] for r in ui.find_runs_by_tags(handle.url, factors="C")] == ["phone-repeat@varied"]
        assert ui.find_runs_by_tags(handle.url, factors="A", scale="paper") == []

        # the layer curve: metric steps are layers
        run_id = ids["phone-bpe"]
        q = urllib.parse.urlencode({"run_id": run_id, "metric_key": "eval/sblimp/layer_acc"})
        with urllib.request.urlopen(f"{handle.url}/api/2.0/mlflow/metrics/get-history?{q}", timeout=10) as r:
            history = json.loads(r.read())["metrics"]
        assert sorted((m["step"], m["value"]) for m in history) == \
            [(layer, pytest.approx(v)) for layer, v in enumerate(LAYER_ACC["phone-bpe"])]
        assert ui.metric_history(handle.url, run_id, "eval/sblimp/layer_acc") == \
            [(layer, pytest.approx(v)) for layer, v in enumerate(LAYER_ACC["phone-bpe"])]
        assert [s for s, _ in ui.metric_history(handle.url, run_id, "eval/sblimp/acc")] == [0, 1000, 2000]

        with pytest.raises(InputError, match="modevo-tuning"):
            ui.find_runs_by_tags(handle.url, experiment="modevo-tuning")
    finally:
        handle.stop()
    assert handle.process.poll() is not None
    assert not handle.running  # the mlflow CLI and its uvicorn worker (one process group) are gone
    assert not handle.log_path.exists()
    assert ui.port_free("127.0.0.1", port)
    with pytest.raises(InputError, match="no MLflow server answers"):
        ui.find_runs_by_tags(handle.url, factors="A")
    handle.stop()  # idempotent


@pytest.mark.slow
def test_a_server_that_dies_is_one_line(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "mlflow.db").write_text("not a database\n")
    with pytest.raises(InputError) as e:
        ui.serve(runs, port=ui.free_port(), block=False)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("the MLflow UI did not start (exit status 1):") and "not a database" in msg


def test_the_browser_opens_only_on_a_desktop(monkeypatch):
    """`modevo ui` opens the runs list where there is a display; without one (ssh, CI) it never hands the URL
    to webbrowser, which would start a console browser in the terminal serving the UI."""
    import webbrowser

    opened = []
    monkeypatch.setattr(webbrowser, "open", lambda url, new=0: opened.append(url) or True)
    monkeypatch.setattr(ui.sys, "platform", "linux")
    url = "http://127.0.0.1:5000/#/experiments/1/runs"
    for var in ("DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(var, raising=False)
    assert ui.open_in_browser(url) is False and opened == []
    monkeypatch.setenv("DISPLAY", ":0")
    assert ui.open_in_browser(url) is True and opened == [url]
