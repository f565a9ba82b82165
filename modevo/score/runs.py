"""Find runs to score: by run folder, checkpoint file, MLflow run id, or all finished runs of a scale.

Runs are found through their MLflow tags (run_dir, scale, view), never by parsing folder names."""

from __future__ import annotations

import logging
from pathlib import Path

from modevo.errors import InputError

log = logging.getLogger("modevo.score")


def milestones(run_dir: str | Path) -> list[Path]:
    """A run's checkpoints (checkpoints/tokens-*.pt) in training order; the last one is the run's final weights."""
    return sorted((Path(run_dir) / "checkpoints").glob("tokens-*.pt"))  # zero-padded token counts sort in order


def recorded_milestones(run_dir: str | Path) -> list[Path]:
    """A run's milestones: the files when its weights are here, else the names its run.json recorded (a run
    unpacked from a bundle, scored elsewhere): enough to find its scores, never to load."""
    from modevo.cache import read_run_json

    found = milestones(run_dir)
    if found:
        return found
    names = [Path(n).name for n in read_run_json(run_dir).get("checkpoints", [])]
    return sorted(Path(run_dir) / "checkpoints" / n for n in names if n.startswith("tokens-") and n.endswith(".pt"))


def default_tracking_uri(runs_dir: str | Path) -> str:
    return f"sqlite:///{Path(runs_dir).resolve() / 'mlflow.db'}"


def _client(runs_dir: str | Path, tracking_uri: str | None):
    from mlflow.tracking import MlflowClient

    uri = tracking_uri or default_tracking_uri(runs_dir)
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file():
        raise InputError(f"no MLflow store at {uri[len('sqlite:///'):]}: train a run first (modevo train) or "
                         "pass --runs-dir / --tracking-uri")
    from modevo.train.run import check_tracking_uri

    check_tracking_uri(uri)
    return MlflowClient(tracking_uri=uri)


def resolve_run(ref: str, runs_dir: str | Path = "runs", tracking_uri: str | None = None) -> Path:
    """A run folder, a checkpoint inside one, or an MLflow run id → the run folder."""
    p = Path(ref)
    if p.is_file() and p.suffix == ".pt":
        if (p.parent.parent / "config.yaml").is_file():
            return p.parent.parent
        raise InputError(f"checkpoint {p} is not inside a run folder (expected <run>/checkpoints/{p.name})")
    if p.is_file():  # an existing file that is not a milestone: say what it is, not that it is missing
        raise InputError(f"{p} is a file but not a checkpoint: name a run folder, a <run>/checkpoints/tokens-*.pt "
                         "milestone or an MLflow run id")
    if p.is_dir():
        if (p / "config.yaml").is_file():
            return p
        raise InputError(f"{p} is not a run folder (no config.yaml)")
    if p.suffix == ".pt" or "/" in ref:
        raise InputError(f"no such run folder or checkpoint: {ref}")
    client = _client(runs_dir, tracking_uri)
    try:
        run = client.get_run(ref)
    except Exception:
        raise InputError(f"'{ref}' is neither a run folder, a checkpoint nor an MLflow run id in "
                         f"{tracking_uri or default_tracking_uri(runs_dir)}") from None
    folder = run.data.tags.get("run_dir")
    if not folder or not (Path(folder) / "config.yaml").is_file():
        raise InputError(f"MLflow run {ref} has no run folder on this machine (tag run_dir={folder!r})")
    return Path(folder)


def finished_runs(runs_dir: str | Path = "runs", tracking_uri: str | None = None, experiment: str = "modevo",
                  **tags: str) -> list[tuple[object, Path]]:
    """(MLflow run, run folder) of the finished training runs with these tag values whose folder exists
    here, oldest first: the one way every command finds runs."""
    client = _client(runs_dir, tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise InputError(f"no MLflow experiment '{experiment}' in {tracking_uri or default_tracking_uri(runs_dir)}")
    filt = ["attributes.status = 'FINISHED'"] + [f"tags.{k} = '{v}'" for k, v in tags.items()]
    runs = client.search_runs([exp.experiment_id], " and ".join(filt), order_by=["attributes.start_time ASC"],
                              max_results=10_000)
    return [(r, Path(r.data.tags["run_dir"])) for r in runs
            if r.data.tags.get("run_dir") and (Path(r.data.tags["run_dir"]) / "config.yaml").is_file()]


def find_runs(runs_dir: str | Path = "runs", tracking_uri: str | None = None, scale: str | None = None,
              views: list[str] | None = None, experiment: str = "modevo", weights: bool = False) -> list[Path]:
    """Folders of the finished training runs (of a scale, of some views), oldest first. `weights`: only runs
    whose checkpoints are here (a run unpacked from a bundle was scored elsewhere and has none: counted, logged)."""
    found = finished_runs(runs_dir, tracking_uri, experiment, **({"scale": scale} if scale else {}))
    folders = list(dict.fromkeys(folder for r, folder in found if not views or r.data.tags.get("view") in views))
    if not weights:
        return folders
    kept = [f for f in folders if milestones(f)]
    if len(kept) < len(folders):
        log.info("%d finished run(s) without checkpoints here (unpacked bundles, scored elsewhere) left out",
                 len(folders) - len(kept))
    return kept
