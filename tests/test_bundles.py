"""`modevo runs pack / unpack`: scored runs travel without weights and come back reportable, once each;
a bundle that changed after packing is a counted skip, never a silent import."""

import json

import pytest

from modevo.cli import main
from modevo.report.bundles import pack, unpack
from modevo.report.report import report
from tests.test_report import _fake_run

ACC = {"text-bpe": {"sblimp": 0.6, "swuggy": 0.9}, "phone-bpe": {"sblimp": 0.55, "swuggy": 0.85},
       "phone": {"sblimp": 0.5, "swuggy": 0.8}}


def _client(runs_dir):
    from mlflow.tracking import MlflowClient

    return MlflowClient(f"sqlite:///{runs_dir / 'mlflow.db'}")


def _finished(runs_dir):
    client = _client(runs_dir)
    exp = client.get_experiment_by_name("modevo")
    return client.search_runs([exp.experiment_id], "attributes.status = 'FINISHED'")


@pytest.fixture
def source(tmp_path):
    d = tmp_path / "a"
    d.mkdir()
    for view, acc in ACC.items():
        _fake_run(d, view, acc)
    client = _client(d)
    rid = next(r for r in _finished(d) if r.data.tags["view"] == "phone").info.run_id
    client.log_param(rid, "train.lr", "0.002")
    for step in range(3):
        client.log_metric(rid, "valid_loss", 3.0 - step, step=step * 1000)
    return d


def test_a_bundle_round_trip_reports_the_same_tables(source, tmp_path):
    packed = pack("smoke", tmp_path / "bundles", source)
    assert len(packed["packed"]) == 3 and packed["unscored"] == 0
    one = packed["packed"][0]
    assert not list(one.rglob("*.pt")) and (one / "eval" / "tokens-000000001000" / "items.parquet").is_file()
    dest = tmp_path / "b"
    done = unpack(tmp_path / "bundles", dest)
    assert len(done["unpacked"]) == 3 and done["present"] == 0 and done["skipped"] == []
    before, after = report("smoke", tmp_path / "ra", source), report("smoke", tmp_path / "rb", dest)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "runs"} for r in rows]  # new local run ids
    assert strip(after["table4"]) == strip(before["table4"]) and after["table3"] == before["table3"]
    # the MLflow record came along: tags (run_dir rewritten, the origin named), params, metric history
    runs = {r.data.tags["view"]: r for r in _finished(dest)}
    phone = runs["phone"]
    assert phone.data.params["train.lr"] == "0.002"
    history = _client(dest).get_metric_history(phone.info.run_id, "valid_loss")
    assert [(m.step, m.value) for m in history] == [(0, 3.0), (1000, 2.0), (2000, 1.0)]
    folder = dest / "smoke" / "phone" / "tokens-seed0"
    assert phone.data.tags["run_dir"] == str(folder) and phone.data.tags["unpacked_from"]
    info = json.loads((folder / "run.json").read_text())
    assert info["mlflow_run_id"] == phone.info.run_id and info["unpacked_from"] == phone.data.tags["unpacked_from"]


def test_unpacking_into_a_fresh_store_keeps_artifacts_in_the_runs_folder(source, tmp_path, monkeypatch):
    pack("smoke", tmp_path / "bundles", source)
    monkeypatch.chdir(tmp_path)  # the default artifact root would be ./mlruns of the cwd
    dest = tmp_path / "b"
    unpack(tmp_path / "bundles", dest)
    client = _client(dest)
    exp = client.get_experiment_by_name("modevo")
    assert exp.artifact_location.removeprefix("file://").startswith(str((dest / "artifacts").resolve()))
    rid = _finished(dest)[0].info.run_id
    note = tmp_path / "note.txt"
    note.write_text("scored later")
    client.log_artifact(rid, str(note))  # what scoring an unpacked run does
    assert not (tmp_path / "mlruns").exists() and list((dest / "artifacts").rglob("note.txt"))


