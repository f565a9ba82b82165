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
import math
import os
import subprocess
from pathlib import Path

import yaml

from modevo import __version__
from modevo.cache import atomic_write_bytes, file_digest, read_run_json, stable_hash
from modevo.config import to_dict
from modevo.errors import ConfigError, InputError
from modevo.machine import describe
from modevo.train.callbacks import (Milestones, ResumePoint, TrainingProgress, Validation, checkpoint_step,
                                    save_weights, token_progress_bar, write_json)
from modevo.train.config import TrainStageConfig
from modevo.views.build import build_views, load_view
from modevo.views.config import keyed
from modevo.views.registry import DEFAULT_TOKENIZER, factors_of, parse_view

log = logging.getLogger("modevo.train")

# where and how a run runs, not what it computes: batch_size is the global batch, so the devices, nodes,
# strategy and accumulation that split it change rounding only, and the run key stays the same
RUNTIME_ONLY = {"train": ("accelerator", "devices", "num_nodes", "strategy", "accumulate", "activation_checkpointing",
                          "runs_dir", "tracking_uri", "experiment", "checkpoint_every_steps"),
                "corpus": ("cache_dir", "num_proc"),
                "units": ("device", "batch_size", "num_workers")}  # where units are encoded, not what they are


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
    if view and "tokenizer" in views and not parse_view(view, views["tokenizer"]).view_family.reads_units:
        views["tokenizer"] = DEFAULT_TOKENIZER
    if "views" in d:
        d["views"] = keyed(views)
    if d.get("train", {}).get("init_from", "") is None:  # added after runs existed: absent means a fresh init
        d["train"].pop("init_from")
    return d


def run_variant(stage, spec) -> str:
    """What sets this run apart from its view's standard run ("" for a standard run): a budget counting speech
    tokens only, the family's non-default settings, a warm start. Tables 3-4 hold standard runs only; the
    campaigns that train variants (make interleave) report them by view and variant."""
    r, parts = stage.train, []
    if r.budget == "speech-tokens":
        parts.append("equal speech tokens")
    if label := spec.view_family.variant(stage.views):
        parts.append(label)
    if r.init_from:
        source = Path(r.init_from)
        folder = source if source.is_dir() else source.parent.parent
        try:
            parts.append(f"init from {json.loads((folder / 'run.json').read_text())['view']}")
        except (OSError, ValueError, KeyError):
            parts.append(f"init from {source.name}")
    return "; ".join(parts)


def budget_tokens_of(r, spec, manifest: dict) -> int:
    """Tokens the run trains on: train.max_tokens, or under budget=speech-tokens as many tokens in all as
    hold max_tokens speech units at the view's measured share."""
    if r.budget != "speech-tokens":
        return r.max_tokens
    share = manifest.get("speech_token_share", 1.0 if spec.view_family.reads_units else None)
    if not share:
        raise ConfigError(f"train.budget=speech-tokens: view {spec.name} has no speech tokens; use budget=tokens")
    return int(math.ceil(r.max_tokens / share))


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


@contextlib.contextmanager
def run_lock(run_dir: Path, wait: bool = False):
    """Hold <run_dir>/.lock (fcntl.flock, released by the kernel when the process dies, so a killed trainer
    never blocks a rerun) while one process trains the run; the holder's PID is written in it."""
    import fcntl

    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / ".lock"
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            holder = f"PID {holder}" if holder.isdigit() else holder
            if not wait:
                raise InputError(f"run {run_dir} is being trained by {holder}: let it finish (rerun then reports "
                                 f"or resumes it), or pass --wait to start when it does") from None
            log.info("run %s is being trained by %s: waiting for it", run_dir, holder)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            f.seek(0)
            f.truncate()
            f.write(f"{os.getpid()}\n")
            f.flush()
            yield
        finally:
            f.seek(0)
            f.truncate()
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


