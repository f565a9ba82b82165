"""The `modevo` command: one subcommand per stage. User mistakes are one line on stderr, exit status 2."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Sequence

from modevo import __version__
from modevo.errors import InputError, ModevoError
from modevo.jobs import heavy_job
from modevo.machine import set_threads

log = logging.getLogger("modevo")

CONFIG_HELP = "YAML config; defaults < this file < key=value overrides (dotted: text.max_words=40)"


def _corpus_config(args):
    from modevo.config import load
    from modevo.corpus.config import CorpusConfig

    overrides = list(args.overrides)
    if getattr(args, "num_proc", None) is not None:
        overrides.append(f"num_proc={args.num_proc}")
    return load(CorpusConfig, args.config, overrides)


def _rendering_names(args, cfg) -> list[str] | None:
    if args.renderings is None:
        return None
    names = [n.strip() for n in args.renderings.split(",") if n.strip()]
    return names


def cmd_corpus_build(args) -> int:
    from modevo.corpus.build import build
    from modevo.corpus.render import build_renderings
    from modevo.corpus.stats import collect, format_stats

    cfg = _corpus_config(args)
    paths = build(cfg, progress=not args.no_progress)
    print(f"corpus written to {paths.root}")
    if not args.text_only:
        build_renderings(cfg, _rendering_names(args, cfg), progress=not args.no_progress)
    print(format_stats(collect(cfg)))
    return 0


def cmd_corpus_stats(args) -> int:
    import json

    from modevo.corpus.stats import collect, format_stats

    info = collect(_corpus_config(args))
    print(json.dumps(info, indent=2, default=str) if args.json else format_stats(info))
    return 0


def cmd_corpus_align(args) -> int:
    """Align a recordings source with pocketsphinx (TextGrids), or measure the aligner on synthetic renderings."""
    from pathlib import Path

    from modevo.cache import cache_root
    from modevo.corpus import aligner

    cfg = _corpus_config(args)
    if args.measure:
        from modevo.corpus.build import build
        from modevo.corpus.stats import format_aligner

        build(cfg, progress=not args.no_progress)
        names = [n.strip() for n in args.measure.split(",") if n.strip()]
        result = aligner.measure(cfg, names, args.max_utterances, progress=not args.no_progress)
        print("\n".join(format_aligner(result)))
        if args.results:
            import datetime
            import platform
            import shlex

            how = (f"Measured {datetime.date.today().isoformat()} on {platform.machine()} ({os.cpu_count()} cores), "
                   f"corpus '{result['corpus']}', the first {result['utterances']} utterances (test split first) "
                   f"of each rendering, with `modevo {' '.join(shlex.quote(a) for a in sys.argv[1:])}`.")
            for f in aligner.write_results(result, Path(args.results), how):
                print(f"wrote {f}")
        return 0
    out = Path(args.out) if args.out else cache_root(cfg.cache_dir) / "alignments" / f"{cfg.name}-{aligner.NAME}"
    counts = aligner.align_corpus_source(cfg, out, progress=not args.no_progress)
    print(f"pocketsphinx: {counts.get('aligned', 0)} utterances aligned, {counts.get('failed', 0)} failed"
          + "".join(f", {k} {v}" for k, v in sorted(counts.items()) if k.startswith("skipped")))
    print(f"TextGrids in {out}; build the corpus with: source.recordings.alignments=[{out}]")
    return 0


def cmd_corpus_evict_audio(args) -> int:
    from modevo.corpus.stats import collect, rendering_dirs
    from modevo.corpus.render import evict_audio

    cfg = _corpus_config(args)
    collect(cfg)  # fails with one line if the corpus is not built
    freed = sum(evict_audio(p) for p in rendering_dirs(cfg))
    print(f"evicted {freed / 1e6:.1f} MB of cached audio; durations and parameters kept, audio re-renders on demand")
    return 0


def _views_config(args):
    from modevo.config import load
    from modevo.views.build import ViewsStageConfig

    overrides = list(args.overrides)
    if getattr(args, "num_proc", None) is not None:
        overrides.append(f"corpus.num_proc={args.num_proc}")
    return load(ViewsStageConfig, args.config, overrides)


def cmd_units_build(args) -> int:
    from modevo.corpus.build import build
    from modevo.corpus.render import build_rendering
    from modevo.frames import parse_rate, rate_suffix
    from modevo.units.build import build_units
    from modevo.units.registry import tokenizer_params

    rate = parse_rate(args.rate)
    if args.tokenizer:
        args.overrides = list(args.overrides) + [f"units.tokenizer={args.tokenizer}"]
    stage = _views_config(args)
    tokenizer_params(stage.units, rate)  # a rate this tokenizer cannot give: refused before the corpus is built
    build(stage.corpus, progress=not args.no_progress)
    for name in stage.units.renderings:
        build_rendering(stage.corpus, name, progress=not args.no_progress)
    out = build_units(stage.units, stage.corpus, progress=not args.no_progress, rate_hz=rate)
    from modevo.cache import read_json
    from modevo.units.quality import QUALITY_HEADER, quality_columns

    print(f"{'units':<40}{QUALITY_HEADER}   (held-out, no silence)")
    for name, paths in out.items():
        m = read_json(paths.manifest, "delete it and rerun `modevo units build` (finished shards are kept)")
        label = f"{m['tokenizer']}{rate_suffix(rate)} @ {name}"  # as a view names it: mel-kmeans:25hz
        print(f"{label:<40}{quality_columns(m['vocab_size'], m['quality']['speech'])}")
    return 0


def cmd_views_build(args) -> int:
    from modevo.views.build import build_views
    from modevo.views.stats import collect_views, format_views

    stage = _views_config(args)
    names = [n.strip() for n in args.views.split(",")] if args.views else None
    roots = build_views(stage, names, progress=not args.no_progress)
    print(format_views(collect_views(stage, roots)))
    return 0


def cmd_views_stats(args) -> int:
    import json

    from modevo.views.stats import collect_views, find_views, format_views

    stage = _views_config(args)
    info = collect_views(stage, find_views(stage))
    print(json.dumps(info, indent=2, default=str) if args.json else format_views(info))
    return 0


def cmd_train(args) -> int:
    from modevo.config import load
    from modevo.train.config import TrainStageConfig
    from modevo.train.run import train

    overrides = list(args.overrides)
    if args.view:
        overrides.append(f"train.view={args.view}")
    stage = load(TrainStageConfig, args.config, overrides)
    info = train(stage, progress=not args.no_progress, wait=args.wait)
    if info.get("status") == "rank":  # another rank of a several-process run: rank zero reports
        return 0
    res = info["results"]
    loss = res["final_valid_loss"]
    print(f"run {info['view']}: {res['tokens_seen']} tokens ({res['epochs']:.2f} epochs), final valid loss "
          f"{loss:.4f}, {res['params_total']:,} parameters ({res['params_non_embedding']:,} non-embedding)")
    print(f"  MLflow run {info['mlflow_run_id']} at {info['tracking_uri']}; folder {info['run_dir']}")
    return 0


def cmd_train_dry_run(args) -> int:
    """`modevo train --dry-run`: the plan from the config alone (not a heavy job: no lock, no threads)."""
    from modevo.config import load
    from modevo.train.config import TrainStageConfig
    from modevo.train.run import format_plan, plan

    overrides = list(args.overrides) + ([f"train.view={args.view}"] if args.view else [])
    stage = load(TrainStageConfig, args.config, overrides)
    print(format_plan(plan(stage, vocab=args.vocab, mfu=args.mfu, peak_tflops=args.peak_tflops)))
    return 0


class _DryRun(argparse.Action):
    """--dry-run: the train parser's command becomes cmd_train_dry_run."""

    def __call__(self, parser, namespace, values, option_string=None):
        namespace.dry_run, namespace.func = True, cmd_train_dry_run