def test_pack_and_unpack_are_idempotent(source, tmp_path):
    pack("smoke", tmp_path / "bundles", source)
    assert pack("smoke", tmp_path / "bundles", source) == {"packed": [], "unchanged": 3, "unscored": 0}
    dest = tmp_path / "b"
    unpack(tmp_path / "bundles", dest)
    again = unpack(tmp_path / "bundles", dest)
    assert again["unpacked"] == [] and again["present"] == 3 and len(_finished(dest)) == 3
    # into the store it was packed from: the original runs are there already
    assert unpack(tmp_path / "bundles", source)["present"] == 3 and len(_finished(source)) == 3
    # a copy packed again still names where it was trained: back home it is not a fourth run
    pack("smoke", tmp_path / "again", dest)
    assert unpack(tmp_path / "again", source)["present"] == 3 and len(_finished(source)) == 3
    # packed back into the bundles it came from, an unchanged copy leaves them byte for byte alone
    before = {p: p.read_bytes() for p in (tmp_path / "bundles").rglob("*") if p.is_file()}
    assert pack("smoke", tmp_path / "bundles", dest) == {"packed": [], "unchanged": 3, "unscored": 0}
    assert {p: p.read_bytes() for p in (tmp_path / "bundles").rglob("*") if p.is_file()} == before


def test_seeds_from_two_machines_meet_in_one_report(source, tmp_path):
    pack("smoke", tmp_path / "bundles", source, views=["phone"])
    other = tmp_path / "other"
    other.mkdir()
    _fake_run(other, "phone", {"sblimp": 0.52, "swuggy": 0.82}, seed=1)
    assert len(unpack(tmp_path / "bundles", other)["unpacked"]) == 1
    (row,) = report("smoke", tmp_path / "r", other)["table4"]
    assert row["seeds"] == "0,1"


def test_a_changed_bundle_is_a_counted_skip_and_the_rest_still_come(source, tmp_path, capsys):
    bundles = tmp_path / "bundles"
    pack("smoke", bundles, source)
    items = bundles / "phone" / "tokens-seed0" / "eval" / "tokens-000000001000" / "items.parquet"
    items.write_bytes(items.read_bytes()[:-5] + b"xxxxx")
    dest = tmp_path / "b"
    assert main(["runs", "unpack", str(bundles), "--runs-dir", str(dest)]) == 1
    out, err = capsys.readouterr()
    assert "unpacked 2 run(s)" in out and "1 skipped" in out
    assert "items.parquet changed since it was packed" in err
    assert {r.data.tags["view"] for r in _finished(dest)} == {"text-bpe", "phone-bpe"}
    assert not (dest / "smoke" / "phone").exists()


def test_cli_pack_and_a_folder_without_bundles(source, tmp_path, capsys):
    assert main(["runs", "pack", "--scale", "smoke", "--out", str(tmp_path / "bundles"),
                 "--runs-dir", str(source)]) == 0
    assert "packed 3 run(s)" in capsys.readouterr().out
    (tmp_path / "empty").mkdir()
    assert main(["runs", "unpack", str(tmp_path / "empty"), "--runs-dir", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "holds no run bundle" in err


def test_an_unpacked_run_keeps_its_milestones_and_continuations(source, tmp_path):
    """Without weights, the run's recorded milestones still say which checkpoint is final (so an earlier one
    never stands in), and its judged continuations come along for the continuation column."""
    from modevo.report.collect import collect
    from modevo.score.runs import recorded_milestones

    folder = source / "smoke" / "phone" / "tokens-seed0"
    info = json.loads((folder / "run.json").read_text())
    names = ["tokens-000000000500.pt", "tokens-000000001000.pt"]
    info["checkpoints"] = [str(folder / "checkpoints" / n) for n in names]
    (folder / "run.json").write_text(json.dumps(info))
    judged = folder / "samples" / "tokens-000000001000" / "judged.json"
    judged.parent.mkdir(parents=True)
    judged.write_text(json.dumps({"ppl": 123.4}))
    pack("smoke", tmp_path / "bundles", source)
    dest = tmp_path / "b"
    unpack(tmp_path / "bundles", dest)
    there = dest / "smoke" / "phone" / "tokens-seed0"
    assert [p.name for p in recorded_milestones(there)] == names and not (there / "checkpoints").exists()
    assert json.loads((there / "samples" / "tokens-000000001000" / "judged.json").read_text()) == {"ppl": 123.4}
    (run,) = [r for r in collect("smoke", dest) if r.view == "phone"]
    assert run.last_checkpoint == "tokens-000000001000" and run.final


def test_eval_all_leaves_unpacked_runs_alone(source, tmp_path):
    """`modevo eval --all` (and so `make paper`) must not stop at a run that has no weights here."""
    from modevo.score.runs import find_runs

    pack("smoke", tmp_path / "bundles", source)
    dest = tmp_path / "b"
    unpack(tmp_path / "bundles", dest)
    assert len(find_runs(dest, scale="smoke")) == 3
    assert find_runs(dest, scale="smoke", weights=True) == []