def ensure_experiment(uri: str, name: str, artifact_location: str | None) -> None:
    """Create the MLflow experiment if the store lacks it, quietly: Lightning's logger would otherwise print
    "Experiment with name modevo not found. Creating it." as a warning on a fresh store's first run."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    if client.get_experiment_by_name(name) is None:
        client.create_experiment(name, artifact_location=artifact_location)


def process_rank(devices: int) -> int:
    """This process's global rank as its launcher set it, before Lightning starts: torchrun's RANK, the
    NODE_RANK·devices + LOCAL_RANK of a child of Lightning's own launcher, an srun task's SLURM_PROCID; 0
    for the process the user started."""
    env = os.environ
    if env.get("RANK", "").isdigit():
        return int(env["RANK"])
    if env.get("LOCAL_RANK", "").isdigit():
        return int(env.get("NODE_RANK", "0") or 0) * devices + int(env["LOCAL_RANK"])
    if env.get("SLURM_PROCID", "").isdigit() and int(env.get("SLURM_NTASKS", "1") or 1) > 1:
        return int(env["SLURM_PROCID"])
    return 0


PREPARED_ENV = "MODEVO_TRAIN_PREPARED"  # rank zero → the ranks Lightning's launcher starts: what it prepared


def launch_id() -> str | None:
    """What the processes of one externally started launch share (srun's job and step, torchrun's run id)."""
    env = os.environ
    if env.get("SLURM_JOB_ID"):
        return f"slurm-{env['SLURM_JOB_ID']}.{env.get('SLURM_STEP_ID', '0')}"
    return f"torchrun-{env['TORCHELASTIC_RUN_ID']}" if env.get("TORCHELASTIC_RUN_ID") else None


def prepared_view(stage: TrainStageConfig, spec, rank: int, progress: bool) -> Path:
    """The view's folder. Rank zero builds it (a cache hit when built); another rank takes it from rank zero:
    from the environment Lightning's launcher copies (its ranks start once rank zero reaches fit), else from
    the marker rank zero writes for an srun / torchrun launch (all ranks start at once; they wait), else
    it asks the cache itself (idempotent, atomic writes)."""
    key = run_key(stage)
    if rank == 0:
        return build_views(stage, [spec.name], progress=progress)[spec.name]
    handed = json.loads(os.environ.get(PREPARED_ENV) or "{}")
    if handed.get("key") == key:
        return Path(handed["view_root"])
    lid = launch_id()
    if lid is None:
        return build_views(stage, [spec.name], progress=False)[spec.name]
    import time

    marker, waited = Path(stage.train.runs_dir) / ".launches" / f"{lid}.json", 0.0
    while not (marker.exists() and json.loads(marker.read_text()).get("key") == key):
        if waited % 300 == 0:
            log.info("rank %d: waiting for rank 0 to build view %s (%s)", rank, spec.name, marker)
        time.sleep(2.0)
        waited += 2.0
    return Path(json.loads(marker.read_text())["view_root"])


def hand_over(stage: TrainStageConfig, view_root: Path) -> None:
    """Rank zero, once it has built the view, created the MLflow run and written run.json: tell the other
    ranks (the environment for Lightning's launcher, a marker file for srun / torchrun launches)."""
    payload = json.dumps({"key": run_key(stage), "view_root": str(view_root)})
    os.environ[PREPARED_ENV] = payload
    lid = launch_id()
    if lid is not None:
        marker = Path(stage.train.runs_dir) / ".launches" / f"{lid}.json"
        marker.parent.mkdir(parents=True, exist_ok=True)
        write_json(marker, json.loads(payload))


def make_strategy(r):
    """Lightning's strategy: one process; DDP (gloo on CPU processes, NCCL on GPUs); or FSDP, fully sharded
    with the decoder Block as the wrap unit (and the activation-checkpointing unit), full-state checkpoints
    so that last.ckpt and the milestones stay single files."""
    if r.strategy == "fsdp":
        from lightning.pytorch.strategies import FSDPStrategy

        from modevo.train.model import Block

        return FSDPStrategy(auto_wrap_policy={Block}, state_dict_type="full",
                            activation_checkpointing_policy={Block} if r.activation_checkpointing else None)
    if r.world_size > 1 or r.strategy == "ddp":
        from lightning.pytorch.strategies import DDPStrategy

        return DDPStrategy(process_group_backend="gloo" if r.accelerator == "cpu" else None)
    return "auto"


def resolve_precision(r) -> str:
    """train.precision=auto: bf16 autocast on a GPU that has bf16 or a CPU with AVX512(-BF16), else fp32."""
    if r.precision != "auto":
        return r.precision
    import torch

    if r.accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "32-true"
    return "bf16-mixed" if bf16_supported() else "32-true"


def train(stage: TrainStageConfig, progress: bool = True, wait: bool = False) -> dict:
    """Train (or resume, or report) one run; returns run.json's content (on a rank other than zero, of a
    several-process run: {"status": "rank", "rank": r, "run_dir": ...}).

    Several processes (train.devices × train.num_nodes > 1) each run this function: rank zero builds the
    view, creates the MLflow run and writes run.json, the milestones and last.ckpt; the others take the view
    from it and train their share of every step's batch.

    A run folder has one trainer at a time (`run_lock`): another one refuses, or with `wait` waits for it
    and then resumes (or reports) the run where it stands."""
    quiet_libraries()
    import lightning as L
    import torch

    from modevo.train.data import ViewDataModule, steps_for
    from modevo.train.module import LanguageModel

    r = stage.train
    rank = process_rank(r.devices) if r.world_size > 1 else 0
    if rank == 0:
        check_tracking_uri(tracking_uri(stage))  # before hours of view building, not after
    spec = parse_view(r.view, stage.views.tokenizer)
    # an alias (speech-varied) and its canonical name (speech@varied/mel-kmeans) are one run, one key
    r = dataclasses.replace(r, view=spec.name)
    stage = dataclasses.replace(stage, train=r)
    view_root = prepared_view(stage, spec, rank, progress)
    view = load_view(view_root)
    model_cfg = dataclasses.replace(stage.model, vocab_size=len(view.vocab), max_seq_len=max(stage.model.max_seq_len, r.seq_len))
    stage_before_vocab, stage = stage, dataclasses.replace(stage, model=model_cfg)

    run_dir = Path(r.runs_dir) / r.scale / spec.folder / f"{r.budget}-seed{r.seed}-{run_key(stage)}"
    # one trainer per run folder, taken before the MLflow run exists: a second would train into the same
    # folder and leave an orphan MLflow run
    with run_lock(run_dir, wait) if rank == 0 else contextlib.nullcontext():
        ckpt_dir = run_dir / "checkpoints"
        info_path = run_dir / "run.json"
        info = read_run_json(run_dir)
        if info.get("status") == "finished":
            if rank == 0:
                log.info("run %s is finished (MLflow run %s)", run_dir, info.get("mlflow_run_id"))
            return info
        if rank == 0:
            ckpt_dir.mkdir(parents=True, exist_ok=True)
            # atomic: a full disk must not leave a torn config.yaml that eval and report then read
            atomic_write_bytes(run_dir / "config.yaml", yaml.safe_dump(to_dict(stage), sort_keys=False).encode())

        torch.manual_seed(r.seed)
        dm = ViewDataModule(view, r.seq_len, r.batch_size, r.seed, total_steps=1, val_max_tokens=r.val_max_tokens)
        if dm.windows_per_epoch < 1:
            raise InputError(f"view {spec.name} has {len(dm.train_stream)} training tokens, fewer than one window of "
                             f"{r.seq_len + 1}: lower train.seq_len or use a larger corpus")
        total = steps_for(r.budget, budget_tokens_of(r, spec, view.manifest), r.epochs, dm.windows_per_epoch,
                          r.batch_size, r.seq_len)
        last = ckpt_dir / "last.ckpt"
        start = checkpoint_step(last) if last.exists() else 0
        dm.total_steps, dm.start_step = total, start
        valid = dm.validation_loader(r.micro_batch)
        if len(valid.dataset) == 0:
            raise InputError(f"view {spec.name} has no validation window of {r.seq_len + 1} tokens: lower train.seq_len")

        precision = resolve_precision(r)
        # the global batch and how it is split: recorded, and the same math whatever the split
        layout = {"global_batch": r.batch_size, "micro_batch": r.micro_batch, "accumulate": r.accumulate,
                  "devices": r.devices, "num_nodes": r.num_nodes, "world_size": r.world_size,
                  "strategy": make_strategy_name(r), "activation_checkpointing": r.activation_checkpointing}
        logger = None
        if rank == 0:
            # a CPU run's numbers depend on its thread count (the order of its reductions), a GPU run's on the card:
            # recorded per stretch of training, so a rerun that is not bit-identical can be told apart
            machine = describe()
            compute = {"processor": machine["processor"], "threads": machine["threads"], "gpu": machine["cuda"] or ""}
            stretches = info.get("compute", [])
            if not stretches or {k: stretches[-1].get(k) for k in compute} != compute:
                stretches = [*stretches, {**compute, "from_step": start}]
            tags = {"view": spec.name, "paper_name": spec.paper_name, "factors": ",".join(factors_of(spec)) or "none",
                    "scale": r.scale, "budget": r.budget, "seed": str(r.seed),
                    "corpus_hash": view.manifest["inputs"]["corpus"], "view_hash": view.manifest["content_hash"],
                    "code_version": code_version(), "precision": precision, "tokenizer": spec.tokenizer or "",
                    "rendering": spec.rendering or "", "run_dir": str(run_dir), "variant": run_variant(stage, spec),
                    "processor": compute["processor"], "threads": str(compute["threads"]), "gpu": compute["gpu"],
                    **{k: str(v) for k, v in layout.items()}}
            Path(r.runs_dir).mkdir(parents=True, exist_ok=True)
            # with the default sqlite store, artifacts would otherwise land in ./mlruns of whatever the cwd is
            artifacts = None if r.tracking_uri else str((Path(r.runs_dir) / "artifacts").resolve())
            with store_lock(tracking_uri(stage)):  # creating the store, the experiment or a run races another trainer
                if not info.get("mlflow_run_id"):
                    with_store_retries(lambda: ensure_experiment(tracking_uri(stage), r.experiment, artifacts),
                                       "creating the experiment")
                logger = _store_logger_class()(experiment_name=r.experiment, run_name=f"{spec.name} {r.budget} s{r.seed}",
                                               tracking_uri=tracking_uri(stage), tags=tags,
                                               run_id=info.get("mlflow_run_id"), artifact_location=artifacts)
                with_store_retries(lambda: logger.run_id, "opening the run")  # creates or finds the experiment and run
                if not info.get("mlflow_run_id"):
                    logger.log_hyperparams(_flat(to_dict(stage)))
                    with_store_retries(lambda: logger.experiment.log_artifact(logger.run_id, str(run_dir / "config.yaml")),
                                       "storing the config")
            info.update(mlflow_run_id=logger.run_id, status="running", run_dir=str(run_dir), view=spec.name,
                        tracking_uri=tracking_uri(stage), total_steps=total, layout=layout, compute=stretches)
            write_json(info_path, info)
            if r.world_size > 1:
                hand_over(stage_before_vocab, view_root)
                if r.accelerator == "cpu":  # the node's cores shared by its processes (they inherit the variables)
                    share_threads(r.devices)

        module = LanguageModel(model_cfg, r, total)
        if r.init_from and start == 0:  # a resume restores its own weights from last.ckpt
            info["init_from"] = warm_start(module.model, r.init_from, view.vocab)
            if rank == 0:
                write_json(info_path, info)
                log.info("initialised from %s: %d tensors copied, %d token rows shared", info["init_from"]["checkpoint"],
                         len(info["init_from"]["copied"]), info["init_from"]["shared_tokens"])
        tokens_per_step = r.batch_size * r.seq_len
        budget_tokens = total * tokens_per_step
        milestones = sorted({max(tokens_per_step, budget_tokens // 2 ** k) for k in range(r.milestones)})
        extra = {"view": spec.name, "run_dir": str(run_dir), "mlflow_run_id": info.get("mlflow_run_id"), "vocab": view.vocab}
        validation = Validation(valid, max(1, r.val_every_tokens // tokens_per_step),
                                r.patience if r.budget == "converged" else None, run_dir)
        trainer = L.Trainer(
            max_steps=total, max_epochs=-1, accelerator=r.accelerator, devices=r.devices, num_nodes=r.num_nodes,
            strategy=make_strategy(r), precision=precision, accumulate_grad_batches=r.accumulate,
            gradient_clip_val=r.grad_clip or None, logger=logger if logger is not None else False,
            use_distributed_sampler=False,  # the loader yields this rank's share of each step (data.StepBatches)
            limit_val_batches=0, num_sanity_val_steps=0, enable_checkpointing=False, enable_progress_bar=progress,
            enable_model_summary=False, deterministic=True if r.accelerator == "cpu" else "warn", log_every_n_steps=10,
            callbacks=[TrainingProgress(dm.windows_per_epoch), validation,
                       Milestones(ckpt_dir, [m for m in milestones if m > start * tokens_per_step], extra),
                       ResumePoint(last, r.checkpoint_every_steps)] + ([token_progress_bar()] if progress else []))
        trainer.fit(module, datamodule=dm, ckpt_path=str(last) if start else None)
        if rank != 0:
            return {"status": "rank", "rank": rank, "run_dir": str(run_dir)}

        steps = trainer.global_step
        final = ckpt_dir / f"tokens-{steps * tokens_per_step:012d}.pt"
        if not final.exists() and module._sharded_wrapper() is None:
            # killed between the last step's last.ckpt and the final weights: Lightning restores a run already at
            # max_steps without running its on_train_end, so the weights it restored are saved here
            save_weights(module, final, {**extra, "tokens": steps * tokens_per_step, "step": steps})
        with torch.device("meta"):  # the shape's counts, whatever the strategy did to the live parameters
            from modevo.train.model import GPT

            counts = GPT(model_cfg).param_counts()
        results = {"tokens_seen": steps * tokens_per_step, "steps": steps,
                   "epochs": steps * r.batch_size / dm.windows_per_epoch,
                   "final_valid_loss": validation.history[-1]["valid_loss"] if validation.history else None,
                   "best_valid_loss": validation.best, "params_total": counts["total"],
                   "params_non_embedding": counts["non_embedding"], "stopped_early": steps < total,
                   "tokens_per_word": view.manifest["tokens_per_word"], "global_batch": r.batch_size}
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


def make_strategy_name(r) -> str:
    return "fsdp" if r.strategy == "fsdp" else ("ddp" if r.world_size > 1 or r.strategy == "ddp" else "single")


def share_threads(local_processes: int) -> None:
    """CPU processes of one node: each takes its share of this process's threads."""
    import torch

    from modevo.jobs import PARENT_ENV
    from modevo.machine import CHOSEN_ENV

    n = max(1, torch.get_num_threads() // local_processes)
    for env in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[env] = str(n)
    os.environ.pop(CHOSEN_ENV, None)  # a deliberate split: the ranks keep it
    os.environ[PARENT_ENV] = "1"  # the ranks it starts are its own steps, not another job to warn about
    torch.set_num_threads(n)


PAPER_CONDITIONS = ["text-bpe", "text-char", "phone-bpe", "phone", "phone-repeat@varied", "speech-varied"]


def expected_vocab(stage: TrainStageConfig, view: str) -> tuple[int, str]:
    """A view's vocabulary size from the config alone (no corpus, no built view), and how it was found."""
    spec = parse_view(view, stage.views.tokenizer)
    return spec.view_family.expected_vocab(spec, stage.views, stage.units)


def plan(stage: TrainStageConfig, vocab: int | None = None, mfu: float = 0.4, peak_tflops: float = 989.0,
         view_only: bool = False) -> dict:
    """What a run of this config would need, without a corpus, a view or a device: the model built on the
    meta device, tokens per step, memory per GPU for DDP and FSDP, and GPU-hours per condition at `mfu` of a
    `peak_tflops` bf16 GPU (default: an H100 SXM's dense 989 TFLOP/s)."""
    import torch

    from modevo.train.model import GPT

    r = stage.train
    spec = parse_view(r.view, stage.views.tokenizer)
    views = [spec.name] if view_only else list(dict.fromkeys([spec.name] + [parse_view(v, stage.views.tokenizer).name
                                                                            for v in PAPER_CONDITIONS]))
    tokens_per_step = r.batch_size * r.seq_len
    steps = math.ceil(r.max_tokens / tokens_per_step)
    rows = []
    for name in views:
        v, how = (vocab, "--vocab") if vocab and name == spec.name else expected_vocab(stage, name)
        cfg = dataclasses.replace(stage.model, vocab_size=v, max_seq_len=max(stage.model.max_seq_len, r.seq_len))
        with torch.device("meta"):
            model = GPT(cfg)
        counts = model.param_counts()
        block = sum(p.numel() for p in model.blocks[0].parameters())
        flops = flops_per_token(cfg, r.seq_len)
        gpu_hours = steps * tokens_per_step * flops / (mfu * peak_tflops * 1e12) / 3600
        rows.append({"view": name, "vocab": v, "vocab_from": how, "params_total": counts["total"],
                     "params_non_embedding": counts["non_embedding"], "block_params": block,
                     "flops_per_token": flops, "gpu_hours": gpu_hours,
                     "memory_gb": {s: memory_per_gpu(cfg, r, counts["total"], block, s) for s in ("ddp", "fsdp")}})
    return {"view": spec.name, "rows": rows, "tokens_per_step": tokens_per_step, "steps": steps,
            "tokens": steps * tokens_per_step, "budget": r.budget, "global_batch": r.batch_size,
            "micro_batch": r.micro_batch, "accumulate": r.accumulate, "devices": r.devices, "num_nodes": r.num_nodes,
            "world_size": r.world_size, "strategy": make_strategy_name(r), "seq_len": r.seq_len, "mfu": mfu,
            "peak_tflops": peak_tflops, "precision": r.precision, "activation_checkpointing": r.activation_checkpointing}


def flops_per_token(cfg, seq_len: int) -> float:
    """Training FLOPs per token, PaLM's count: 6·N + 12·L·T·d, N every multiplied matrix (blocks and the LM
    head; not the embedding lookup), 12·L·T·d the attention scores and weighted sums (bench/common.py)."""
    kv = cfg.n_kv_head * cfg.head_dim
    per_layer = cfg.d_model * (cfg.d_model + 2 * kv) + cfg.d_model * cfg.d_model + 3 * cfg.d_model * cfg.ff_dim
    n = cfg.n_layer * per_layer + cfg.d_model * cfg.vocab_size
    return 6.0 * n + 12.0 * cfg.n_layer * seq_len * cfg.d_model


def memory_per_gpu(cfg, r, params: int, block_params: int, strategy: str) -> dict:
    """Estimated GB per GPU (1e9 bytes). States: fp32 weights, fp32 gradients and AdamW's two fp32 moments,
    16 B per parameter (bf16-mixed autocasts: it keeps fp32 weights), plus the 2 B/parameter bf16 copies
    autocast keeps for the backward; DDP adds its 4 B/parameter gradient buckets; FSDP shards the 16 B over
    the devices × num_nodes ranks and gathers one decoder block at a time (two: the next is prefetched).
    Activations of one micro-batch (micro_batch × seq_len tokens), bf16 autocast: the tensors our block
    saves for the backward, per token and layer 30·d + 8·ff bytes (fp32 residual stream and RMSNorm
    statistics, bf16 matmul inputs, q/k/v/output with k and v expanded to every head, the SwiGLU gate, up
    and product) — within 4% of what saved-tensor hooks count on a CPU (tests/test_distributed.py); with activation
    checkpointing each block's fp32 input (4·d) plus one block recomputed in the backward; plus the final
    norm and head input (10·d) and 8·V bytes per token of fp32 logits and their gradient. 32-true doubles
    the bf16 parts (counted as twice the total). CUDA context, allocator fragmentation and compile
    workspaces come on top."""
    d, ff, L = cfg.d_model, cfg.ff_dim, cfg.n_layer
    world = r.world_size
    if strategy == "fsdp":
        states = 16 * params / world + 2 * (4 + 2) * block_params
    else:
        states = (16 + 2 + 4) * params
    per_layer = 30 * d + 8 * ff
    per_token = (L * 4 * d + per_layer) if r.activation_checkpointing else L * per_layer
    per_token += 10 * d + 8 * cfg.vocab_size
    activations = r.micro_batch * r.seq_len * per_token * (2 if r.precision == "32-true" else 1)
    return {"states": states / 1e9, "activations": activations / 1e9, "total": (states + activations) / 1e9}


def format_plan(p: dict) -> str:
    chosen = p["strategy"]  # single: the ddp row less its buckets is one process's figure
    lines = [f"dry run: {p['view']} — nothing is built, read or trained (model on the meta device)",
             f"  batch: global {p['global_batch']} windows × {p['seq_len']} tokens = {p['tokens_per_step']:,} tokens per "
             f"optimizer step = micro-batch {p['micro_batch']} × {p['devices']} devices × {p['num_nodes']} node(s) × "
             f"accumulate {p['accumulate']}",
             f"  budget: {p['budget']}: {p['steps']:,} steps, {p['tokens']:,} tokens"
             + ("" if p["budget"] == "tokens" else " (train.max_tokens; the real count needs the corpus)"),
             f"  strategy: {p['strategy']} on {p['world_size']} rank(s); precision {p['precision']}"
             + (" (bf16-mixed on a GPU with bf16)" if p["precision"] == "auto" else "") + "; activation "
             f"checkpointing {'on' if p['activation_checkpointing'] else 'off'}"]
    me = p["rows"][0]
    lines += [f"  parameters: {me['params_total']:,} total, {me['params_non_embedding']:,} non-embedding "
              f"(vocabulary {me['vocab']:,}: {me['vocab_from']})"]
    for s in ("ddp", "fsdp"):
        m = me["memory_gb"][s]
        lines.append(f"  memory per GPU, {s}{' (the chosen strategy)' if s == chosen else ''}: {m['total']:.1f} GB = "
                     f"{m['states']:.1f} weights, gradients and AdamW states + {m['activations']:.1f} activations of "
                     f"one micro-batch")
    lines.append(f"  GPU-hours at {p['mfu']:.0%} MFU of {p['peak_tflops']:g} bf16 TFLOP/s per GPU (wall hours = "
                 f"GPU-hours / {p['world_size']} ranks):")
    width = max(len(r["view"]) for r in p["rows"])
    for r in p["rows"]:
        lines.append(f"    {r['view']:<{width}}  vocab {r['vocab']:>6,}  {r['params_total'] / 1e9:.3f} B params  "
                     f"{r['flops_per_token'] / 1e9:.2f} GFLOP/token  {r['gpu_hours']:,.0f} GPU-h  "
                     f"({r['gpu_hours'] / p['world_size']:,.1f} h wall)")
    return "\n".join(lines)


def warm_start(model, source: str | Path, vocab: list[str]) -> dict:
    """Initialise `model` from another run's milestone, as TWIST starts a speech LM from a text LM: every
    tensor of the same name and shape is copied; the vocabulary-sized ones (token embedding, LM head) are
    copied row by row for the tokens both vocabularies hold (text-bpe's pieces inside an interleaved
    vocabulary), the other rows keep their fresh initialisation. What was copied is returned for run.json."""
    import torch

    path = Path(source)
    if path.is_dir():  # a run folder: its last milestone
        found = sorted((path / "checkpoints").glob("tokens-*.pt"))
        if not found:
            raise InputError(f"train.init_from: {path} holds no finished milestone (checkpoints/tokens-*.pt)")
        path = found[-1]
    if not path.is_file():
        raise InputError(f"train.init_from: no run folder or checkpoint at {path}")
    try:
        src, payload = load_run_weights(path)
    except Exception as e:  # noqa: BLE001 (any unreadable file: one line)
        raise InputError(f"train.init_from: {path} is not a modevo milestone ({str(e).splitlines()[0][:160]})") from None
    src_vocab = payload.get("vocab")
    if src_vocab is None:
        raise InputError(f"train.init_from: {path} does not record its vocabulary; cannot map its token rows")
    src_rows = {t: i for i, t in enumerate(src_vocab)}
    pairs = [(i, src_rows[t]) for i, t in enumerate(vocab) if t in src_rows]
    mine, theirs = model.state_dict(), src.state_dict()
    copied, skipped = [], []
    with torch.no_grad():
        for name, tensor in mine.items():
            other = theirs.get(name)
            if other is not None and other.shape == tensor.shape and tensor.shape[:1] != (len(vocab),):
                tensor.copy_(other)
                copied.append(name)
            elif other is not None and tensor.dim() >= 1 and tensor.shape[0] == len(vocab) \
                    and other.shape[0] == len(src_vocab) and other.shape[1:] == tensor.shape[1:]:
                if pairs:
                    to, frm = zip(*pairs)
                    tensor[list(to)] = other[list(frm)]
                copied.append(f"{name} ({len(pairs)} of {len(vocab)} rows)")
            else:
                skipped.append(name)
    if not pairs and not copied:
        raise InputError(f"train.init_from: {path} shares no tensor or token with this model")
    if skipped and len(skipped) == len(mine):
        raise InputError(f"train.init_from: {path} has another shape ({', '.join(skipped[:3])} ...): nothing copied")
    return {"checkpoint": str(path), "sha256": file_digest(path), "view": payload.get("view"),
            "tokens": int(payload.get("tokens", 0)), "copied": copied, "not_copied": skipped,
            "shared_tokens": len(pairs)}


def load_run_weights(path: str | Path):
    """A milestone file → (GPT in eval mode, payload); weights_only: nothing but tensors and plain values."""
    import torch

    from modevo.train.model import GPT
    from modevo.train.model_config import ModelConfig

    payload = torch.load(path, map_location="cpu", weights_only=True)
    model = GPT(ModelConfig(**payload["model_config"]))
    model.load_state_dict(payload["state_dict"])
    return model.eval(), payload