def cmd_eval(args) -> int:
    from modevo.config import load
    from modevo.score.config import EvalConfig
    from modevo.score.evaluate import evaluate_run
    from modevo.score.runs import find_runs, resolve_run

    overrides = list(args.overrides)
    if args.tasks:
        overrides.append(f"tasks.names=[{args.tasks}]")
    if args.checkpoints:
        overrides.append(f"score.checkpoints={args.checkpoints}")
    if args.nproc:
        overrides.append(f"score.world_size={args.nproc}")
    if args.device:
        overrides.append(f"score.device={args.device}")
    cfg = load(EvalConfig, args.config, overrides)
    if not args.run and not args.all:
        raise InputError("name what to score: --run <run folder | checkpoint | MLflow run id> or --all [--scale S]")
    # (run folder, checkpoint or None): a checkpoint named on the command line is scored alone
    todo = [(resolve_run(r, args.runs_dir, args.tracking_uri), r if r.endswith(".pt") else None) for r in args.run or []]
    if args.all:
        todo += [(f, None) for f in find_runs(args.runs_dir, args.tracking_uri, scale=args.scale, weights=True)]
        if not todo:
            raise InputError(f"no finished runs{' of scale ' + args.scale if args.scale else ''} in {args.runs_dir}")
    for folder, ckpt in dict.fromkeys(todo):
        evaluate_run(folder, cfg, progress=not args.no_progress, log_mlflow=not args.no_mlflow, checkpoint=ckpt,
                     force=args.force)
    return 0


def cmd_sample(args) -> int:
    """Continuations of held-out prompts from a run's last checkpoint (or the checkpoint named)."""
    from modevo.generate.sample import SampleConfig, sample_run
    from modevo.score.runs import resolve_run

    cfg = SampleConfig(prompts=args.prompts, seeds=args.seeds, temperature=args.temperature, top_p=args.top_p,
                       max_seconds=args.max_seconds, prompt_words=args.prompt_words, device=args.device)
    run_dir = resolve_run(args.run, args.runs_dir, args.tracking_uri)
    result = sample_run(run_dir, cfg, progress=not args.no_progress,
                        checkpoint=args.run if args.run.endswith(".pt") else None, force=args.force)
    n = len(result.samples)
    ended = sum(s["stopped_at_separator"] for s in result.samples)
    mean = sum(len(s["continuation_ids"]) for s in result.samples) / max(1, n)
    print(f"{result.settings['view']} {result.settings['checkpoint']}: {n} samples "
          f"({result.settings['prompts_found']} prompts × {cfg.seeds} seeds), {mean:.1f} tokens on average, "
          f"{ended}/{n} ended at the separator | prompts {result.settings['prompts_hash']} | "
          f"{'reused ' if result.reused else ''}{result.folder / 'samples.jsonl'}")
    return 0


def cmd_judge(args) -> int:
    """A run's sampled continuations → words → the judge's perplexity [95% CI], beside the transcription error."""
    from pathlib import Path

    from modevo.generate.evaluate import JudgeConfig, judge_run
    from modevo.score.runs import resolve_run

    cfg = JudgeConfig(order=args.order, eval_rows=args.eval_rows, n_boot=args.n_boot)
    run_dir = resolve_run(args.run, args.runs_dir, args.tracking_uri)
    out = judge_run(run_dir, cfg, checkpoint=args.run if args.run.endswith(".pt") else None,
                    progress=not args.no_progress, force=args.force)
    s, err = out["summary"], out["transcription_error"]
    ppl = s["perplexity"]
    extra = (f"recogniser PER {100 * err['recogniser_per']:.1f}%" if "recogniser_per" in err
             else f"decoder WER {100 * err['decoder_wer']:.1f}%")
    print(f"{out['view']} {out['checkpoint']}: continuation PPL {ppl['mean']:.1f} [{ppl['lo']:.1f}, {ppl['hi']:.1f}] "
          f"over {out['prompts']} prompts × seeds ({out['samples']} samples) | the true continuations "
          f"{out['reference_perplexity']['mean']:.1f} | distinct-2 "
          f"{s['distinct_2']['mean']:.3f} | OOV {100 * s['oov_rate']['mean']:.1f}% | round-trip WER "
          f"{100 * err['round_trip_wer']:.1f}% ({err['utterances']} test utterances), {extra} | judge "
          f"{out['judge']['judge_hash'][:12]} | {Path(out['run_dir']) / 'samples' / out['checkpoint'] / 'judged.json'}")
    return 0


