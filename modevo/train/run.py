"""`modevo train`: one run = one view × one model × one budget × one seed, tracked in MLflow.

A run lives in runs/<scale>/<view>/<budget>-seed<seed>-<key>/ (the key hashes the resolved config minus
where-it-runs fields): config.yaml, run.json (MLflow run id, status, results), checkpoints/last.ckpt (the
resume point) and checkpoints/tokens-*.pt (milestones for `eval`). Rerunning the same command resumes
from last.ckpt; a finished run is reported, not retrained.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import subprocess
from pathlib import Path

import yaml

from modevo import __version__
from modevo.cache import stable_hash
from modevo.config import to_dict
from modevo.errors import InputError
from modevo.train.callbacks import (Milestones, ResumePoint, TrainingProgress, Validation, checkpoint_step,
                                    save_weights, write_json)
from modevo.train.config import TrainStageConfig
from modevo.views.build import build_views, load_view
from modevo.views.registry import DEFAULT_TOKENIZER, factors_of, parse_view

log = logging.getLogger("modevo.train")

RUNTIME_ONLY = {"train": ("accelerator", "devices", "strategy", "runs_dir", "tracking_uri", "experiment",
                          "checkpoint_every_steps"), "corpus": ("cache_dir", "num_proc")}


def code_version() -> str:
    """Package version plus the git commit when run from a checkout (argument list, no shell)."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{__version__}+{sha}" if sha else __version__


def bf16_supported() -> bool:
    import torch

    capability = torch.backends.cpu.get_cpu_capability() if hasattr(torch.backends.cpu, "get_cpu_capability") else ""
    return "AVX512" in capability.upper() or torch.cuda.is_available()


def key_config(d: dict) -> dict:
    """A resolved run config as it identifies a run: without where-it-runs fields, and with views.tokenizer at
    its default for a view that reads no units (phone-repeat trained under TOKENIZER=phonetic-kmeans is the
    same run as under mel-kmeans, so factor C with a second tokenizer reuses it)."""
    d = json.loads(json.dumps(d))
    for group, keys in RUNTIME_ONLY.items():
        for k in keys:
            d.get(group, {}).pop(k, None)
    views, view = d.get("views", {}), d.get("train", {}).get("view")
    if view and "tokenizer" in views and parse_view(view, views["tokenizer"]).family != "speech":
        views["tokenizer"] = DEFAULT_TOKENIZER
    return d


def run_key(stage: TrainStageConfig) -> str:
    return stable_hash(key_config(to_dict(stage)), 12)


def tracking_uri(stage: TrainStageConfig) -> str:
    r = stage.train
    return r.tracking_uri or f"sqlite:///{Path(r.runs_dir).resolve() / 'mlflow.db'}"


@contextlib.contextmanager
def store_lock(uri: str):
    """Serialise, between processes, what two trainers sharing one sqlite MLflow store cannot do at once:
    create its schema, its experiment, their runs (measured: the second `CREATE TABLE` fails otherwise).
    Metric writes during training need no lock (sqlite's own locking and busy timeout). Says when it waits."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    import fcntl

    lock_path = Path(uri[len("sqlite:///"):] + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("another process is setting up its run in the MLflow store %s: waiting for it", lock_path.parent)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def check_tracking_uri(uri: str, timeout: float = 5.0) -> None:
    """One line now, rather than MLflow's minutes of retries and a traceback later: an http(s) tracking
    server must accept a connection, a sqlite store's folder must be writable."""
    import socket
    from urllib.parse import urlparse

    parsed = urlparse(uri)
    if parsed.scheme in ("http", "https"):
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            socket.create_connection((parsed.hostname or "localhost", port), timeout=timeout).close()
        except OSError as e:
            raise InputError(f"MLflow tracking URI {uri} is unreachable ({e.strerror or e}): start the tracking "
                             "server, or leave train.tracking_uri unset for the local sqlite store in runs/") from None
    elif parsed.scheme == "sqlite":
        folder = Path(uri[len("sqlite:///"):]).parent if uri.startswith("sqlite:///") else None
        if folder is not None and folder.exists() and not os.access(folder, os.W_OK):
            raise InputError(f"MLflow store folder {folder} is not writable")


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def quiet_libraries() -> None:
    """Lightning's and MLflow's banners and tips say nothing a modevo user can act on."""
    import warnings

    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # read when mlflow is first imported
    for name in ("lightning.pytorch", "lightning.fabric", "mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*litlogger.*")
    # StepBatches makes a mid-epoch resume exact (batches are a function of the global step)
    warnings.filterwarnings("ignore", message=".*resuming from a checkpoint that ended before the epoch ended.*")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def transient_store_error(e: BaseException) -> bool:
    """A sqlite store that is busy for a moment (another writer, a journal being rolled back after a killed
    process): worth waiting for, unlike every other error."""
    text = f"{type(e).__name__}: {e}"
    return "OperationalError" in text and any(k in text for k in ("locked", "busy", "disk I/O"))