def cmd_generate(args) -> int:
    """Sample, then judge, each run named (or every finished run of a scale): the continuation column of
    Table 4 as one step of `modevo factor` / `make paper`. A view whose continuations cannot be read back as
    words is a counted, logged skip."""
    from modevo.generate.evaluate import JudgeConfig, judge_run
    from modevo.generate.sample import SampleConfig, sample_run
    from modevo.score.runs import find_runs, resolve_run

    if not args.run and not args.all:
        raise InputError("name what to generate from: --run <run folder | MLflow run id> or --all [--scale S]")
    todo = [resolve_run(r, args.runs_dir, args.tracking_uri) for r in args.run or []]
    if args.all:
        views = args.views.split(",") if args.views else None
        todo += find_runs(args.runs_dir, args.tracking_uri, scale=args.scale, views=views, weights=True)
        if not todo:
            raise InputError(f"no finished runs{' of scale ' + args.scale if args.scale else ''} in {args.runs_dir}")
    sample_cfg = SampleConfig(prompts=args.prompts, seeds=args.seeds, device=args.device)
    judge_cfg = JudgeConfig()
    skipped = []
    for folder in dict.fromkeys(todo):
        sample_run(folder, sample_cfg, progress=not args.no_progress, force=args.force)
        try:
            out = judge_run(folder, judge_cfg, progress=not args.no_progress, force=args.force)
        except InputError as e:
            if "cannot be judged" not in str(e):
                raise
            skipped.append(str(e))
            log.warning("skipped: %s", e)
            continue
        ppl = out["summary"]["perplexity"]
        print(f"{out['view']} {out['checkpoint']}: continuation PPL {ppl['mean']:.1f} [{ppl['lo']:.1f}, "
              f"{ppl['hi']:.1f}] (true continuations {out['reference_perplexity']['mean']:.1f}), round-trip WER {100 * out['transcription_error']['round_trip_wer']:.1f}% | "
              f"{folder}/samples/{out['checkpoint']}/judged.json", flush=True)
    if skipped:
        print(f"{len(skipped)} run(s) skipped: their view's continuations cannot be read back as words")
    return 0


def cmd_lens(args) -> int:
    """Latent transcription: each layer's logit lens over the text vocabulary inside spoken words (score/lens.py),
    per run a lens.json; with several runs one figure and table comparing them."""
    from pathlib import Path

    from modevo.score.lens import latent_transcription
    from modevo.score.runs import resolve_run

    try:
        ks = [int(k) for k in args.k.split(",") if k.strip()]
    except ValueError:
        raise InputError(f"--k takes comma-separated positive integers, e.g. 1,5,10; got '{args.k}'") from None
    results = {}
    for ref in dict.fromkeys(args.run):
        folder = resolve_run(ref, args.runs_dir, args.tracking_uri)
        res = latent_transcription(folder, n_utterances=args.utterances, ks=ks, positions=args.positions,
                                   n_boot=args.n_boot, seed=args.seed, progress=not args.no_progress,
                                   checkpoint=ref if ref.endswith(".pt") else None, force=args.force,
                                   log_mlflow=not args.no_mlflow, device=args.device)
        label = res["label"] if res["label"] not in results else f"{res['label']} ({Path(folder).name})"
        results[label] = res
        k = str(ks[len(ks) // 2])  # the middle k (5 of 1,5,10): the headline
        best = max(res["layers"], key=lambda r: r["recall"]["current"][k]["mean"] or 0.0)
        cur, shuf = best["recall"]["current"][k], best["recall"]["shuffled_current"][k]
        print(f"{label} {res['settings']['checkpoint']}: recall@{k} of the heard word peaks at layer {best['layer']}/"
              f"{res['n_layers']}: {cur['mean']:.3f} [{cur['lo']:.3f}, {cur['hi']:.3f}] (shuffled {shuf['mean']:.3f}) "
              f"over {res['n_words']} words of {res['n_utterances']} utterances | "
              f"{folder}/lens/{Path(res['settings']['checkpoint']).stem}/lens.json", flush=True)
    if len(results) > 1 or args.out:
        from modevo.report.lens import lens_figure, lens_table

        out = Path(args.out or Path("results") / next(iter(results.values()))["scale"] / "lens")
        png, table = lens_figure(results, out / "lens.png", ks), lens_table(results, out / "lens.csv")
        print(f"figure {png} | table {table}")
    return 0


def cmd_compare(args) -> int:
    import json
    from pathlib import Path

    from modevo.score.compare import compare, format_comparison
    from modevo.score.runs import resolve_run

    a = [resolve_run(r, args.runs_dir, args.tracking_uri) for r in args.a]
    b = [resolve_run(r, args.runs_dir, args.tracking_uri) for r in args.b]
    c = compare([Path(x) for x in a], [Path(x) for x in b], args.key, margin=args.margin)
    print(json.dumps(c, indent=2) if args.json else format_comparison(c))
    return 0


def cmd_report(args) -> int:
    from modevo.report.report import print_rows, report
    from modevo.report.tables import TASK_ORDER

    views = args.views.split(",") if args.views else None
    out = report(args.scale, args.out, args.runs_dir, args.tracking_uri, factor=args.factor, views=views)
    if out["table3"]:
        rows = [r for r in out["table3"] if args.factor is None or r["factor"] == args.factor]
        print_rows(rows, f"Table 3 ({args.scale})" + (f", factor {args.factor}" if args.factor else ""), out["notes"][:2])
    if not args.factor:
        print_rows(out["table4"], f"Table 4 ({args.scale})", out["notes"],
                   ["condition", "seeds", "tokens_seen", "epochs", *TASK_ORDER])
    print(f"wrote {len(out['files'])} files to {out['files'][0].parent}")
    return 0


def cmd_runs_pack(args) -> int:
    from modevo.report.bundles import pack

    done = pack(args.scale, args.out, args.runs_dir, args.tracking_uri,
                views=args.views.split(",") if args.views else None)
    print(f"packed {len(done['packed'])} run(s) into {args.out}; {done['unchanged']} unchanged since their last "
          f"pack; {done['unscored']} not scored yet")
    return 0


def cmd_runs_unpack(args) -> int:
    from modevo.report.bundles import unpack

    done = unpack(args.source, args.runs_dir, args.tracking_uri)
    print(f"unpacked {len(done['unpacked'])} run(s) into {args.runs_dir}; {done['present']} already there; "
          f"{len(done['skipped'])} skipped")
    for bundle, why in done["skipped"]:
        print(f"  skipped {bundle}: {why}", file=sys.stderr)
    return 1 if done["skipped"] else 0


def _plan_args(args):
    from modevo.frames import parse_rate
    from modevo.pipeline import plan
    from modevo.views.registry import factor_views

    # one positional list: the factor first (if any), then key=value overrides, in any order with options
    words = list(args.items)
    args.factor = words.pop(0) if words and "=" not in words[0] else "all"
    args.overrides = words

    args.rate_hz = parse_rate(args.rate)
    views = args.views.split(",") if getattr(args, "views", None) else \
        factor_views(args.factor, args.tokenizer, args.rate_hz)
    try:
        seeds = [int(x) for x in str(args.seeds).split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--seeds takes comma-separated integers, e.g. 0,1,2; got '{args.seeds}'") from None
    return plan(args.scale, views, seeds, args.budget, args.tokenizer, args.runs_dir, eval_config=args.eval_config,
                overrides=args.overrides, generate=not args.no_generate)


def cmd_plan(args) -> int:
    from modevo.pipeline import format_plan

    print(format_plan(_plan_args(args)))
    return 0


def cmd_factor(args) -> int:
    from pathlib import Path

    from modevo.pipeline import format_plan, run_steps
    from modevo.views.registry import factor_views
    from modevo.report.report import default_out, print_rows, report
    from modevo.report.tables import TASK_ORDER

    steps = _plan_args(args)
    if args.factor == "all" and args.items and args.items[0] != "all":
        raise InputError("name the factor first: modevo factor A|B|C|all [key=value ...]")
    print(format_plan(steps), flush=True)
    run_steps(steps, Path(args.runs_dir) / args.scale / "pipeline-times.jsonl")
    factor = None if args.factor.upper() == "ALL" else args.factor.upper()
    out = report(args.scale, args.out or default_out(args.scale, factor, args.tokenizer, args.rate_hz), args.runs_dir,
                 factor=factor, views=factor_views(args.factor, args.tokenizer, args.rate_hz))
    rows = [r for r in out["table3"] if factor is None or r["factor"] == factor]
    print_rows(rows, f"Table 3 ({args.scale})" + (f", factor {factor}" if factor else ""), out["notes"][:2])
    if out["units"] and factor in (None, "C"):
        print_rows(out["units"], f"Unit quality ({args.scale})", [])
    if factor is None:
        print_rows(out["table4"], f"Table 4 ({args.scale})", out["notes"],
                   ["condition", "seeds", "tokens_seen", "epochs", *TASK_ORDER])
    print(f"wrote {len(out['files'])} files to {out['files'][0].parent}")
    return 0


# -- issue 25: interoperable checkpoints and linear probes (their own blocks) --------------------------------
def cmd_export(args) -> int:
    """A run's milestone as a Hugging Face LlamaForCausalLM folder (config, safetensors, the view's vocabulary)."""
    from modevo.score.runs import resolve_run
    from modevo.train.export import export_hf

    run_dir = resolve_run(args.run, args.runs_dir, args.tracking_uri)
    milestone = args.milestone if args.milestone != "final" or not args.run.endswith(".pt") else args.run
    folder = export_hf(run_dir, milestone, out=args.out, force=args.force)
    print(f"exported {folder} (LlamaForCausalLM.from_pretrained reads it; vocabulary in vocab.json)")
    return 0


def cmd_probe(args) -> int:
    """Linear probes of every layer of runs' milestones: probes.json per run, one figure per probe (a line
    per condition), numbers to each run's MLflow entry."""
    from pathlib import Path

    from modevo.report.probes import write_probe_figures
    from modevo.score.probe import ProbeConfig, format_probes, log_figures, probe_run, probes_path
    from modevo.score.runs import resolve_run

    names = [n.strip() for n in args.probes.split(",") if n.strip()] if args.probes else None
    cfg = ProbeConfig(**({"probes": names} if names else {}), max_positions=args.max_positions,
                      max_utterances=args.max_utterances, device=args.device)
    results = []
    for ref in args.run:
        run_dir = resolve_run(ref, args.runs_dir, args.tracking_uri)
        milestone = ref if ref.endswith(".pt") else args.milestone
        result = probe_run(run_dir, cfg, milestone=milestone, progress=not args.no_progress,
                           log_mlflow=not args.no_mlflow, force=args.force)
        folder = probes_path(run_dir, Path(result["checkpoint"])).parent
        figures = write_probe_figures([result], folder)
        if not args.no_mlflow:
            log_figures(run_dir, result, figures)
        print(format_probes(result))
        print(f"  → {folder / 'probes.json'}, {len(figures)} figure(s)")
        results.append(result)
    if len(results) > 1 or args.out:
        out = Path(args.out or "results/probes")
        figures = write_probe_figures(results, out)
        print(f"wrote {len(figures)} figure(s) (one line per condition) to {out}")
    return 0


def _seeds(args) -> list[int]:
    try:
        return [int(x) for x in str(args.seeds).split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--seeds takes comma-separated integers, e.g. 0,1,2; got '{args.seeds}'") from None


def _campaign(args, views: list[str], report_fn, title: str) -> int:
    """Plan and run the missing steps of these views (as `modevo factor` does), then write their tables."""
    seeds = _seeds(args)
    groups = [(views, args.budget, list(args.overrides), seeds)]
    return _run_campaign(args, groups, lambda: report_fn(args.scale, views, out=args.out, runs_dir=args.runs_dir),
                         title)


def _run_campaign(args, groups, report, title: str) -> int:
    """Each group (views, budget, overrides, seeds) planned and run in turn (a later group may depend on what
    an earlier one trained), then the campaign's report."""
    from pathlib import Path

    from modevo.pipeline import format_plan, plan, run_steps
    from modevo.report.report import print_rows

    for views, budget, overrides, seeds in groups:
        steps = plan(args.scale, views, seeds, budget, args.tokenizer, args.runs_dir, eval_config=args.eval_config,
                     overrides=overrides, generate=False)  # the campaigns' tables have no continuation column
        print(format_plan(steps), flush=True)
        if not args.plan_only:
            run_steps(steps, Path(args.runs_dir) / args.scale / "pipeline-times.jsonl")
    if args.plan_only:
        return 0
    out = report()
    print_rows([{k: v for k, v in r.items() if not k.startswith("_")} for r in out["rows"]],
               f"{title} ({args.scale})", out["notes"])
    print(f"wrote {len(out['files'])} files to {out['files'][0].parent}")
    return 0


def _names(value: str | None) -> list[str] | None:
    """'a, b,' → ['a', 'b']; None or empty → None (the command's default)."""
    return [x.strip() for x in value.split(",") if x.strip()] or None if value else None


def cmd_layers(args) -> int:
    """What each layer keeps: probes (and the lens where the vocabulary has text) of one run per condition of a
    scale → results/<scale>/layers/ (report/layers.py)."""
    from modevo.report.layers import layers_report

    try:
        ks = [int(k) for k in args.k.split(",") if k.strip()]
    except ValueError:
        raise InputError(f"--k takes comma-separated positive integers, e.g. 1,5,10; got '{args.k}'") from None
    got = layers_report(args.scale, runs_dir=args.runs_dir, tracking_uri=args.tracking_uri, out=args.out,
                        conditions=_names(args.conditions), probes=_names(args.probes),
                        max_positions=args.max_positions, max_utterances=args.max_utterances,
                        lens_utterances=args.utterances, ks=ks, device=args.device, force=args.force,
                        progress=not args.no_progress, log_mlflow=not args.no_mlflow)
    kept = sum(r["verdict"] == "kept" for r in got["probe_rows"])
    print(f"{kept} of {len(got['probe_rows'])} (condition, probe) pairs kept above both controls; "
          f"lens rows: {len(got['lens_rows'])}", flush=True)
    for f in got["files"]:
        print(f"  {f}")
    return 0


def cmd_interleave(args) -> int:
    """Text supervision of speech: speech-varied and phone-repeat@varied (factor C's two ends), text-bpe, and the
    interleaving conditions of report/interleave.py, each group after the one it needs."""
    from pathlib import Path

    from modevo.pipeline import _stage, finished_run
    from modevo.report.interleave import CONDITIONS, GAP, TEXT, interleave_report

    seeds, tok, over = _seeds(args), args.tokenizer, list(args.overrides)

    def groups():
        plain = [c.view.format(tokenizer=tok) for c in CONDITIONS
                 if c.budget == "tokens" and not c.overrides and not c.warm_from_text]
        yield [v.format(tokenizer=tok) for v in GAP] + [TEXT] + plain, args.budget, over, seeds
        for c in CONDITIONS:
            view = c.view.format(tokenizer=tok)
            if (c.budget != "tokens" or c.overrides) and not c.warm_from_text:
                yield [view], c.budget, over + list(c.overrides), seeds
            elif c.warm_from_text:
                for seed in seeds:
                    text = finished_run(_stage(args.scale, TEXT, seed, args.budget, tok, Path("configs"), over),
                                        Path(args.runs_dir))
                    if text is None:
                        print(f"{c.label}, seed {seed}: planned once {TEXT} seed {seed} is trained (its weights are "
                              "the start)", flush=True)
                        continue
                    yield [view], c.budget, over + list(c.overrides) + [f"train.init_from={text}"], [seed]

    return _run_campaign(args, groups(), lambda: interleave_report(args.scale, tok, out=args.out,
                                                                  runs_dir=args.runs_dir),
                         "Text supervision: share of factor C's cost removed")


def cmd_remedies(args) -> int:
    from modevo.report.remedies import remedies_report
    from modevo.views.registry import remedy_views

    return _campaign(args, remedy_views(args.tokenizer), remedies_report,
                     "The paper's remedies: share of the speech → phone gap closed")


def cmd_sweep(args) -> int:
    from modevo.report.remedies import sweep_report
    from modevo.views.registry import sweep_views

    return _campaign(args, sweep_views(args.tokenizer), sweep_report, "Factor C knob by knob")


def cmd_ui(args) -> int:
    from modevo.report.ui import serve

    serve(args.runs_dir, args.tracking_uri, host=args.host, port=args.port, block=True, browser=not args.no_browser)
    return 0


SCALE_HELP = ("smoke (a few hundred sentences, seconds per stage: what tests and make smoke run), cpu (the "
              "2-core reproduction), paper (the paper's shape, on GPUs); configs/<stage>/<scale>.yaml "
              "(default: %(default)s)")


def _add_plan_args(p: argparse.ArgumentParser, rate: bool = True) -> None:
    p.add_argument("--scale", default="cpu", help=SCALE_HELP)
    p.add_argument("--seeds", default="0", help="comma-separated, e.g. 0,1,2")
    p.add_argument("--budget", default="tokens", choices=["tokens", "epochs", "converged"])
    p.add_argument("--tokenizer", default="mel-kmeans", help="speech tokenizer of the unit views")
    if rate:
        p.add_argument("--rate", default="50hz", help="frame rate of the factor's frame views, 50 Hz / n (50hz, 25hz, "
                       "12.5hz): both views of a pair at that rate (default 50hz)")
        # the campaigns (rate=False) have no continuation column to generate for
        p.add_argument("--no-generate", action="store_true",
                       help="skip sampling and judging continuations (the continuation PPL of Tables 3-4)")
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--eval-config", default=None, help="default configs/eval/<scale>.yaml")


def _add_store_args(p: argparse.ArgumentParser, progress: bool = False) -> None:
    """Where a command finds runs (their folders and MLflow store), and its progress-bar switch."""
    p.add_argument("--runs-dir", default="runs", help="where runs and the default MLflow store live")
    p.add_argument("--tracking-uri", default=None, help="an MLflow tracking URI (default: sqlite in --runs-dir)")
    if progress:
        p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _add_config_args(p: argparse.ArgumentParser, num_proc: str | None = None, progress: bool = False) -> None:
    p.add_argument("--config", "-c", default=None, help=CONFIG_HELP)
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, highest precedence")
    if num_proc:
        p.add_argument("--num-proc", type=int, default=None, help=num_proc)
    if progress:
        p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _commands(stages, name: str, help: str):
    stage = stages.add_parser(name, help=help)
    commands = stage.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    return commands


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake on the command line is one line (no usage block), like every other error."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="modevo",
        description="Controlled modality-evolution experiments on speech language models. "
                    "Stages in data-flow order: corpus → units → views → train → tasks → score → report.",
    )
    parser.add_argument("--version", action="version", version=f"modevo {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    stages = parser.add_subparsers(dest="stage", metavar="STAGE")
    stages.required = True

    corpus_cmds = _commands(stages, "corpus", "build the aligned corpus (text, phones, speech renderings)")
    b = corpus_cmds.add_parser("build", help="sentences → normalised text → phones → Arrow shards (cached, resumable)")
    _add_config_args(b, num_proc="worker processes (does not change the output)", progress=True)
    b.add_argument("--text-only", action="store_true", help="text and phones only, no speech renderings")
    b.add_argument("--renderings", default=None, metavar="A,B",
                   help="renderings to build (default: every rendering with enabled: true)")
    b.set_defaults(func=cmd_corpus_build)
    s = corpus_cmds.add_parser("stats", help="documents, chunks, sentences, words, phones per split; skips; g2p share")
    _add_config_args(s)
    s.add_argument("--json", action="store_true", help="print the stats as JSON")
    s.set_defaults(func=cmd_corpus_stats)
    a = corpus_cmds.add_parser("align", help="forced-align a recordings source with pocketsphinx (TextGrids), "
                               "or --measure its phone boundary error on synthetic renderings")
    _add_config_args(a, progress=True)
    a.add_argument("--out", default=None, help="folder for the TextGrids (default: <cache>/alignments/<name>-pocketsphinx)")
    a.add_argument("--measure", default=None, metavar="A,B",
                   help="measure instead: align these synthetic renderings (e.g. fixed,varied) against their exact durations")
    a.add_argument("--max-utterances", type=int, default=200, help="--measure: utterances per rendering")
    a.add_argument("--results", default=None, help="--measure: also write aligner_error.md/.csv to this folder")
    a.set_defaults(func=cmd_corpus_align)
    e = corpus_cmds.add_parser("evict-audio", help="delete cached rendering audio (re-rendered on demand)")
    _add_config_args(e)
    e.set_defaults(func=cmd_corpus_evict_audio)
    units_cmds = _commands(stages, "units", "speech tokenizers trained on the train split, and unit quality")
    ub = units_cmds.add_parser("build", help="train (or reuse) the tokenizer, encode the renderings, score units")
    _add_config_args(ub, num_proc="worker processes for the corpus stage", progress=True)
    ub.add_argument("--tokenizer", default=None, help="mel-kmeans | phonetic-kmeans | hubert-kmeans | encodec")
    ub.add_argument("--rate", default="50hz", metavar="RATE",
                    help="unit frame rate, 50 Hz / n (50hz, 25hz, 12.5hz...): k-means tokenizers average n 50 Hz "
                         "feature frames before k-means (default 50hz)")
    ub.set_defaults(func=cmd_units_build)

    views_cmds = _commands(stages, "views", "the conditions as token sequences (the modality registry)")
    vb = views_cmds.add_parser("build", help="build every view (corpus, renderings, units and BPE as needed)")
    _add_config_args(vb, num_proc="worker processes for the corpus stage", progress=True)
    vb.add_argument("--views", default=None, metavar="A,B", help="views to build (default: views.views)")
    vb.set_defaults(func=cmd_views_build)
    vs = views_cmds.add_parser("stats", help="vocabulary, tokens, tokens per word and per second, length ratio, unit quality")
    _add_config_args(vs)
    vs.add_argument("--json", action="store_true", help="print as JSON")
    vs.set_defaults(func=cmd_views_stats)

    tr = stages.add_parser("train", help="train one view × model × budget × seed (resumes; tracked in MLflow)")
    _add_config_args(tr, progress=True)
    tr.add_argument("--view", default=None, help="shorthand for train.view=VIEW")
    tr.add_argument("--wait", action="store_true",
                    help="if another process is training this run, wait for it, then resume or report the run "
                         "(default: say which process holds it and exit)")
    tr.add_argument("--dry-run", action=_DryRun, nargs=0, default=False,
                    help="print the plan (parameters, tokens per step, memory per GPU, GPU-hours per condition) "
                         "from the config alone: the model on the meta device, no corpus, view or device")
    tr.add_argument("--vocab", type=int, default=None,
                    help="with --dry-run: the view's vocabulary size (default: what the config implies)")
    tr.add_argument("--mfu", type=float, default=0.4, help="with --dry-run: model FLOPs utilisation (default 0.4)")
    tr.add_argument("--peak-tflops", type=float, default=989.0,
                    help="with --dry-run: a GPU's dense bf16 TFLOP/s (default 989, H100 SXM; A100: 312)")
    tr.set_defaults(func=cmd_train)

    ev = stages.add_parser("eval", help="score runs on the tasks: pair accuracy per layer, baselines, CIs (MLflow)")
    _add_config_args(ev, progress=True)
    ev.add_argument("--run", "--run-ref", action="append", metavar="REF", dest="run",
                    help="a run folder, a checkpoint (.pt) or an MLflow run id; repeatable (under torchrun write "
                         "--run-ref: torchrun takes --run for its own --run-path)")
    ev.add_argument("--all", action="store_true", help="every finished run in the MLflow store (see --scale)")
    ev.add_argument("--scale", default=None, help="with --all: only runs tagged with this scale (smoke, cpu, paper; "
                    "default: every scale)")
    ev.add_argument("--tasks", default=None, metavar="A,B", help="shorthand for tasks.names=[A,B]")
    ev.add_argument("--checkpoints", choices=["final", "all"], default=None,
                    help="score the final checkpoint (default) or every milestone")
    _add_store_args(ev)
    ev.add_argument("--no-mlflow", action="store_true", help="write results to <run>/eval only")
    ev.add_argument("--force", action="store_true", help="score again checkpoints already scored under this config")
    ev.add_argument("--nproc", type=int, default=None, metavar="N",
                    help="shorthand for score.world_size=N: N processes split each task's items (same results); "
                         "or launch with torchrun --nproc_per_node N -m modevo eval ...")
    ev.add_argument("--device", default=None, help="shorthand for score.device= (cpu, cuda, cuda:N, auto)")
    ev.set_defaults(func=cmd_eval)

    sa = stages.add_parser("sample", help="continuations of held-out prompts (the same utterances in every view), "
                           "seeded per (seed, prompt), cached in <run>/samples/<checkpoint>/")
    sa.add_argument("--run", required=True, metavar="REF", help="a run folder, a checkpoint (.pt) or an MLflow run id")
    sa.add_argument("--prompts", type=int, default=100, help="held-out prompts (default 100)")
    sa.add_argument("--seeds", type=int, default=10, help="continuations per prompt (default 10, as the paper)")
    sa.add_argument("--temperature", type=float, default=1.0, help="sampling temperature, above 0 (default 1.0)")
    sa.add_argument("--top-p", type=float, default=0.9, help="nucleus sampling mass in (0, 1] (default 0.9)")
    sa.add_argument("--max-seconds", type=float, default=10.0,
                    help="continuation cap in seconds of speech: frames for frame views, else 2.7 words/s × the "
                         "view's tokens per word (default 10)")
    sa.add_argument("--prompt-words", type=int, default=3, help="words of each test utterance given as the prompt")
    sa.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    sa.add_argument("--force", action="store_true", help="sample again even where the same settings are cached")
    _add_store_args(sa, progress=True)
    sa.set_defaults(func=cmd_sample)

    ju = stages.add_parser("judge", help="a run's samples (modevo sample) → words (view family → decoder, units via a "
                           "recogniser) → judge perplexity with prompt CIs and the transcription error → judged.json")
    ju.add_argument("--run", required=True, metavar="REF", help="a run folder, a checkpoint (.pt) or an MLflow run id")
    ju.add_argument("--order", type=int, default=3, help="word n-gram order of the judge and decoders (default 3)")
    ju.add_argument("--eval-rows", type=int, default=200,
                    help="test utterances the transcription error is measured on (default 200)")
    ju.add_argument("--n-boot", type=int, default=10_000, help="bootstrap resamples of prompts (default 10000)")
    ju.add_argument("--force", action="store_true", help="judge again even where judged.json is current")
    _add_store_args(ju, progress=True)
    ju.set_defaults(func=cmd_judge)

    ge = stages.add_parser("generate", help="sample then judge each run (or every finished run of a scale): "
                           "the continuation column, as `make paper` runs it")
    ge.add_argument("--run", action="append", metavar="REF", help="a run folder or MLflow run id; repeatable")
    ge.add_argument("--all", action="store_true", help="every finished run (of --scale, of --views)")
    ge.add_argument("--scale", default=None, help="with --all: only runs of this scale (default: every scale)")
    ge.add_argument("--views", default=None, metavar="A,B", help="with --all: only runs of these conditions")
    ge.add_argument("--prompts", type=int, default=100, help="held-out prompts (default 100)")
    ge.add_argument("--seeds", type=int, default=10, help="continuations per prompt (default 10)")
    ge.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    ge.add_argument("--force", action="store_true", help="sample and judge again even where cached")
    _add_store_args(ge, progress=True)
    ge.set_defaults(func=cmd_generate)

    le = stages.add_parser("lens", help="latent transcription: each layer's logit lens over the text vocabulary at "
                           "positions inside spoken words (interleaved views), Recall@k of the word's and the next "
                           "word's first text piece, beside a shuffled-target baseline")
    le.add_argument("--run", action="append", required=True, metavar="REF",
                    help="a run folder, a checkpoint (.pt) or an MLflow run id; repeat to compare runs in one figure")
    le.add_argument("--utterances", type=int, default=200, help="held-out (test split) utterances read (default 200)")
    le.add_argument("--k", default="1,5,10", metavar="K,K", help="the k of Recall@k (default 1,5,10)")
    le.add_argument("--positions", choices=["all", "last"], default="all",
                    help="a word's positions: every frame of it (default) or its last frame only")
    le.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples of utterances (default 2000)")
    le.add_argument("--seed", type=int, default=0, help="utterance order, shuffled targets, bootstrap (default 0)")
    le.add_argument("--out", default=None, help="where the figure and table go (default results/<scale>/lens; "
                    "written with two runs or more, or when named)")
    le.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    le.add_argument("--force", action="store_true", help="read again even where lens.json has these settings")
    _add_store_args(le)
    le.add_argument("--no-mlflow", action="store_true", help="write <run>/lens only")
    le.add_argument("--no-progress", action="store_true", help="no progress bars")
    le.set_defaults(func=cmd_lens)

    cp = stages.add_parser("compare", help="paired difference of two scored runs (or seed groups) on common items")
    cp.add_argument("--a", action="append", required=True, metavar="RUN", help="the reference run(s); repeat for seeds")
    cp.add_argument("--b", action="append", required=True, metavar="RUN", help="the compared run(s)")
    cp.add_argument("--key", default="eval/sblimp", help="which result, e.g. eval/sblimp/test-heldout")
    cp.add_argument("--margin", type=float, default=0.02, help="equivalence margin (accuracy units)")
    cp.add_argument("--runs-dir", default="runs")
    cp.add_argument("--tracking-uri", default=None)
    cp.add_argument("--json", action="store_true")
    cp.set_defaults(func=cmd_compare)

    pl = stages.add_parser("plan", help="what a factor (or all) would run: cached steps, missing steps, time estimates")
    pl.add_argument("items", nargs="*", metavar="[FACTOR] [key=value ...]",
                    help="A, B, C or all (default), then overrides of every run's training config")
    pl.add_argument("--views", default=None, metavar="A,B", help="plan these conditions instead of a factor's")
    _add_plan_args(pl)
    pl.set_defaults(func=cmd_plan)
    fa = stages.add_parser("factor", help="run a factor's missing steps (train, eval), then print its Table 3 rows")
    fa.add_argument("items", nargs="+", metavar="FACTOR [key=value ...]",
                    help="A, B, C or all (the paper: every condition), then overrides of every run's training config")
    fa.add_argument("--out", default=None, help="where the tables and figures go (default results/<scale>; one "
                    "factor: results/<scale>/factor-<x>, for C factor-c-<tokenizer>)")
    _add_plan_args(fa)
    fa.set_defaults(func=cmd_factor)

    for name, func, what, out in (
            ("remedies", cmd_remedies, "the paper's remedies (unit dedup, unit BPE, 25 and 12.5 Hz units): train, score, "
             "and the share of the speech-varied → phone gap each closes", "results/<scale>/remedies"),
            ("sweep", cmd_sweep, "factor C knob by knob: speech on each knob-alone rendering (speaker, rate, pitch, "
             "range) against speech-fixed, rate's duration and acoustic parts", "results/<scale>/factor-c-sweep"),
            ("interleave", cmd_interleave, "text supervision of speech: word-level interleaving (equal total or "
             "speech tokens) and a warm start from text-bpe, each condition's share of factor C's cost removed",
             "results/<scale>/interleave")):
        cp_ = stages.add_parser(name, help=what)
        cp_.add_argument("overrides", nargs="*", metavar="key=value", help="overrides of every run's training config")
        cp_.add_argument("--out", default=None, help=f"where the table and figure go (default {out})")
        cp_.add_argument("--plan-only", action="store_true", help="print what would run, run nothing")
        _add_plan_args(cp_, rate=False)
        cp_.set_defaults(func=func)

    _add_issue25_parsers(stages)

    ui = stages.add_parser("ui", help="the MLflow UI over the runs, on 127.0.0.1 (Ctrl-C stops it)")
    ui.add_argument("--runs-dir", default="runs")
    ui.add_argument("--tracking-uri", default=None)
    ui.add_argument("--host", default="127.0.0.1", help="another host makes the UI reachable from the network")
    ui.add_argument("--port", type=int, default=5000)
    ui.add_argument("--no-browser", action="store_true", help="only print the address (default: open the runs list "
                    "in the desktop's browser where there is one)")
    ui.set_defaults(func=cmd_ui)

    rp = stages.add_parser("report", help="Tables 3 and 4 and Figs. 1, 2, 4 from the scored runs of a scale → results/")
    rp.add_argument("--scale", default="cpu", help="whose scored runs go into results/<scale>/; " + SCALE_HELP)
    rp.add_argument("--factor", choices=["A", "B", "C"], default=None, help="only this factor's conditions and rows")
    rp.add_argument("--views", default=None, metavar="A,B", help="only these conditions")
    rp.add_argument("--out", default=None, help="output folder (default results/<scale>)")
    rp.add_argument("--runs-dir", default="runs")
    rp.add_argument("--tracking-uri", default=None)
    rp.set_defaults(func=cmd_report)

    runs_cmds = _commands(stages, "runs", "scored runs as portable bundles (no weights), to report seeds from "
                          "several machines together")
    pk = runs_cmds.add_parser("pack", help="bundle every finished, scored run of a scale: run.json, config, "
                              "summaries, item scores, MLflow record → OUT/<view>/<run>/")
    pk.add_argument("--scale", default="cpu", help=SCALE_HELP)
    pk.add_argument("--out", required=True, help="bundle folder, e.g. results/cpu/runs (a run packed again replaces "
                    "its bundle only when it changed)")
    pk.add_argument("--views", default=None, metavar="A,B", help="only these conditions")
    _add_store_args(pk)
    pk.set_defaults(func=cmd_runs_pack)
    up = runs_cmds.add_parser("unpack", help="register the bundles under a folder as finished MLflow runs in "
                              "--runs-dir (once each), so `modevo report` includes them")
    up.add_argument("source", help="a folder of bundles (modevo runs pack --out)")
    _add_store_args(up)
    up.set_defaults(func=cmd_runs_unpack)

    return parser


def _add_issue25_parsers(stages) -> None:
    """`modevo export` and `modevo probe` (issue 25)."""
    ex = stages.add_parser("export", help="a run's milestone as a Hugging Face LlamaForCausalLM folder (config.json, "
                           "model.safetensors, vocab.json) for transformer-lens / nnsight / tuned-lens")
    ex.add_argument("--run", required=True, metavar="REF", help="a run folder, a checkpoint (.pt) or an MLflow run id")
    ex.add_argument("--format", choices=["hf"], default="hf", help="hf: LlamaForCausalLM (the only format)")
    ex.add_argument("--milestone", default="final",
                    help="final (default), a milestone name (tokens-000123) or its token count")
    ex.add_argument("--out", default=None, help="output folder (default <run>/export/hf-<milestone>)")
    ex.add_argument("--force", action="store_true", help="replace --out even if it is not an earlier export")
    _add_store_args(ex)
    ex.set_defaults(func=cmd_export)

    pr = stages.add_parser("probe", help="linear probes of every layer (phone, place, manner, voicing, speaker, "
                           "pitch, word) with majority and shuffled-label controls → <run>/probes/, MLflow")
    pr.add_argument("--run", required=True, action="append", metavar="REF",
                    help="a run folder, a checkpoint (.pt) or an MLflow run id; repeat it for one figure line per run")
    pr.add_argument("--out", default=None,
                    help="also write the figures of all runs here (default with several --run: results/probes)")
    pr.add_argument("--probes", default=None, metavar="A,B",
                    help="which probes (default all): phone,place,manner,voicing,speaker,pitch,word")
    pr.add_argument("--milestone", default="final",
                    help="final (default), a milestone name (tokens-000123) or its token count")
    pr.add_argument("--max-positions", type=int, default=20_000,
                    help="positions sampled per probe and split (train, test); default 20000")
    pr.add_argument("--max-utterances", type=int, default=2_000,
                    help="utterances read per split (default 2000)")
    pr.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    pr.add_argument("--force", action="store_true", help="probe again even where probes.json is current")
    pr.add_argument("--no-mlflow", action="store_true", help="write <run>/probes only")
    _add_store_args(pr, progress=True)
    pr.set_defaults(func=cmd_probe)

    ly = stages.add_parser("layers", help="what each layer keeps: probes of one run per condition of a scale (and "
                           "the text lens where the vocabulary has text) → results/<scale>/layers/")
    ly.add_argument("--scale", default="cpu", help="the scale whose finished runs are read (default cpu)")
    ly.add_argument("--conditions", default=None, metavar="A,B",
                    help="condition labels or views to read (default: every condition with a finished run)")
    ly.add_argument("--probes", default=None, metavar="A,B",
                    help="which probes (default all): phone,place,manner,voicing,speaker,pitch,word")
    ly.add_argument("--max-positions", type=int, default=20_000,
                    help="positions sampled per probe and split (default 20000)")
    ly.add_argument("--max-utterances", type=int, default=2_000, help="utterances read per split (default 2000)")
    ly.add_argument("--utterances", type=int, default=200, help="test utterances the lens reads (default 200)")
    ly.add_argument("--k", default="1,5,10", metavar="K,K", help="the k of the lens's Recall@k (default 1,5,10)")
    ly.add_argument("--out", default=None, help="output folder (default results/<scale>/layers)")
    ly.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    ly.add_argument("--force", action="store_true", help="read again even where probes.json / lens.json are current")
    ly.add_argument("--no-mlflow", action="store_true", help="write the run folders and results only")
    _add_store_args(ly, progress=True)
    ly.set_defaults(func=cmd_layers)


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a message is emitted, not when main() ran: library code
    called after main() returned (tests, notebooks) must not write to a stream that has been closed."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def _setup_logging(verbose: bool) -> None:
    """modevo's messages go to the current stderr as 'modevo: ...' lines, once per call of main()."""
    for h in [h for h in log.handlers if getattr(h, "_modevo", False)]:
        log.removeHandler(h)
    handler = _CurrentStderr()
    handler.setFormatter(logging.Formatter("modevo: %(message)s"))
    handler._modevo = True
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    log.propagate = False


# commands that keep every core busy for minutes: a second one at the same time gets a one-line warning
HEAVY = {cmd_corpus_build, cmd_corpus_align, cmd_units_build, cmd_views_build, cmd_train, cmd_eval, cmd_factor,
         cmd_remedies, cmd_sweep, cmd_sample, cmd_judge, cmd_probe, cmd_lens, cmd_layers,
         cmd_interleave}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # key=value overrides may come after options too (argparse would refuse positionals split by options)
    args, extra = parser.parse_known_args(argv)
    target = next((name for name in ("items", "overrides") if isinstance(getattr(args, name, None), list)), None)
    if extra and target and all("=" in e and not e.startswith("-") for e in extra):
        getattr(args, target).extend(extra)
    elif extra:  # name the subcommand whose --help lists its options, not the top level
        prog = " ".join(["modevo"] + [v for v in (getattr(args, "stage", None), getattr(args, "command", None)) if v])
        parser.exit(2, f"{prog}: error: unrecognized arguments: {' '.join(extra)} (see {prog} --help)\n")
    _setup_logging(args.verbose)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    func: Callable[[argparse.Namespace], int] = args.func
    command = " ".join(["modevo", *(sys.argv[1:] if argv is None else argv)])
    try:
        with heavy_job(command) if func in HEAVY else contextlib.nullcontext() as shared:
            if func in HEAVY:
                n, why = set_threads(bool(shared))
                log.debug("%d thread(s) per process (%s)", n, why)
            return func(args)
    except ModevoError as e:
        print(f"modevo: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("modevo: interrupted; finished work is kept and a rerun resumes", file=sys.stderr)
        return 130
    except Exception as e:  # a full disk or an unwritable folder, anywhere in a command (wrapped or not): one line
        from modevo.cache import fault_line

        line = fault_line(e)
        if line is None:
            raise
        print(f"modevo: error: {line}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