def with_store_retries(fn, what: str, attempts: int = 6, first_wait_s: float = 0.5):
    """fn() again after a transient store error, waiting 0.5, 1, 2, ... s (~30 s in all); anything else,
    and the last failure, is raised as it came."""
    import time

    for k in range(attempts):
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 (sqlalchemy and mlflow wrap sqlite's error in their own types)
            if k == attempts - 1 or not transient_store_error(e):
                raise
            log.info("the MLflow store is busy (%s); %s again in %.1f s", str(e).splitlines()[0][:120], what,
                     first_wait_s * 2 ** k)
            time.sleep(first_wait_s * 2 ** k)


def _store_logger_class():
    """Lightning's MLFlowLogger whose writes wait out a busy sqlite store instead of failing the run."""
    from lightning.pytorch.loggers import MLFlowLogger

    class StoreLogger(MLFlowLogger):
        def log_metrics(self, metrics, step=None):
            with_store_retries(lambda: MLFlowLogger.log_metrics(self, metrics, step), "logging metrics")

        def log_hyperparams(self, params):
            with_store_retries(lambda: MLFlowLogger.log_hyperparams(self, params), "logging parameters")

        def finalize(self, status: str = "success"):
            with_store_retries(lambda: MLFlowLogger.finalize(self, status), "closing the run")

    return StoreLogger


def train(stage: TrainStageConfig, progress: bool = True) -> dict:
    """Train (or resume, or report) one run; returns run.json's content."""
    quiet_libraries()
    import lightning as L
    import torch

    from modevo.train.data import ViewDataModule, steps_for
    from modevo.train.module import LanguageModel

    r = stage.train
    check_tracking_uri(tracking_uri(stage))  # before hours of view building, not after
    spec = parse_view(r.view, stage.views.tokenizer)
    # an alias (speech-varied) and its canonical name (speech@varied/mel-kmeans) are one run, one key
    r = dataclasses.replace(r, view=spec.name)
    stage = dataclasses.replace(stage, train=r)
    view_root = build_views(stage, [spec.name], progress=progress)[spec.name]
    view = load_view(view_root)
    model_cfg = dataclasses.replace(stage.model, vocab_size=len(view.vocab), max_seq_len=max(stage.model.max_seq_len, r.seq_len))
    stage = dataclasses.replace(stage, model=model_cfg)

    run_dir = Path(r.runs_dir) / r.scale / spec.name.replace("/", "_") / f"{r.budget}-seed{r.seed}-{run_key(stage)}"
    ckpt_dir = run_dir / "checkpoints"
    info_path = run_dir / "run.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    if info.get("status") == "finished":
        log.info("run %s is finished (MLflow run %s)", run_dir, info.get("mlflow_run_id"))
        return info
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(stage), sort_keys=False))

    torch.manual_seed(r.seed)
    dm = ViewDataModule(view, r.seq_len, r.batch_size, r.seed, total_steps=1, val_max_tokens=r.val_max_tokens)
    if dm.windows_per_epoch < 1:
        raise InputError(f"view {spec.name} has {len(dm.train_stream)} training tokens, fewer than one window of "
                         f"{r.seq_len + 1}: lower train.seq_len or use a larger corpus")
    total = steps_for(r.budget, r.max_tokens, r.epochs, dm.windows_per_epoch, r.batch_size * r.devices, r.seq_len)
    last = ckpt_dir / "last.ckpt"
    start = checkpoint_step(last) if last.exists() else 0
    dm.total_steps, dm.start_step = total, start
    valid = dm.validation_loader()
    if len(valid.dataset) == 0:
        raise InputError(f"view {spec.name} has no validation window of {r.seq_len + 1} tokens: lower train.seq_len")

    precision = r.precision if r.precision != "auto" else ("bf16-mixed" if bf16_supported() else "32-true")
    tags = {"view": spec.name, "paper_name": spec.paper_name, "factors": ",".join(factors_of(spec)) or "none",
            "scale": r.scale, "budget": r.budget, "seed": str(r.seed), "corpus_hash": view.manifest["inputs"]["corpus"],
            "view_hash": view.manifest["content_hash"], "code_version": code_version(), "precision": precision,
            "tokenizer": spec.tokenizer or "", "rendering": spec.rendering or "", "run_dir": str(run_dir)}
    Path(r.runs_dir).mkdir(parents=True, exist_ok=True)
    # with the default sqlite store, artifacts would otherwise land in ./mlruns of whatever the cwd is
    artifacts = None if r.tracking_uri else str((Path(r.runs_dir) / "artifacts").resolve())
    with store_lock(tracking_uri(stage)):  # creating the store, the experiment or a run races another trainer
        logger = _store_logger_class()(experiment_name=r.experiment, run_name=f"{spec.name} {r.budget} s{r.seed}",
                                       tracking_uri=tracking_uri(stage), tags=tags, run_id=info.get("mlflow_run_id"),
                                       artifact_location=artifacts)
        with_store_retries(lambda: logger.run_id, "opening the run")  # creates or finds the experiment and run
        if not info.get("mlflow_run_id"):
            logger.log_hyperparams(_flat(to_dict(stage)))
            with_store_retries(lambda: logger.experiment.log_artifact(logger.run_id, str(run_dir / "config.yaml")),
                               "storing the config")
    info.update(mlflow_run_id=logger.run_id, status="running", run_dir=str(run_dir), view=spec.name,
                tracking_uri=tracking_uri(stage), total_steps=total)
    write_json(info_path, info)

    module = LanguageModel(model_cfg, r, total)
    tokens_per_step = r.batch_size * r.seq_len * r.devices
    budget_tokens = total * tokens_per_step
    milestones = sorted({max(tokens_per_step, budget_tokens // 2 ** k) for k in range(r.milestones)})
    extra = {"view": spec.name, "run_dir": str(run_dir), "mlflow_run_id": logger.run_id, "vocab": view.vocab}
    validation = Validation(valid, max(1, r.val_every_tokens // tokens_per_step),
                            r.patience if r.budget == "converged" else None, run_dir)
    trainer = L.Trainer(
        max_steps=total, max_epochs=-1, accelerator=r.accelerator, devices=r.devices, strategy=r.strategy,
        precision=precision, gradient_clip_val=r.grad_clip or None, logger=logger, limit_val_batches=0,
        num_sanity_val_steps=0, enable_checkpointing=False, enable_progress_bar=progress,
        enable_model_summary=False, deterministic=True, log_every_n_steps=10,
        callbacks=[TrainingProgress(dm.windows_per_epoch), validation,
                   Milestones(ckpt_dir, [m for m in milestones if m > start * tokens_per_step], extra),
                   ResumePoint(last, r.checkpoint_every_steps)])
    trainer.fit(module, datamodule=dm, ckpt_path=str(last) if start else None)

    steps = trainer.global_step
    final = ckpt_dir / f"tokens-{steps * tokens_per_step:012d}.pt"
    if not final.exists():
        save_weights(module, final, {**extra, "tokens": steps * tokens_per_step, "step": steps})
    counts = module.model.param_counts()
    results = {"tokens_seen": steps * tokens_per_step, "steps": steps,
               "epochs": steps * r.batch_size * r.devices / dm.windows_per_epoch,
               "final_valid_loss": validation.history[-1]["valid_loss"] if validation.history else None,
               "best_valid_loss": validation.best, "params_total": counts["total"],
               "params_non_embedding": counts["non_embedding"], "stopped_early": steps < total,
               "tokens_per_word": view.manifest["tokens_per_word"]}
    if "units" in view.manifest:  # speech views: the unit quality the report puts beside factor C
        u = view.manifest["units"]
        results["units"] = {"tokenizer": u["tokenizer"], "vocab_size": u["vocab_size"],
                            "quality": u["quality"]["speech"]}
    logger.log_metrics({"final_valid_loss": results["final_valid_loss"] or float("nan"),
                        "epochs_seen": results["epochs"]}, step=results["tokens_seen"])
    for k in ("params_total", "params_non_embedding"):
        logger.experiment.set_tag(logger.run_id, k, str(results[k]))
    logger.experiment.set_tag(logger.run_id, "checkpoints", ",".join(sorted(p.name for p in ckpt_dir.glob("tokens-*.pt"))))
    logger.finalize("FINISHED")
    info.update(status="finished", results=results, validation=validation.history,
                checkpoints=sorted(str(p) for p in ckpt_dir.glob("tokens-*.pt")))
    write_json(info_path, info)
    return info


def load_run_weights(path: str | Path):
    """A milestone file → (GPT in eval mode, payload); weights_only: nothing but tensors and plain values."""
    import torch

    from modevo.train.model import GPT
    from modevo.train.model_config import ModelConfig

    payload = torch.load(path, map_location="cpu", weights_only=True)
    model = GPT(ModelConfig(**payload["model_config"]))
    model.load_state_dict(payload["state_dict"])
    return model.eval(), payload

