# modevo — the two commands a fresh clone needs: `make smoke` (main job on the embedded default) and
# `make test` (the suite). Each does all set-up first through `make setup` (idempotent, stamp file).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
MODEVO := $(VENV)/bin/modevo
STAMP := $(VENV)/.setup-stamp
SCALE ?= cpu
SEEDS ?= 0
TOKENIZER ?= mel-kmeans
RATE ?= 50hz
FACTOR ?= all
SEED ?= 0
BUDGET ?= tokens
VIEWS ?= text-bpe text-char phone-bpe phone phone-repeat@mean phone-repeat@fixed phone-repeat@varied speech-fixed speech-varied
export HF_DATASETS_OFFLINE := 1
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: bench coverage faults setup test test-long smoke corpus views stats train tune eval factor-a factor-b factor-c paper remedies factor-c-sweep interleave layers plan report pack unpack clean-cache help ui

help:
	@echo "make smoke   the main job on the vendored novels: corpus, every view, a tiny model per view, scored, then Tables 3-4 (does setup)"
	@echo "make test    run the test suite offline (does setup)"
	@echo "make setup   venv + torch 2.13.0 CPU + modevo[test] + espeak-ng/MBROLA (idempotent)"
	@echo "make corpus SCALE=smoke|cpu|paper   build one scale's corpus (text, phones, renderings)"
	@echo "make views SCALE=...                 build every view (units and BPE as needed); make stats SCALE=..."
	@echo "make train VIEW=phone SCALE=cpu      train one condition (SEED=, BUDGET=tokens|epochs|converged)"
	@echo "make factor-a|factor-b|factor-c SCALE=cpu SEEDS=0,1,2 BUDGET=tokens TOKENIZER=mel-kmeans RATE=50hz   one ablation (RATE: both frame views of a pair at 25hz, 12.5hz...)"
	@echo "make paper SCALE=...                 every condition, then Tables 3-4 and Figs 1-3 in results/<scale>/"
	@echo "make remedies SCALE=... TOKENIZERS=\"mel-kmeans phonetic-kmeans\"   unit dedup, unit BPE, 25/12.5 Hz: gap closed"
	@echo "make factor-c-sweep SCALE=...        factor C knob by knob (speaker, rate, pitch, range) vs speech-fixed"
	@echo "make interleave SCALE=...            text supervision of speech (interleaving, warm start): factor C's cost removed"
	@echo "make layers SCALE=...                what each layer keeps: probes (+ text lens) of one run per condition"
	@echo "make plan FACTOR=A SCALE=...         what is cached, what would run and how long, before anything runs"
	@echo "make pack SCALE=...                  bundle the scale's scored runs (no weights) into results/<scale>/runs/"
	@echo "make unpack SCALE=...                register results/<scale>/runs/ as finished runs, so make paper trains only the rest"
	@echo "make eval SCALE=...                  score every finished run of the scale (sBLIMP; layerwise, baselines, CIs)"
	@echo "make bench                           every benchmark in bench/ against its same-run reference; ratios last (~15 min)"
	@echo "make coverage [QUICK=1]              simulated coverage of every interval the report prints (~15 min)"
	@echo "make faults [QUICK=1]                kill each stage at random moments, rerun, compare (10 trials per stage)"
	@echo "make ui PORT=5000                    the MLflow UI over runs/ on 127.0.0.1 (compare a factor's runs; Ctrl-C stops it)"

setup: $(STAMP)

# torch first: the CPU build 2.13.0 on disk satisfies modevo's range, so pip pulls no CUDA build.
$(STAMP): pyproject.toml scripts/setup_system.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	bash scripts/setup_system.sh
	touch $(STAMP)

# the suite (the slowest tests listed at the end); the minutes-long campaign tests are marked `long`
test: setup
	$(PY) -m pytest -q -m "not long" --durations=15

test-long: setup
	$(PY) -m pytest -q -m long

smoke: setup
	$(MODEVO) corpus build --config configs/corpus/smoke.yaml
	$(MODEVO) views build --config configs/views/smoke.yaml
	@for v in $(VIEWS); do $(MODEVO) train --config configs/train/smoke.yaml --view $$v --no-progress || exit 1; done
	$(MODEVO) eval --all --scale smoke --config configs/eval/smoke.yaml --no-progress
	$(MODEVO) report --scale smoke
	@$(PY) -m modevo.report.smoke_summary --scale smoke

# the recipe is tuned once per scale on text-bpe's validation loss (runs kept in the MLflow experiment
# modevo-tuning), then frozen in configs/train/<scale>.yaml for every condition
LRS ?= 1e-3 2e-3 4e-3
TUNE_TOKENS ?= 1000000
tune: setup
	@for lr in $(LRS); do $(MODEVO) train --config configs/train/$(SCALE).yaml --view text-bpe train.lr=$$lr \
	  train.max_tokens=$(TUNE_TOKENS) train.experiment=modevo-tuning --no-progress || exit 1; done

# one condition: make train VIEW=phone SCALE=cpu [SEED=1 BUDGET=epochs]
train: setup
	$(MODEVO) train --config configs/train/$(SCALE).yaml --view $(VIEW) train.seed=$(SEED) train.budget=$(BUDGET)

# the factor ablations: run what is missing (cached corpus, units, views, runs, scores), then print the
# factor's rows of Table 3; `make paper` runs every condition and writes Tables 3-4 and Figs 1-3
# GENERATE=0 skips sampling and judging continuations (the continuation PPL column)
GENERATE ?= 1
FACTOR_ARGS = --scale $(SCALE) --seeds $(SEEDS) --budget $(BUDGET) --tokenizer $(TOKENIZER) --rate $(RATE) \
	$(if $(filter 0,$(GENERATE)),--no-generate)
factor-a factor-b factor-c: setup
	$(MODEVO) factor $(subst factor-,,$@) $(FACTOR_ARGS)

paper: setup
	$(MODEVO) factor all $(FACTOR_ARGS)

# issue 23's campaigns, one unit tokenizer after the other: the paper's remedies (share of the speech → phone
# gap each closes) → results/<scale>/remedies/; factor C knob by knob → results/<scale>/factor-c-sweep/
TOKENIZERS ?= mel-kmeans phonetic-kmeans
CAMPAIGN_ARGS = --scale $(SCALE) --seeds $(SEEDS) --budget $(BUDGET)
remedies: setup
	@for t in $(TOKENIZERS); do $(MODEVO) remedies $(CAMPAIGN_ARGS) --tokenizer $$t || exit 1; done

factor-c-sweep: setup
	@for t in $(TOKENIZERS); do $(MODEVO) sweep $(CAMPAIGN_ARGS) --tokenizer $$t || exit 1; done

# issue 25: text supervision of speech (interleaving at equal total / speech tokens, a warm start from text-bpe)
# → results/<scale>/interleave/: each condition's share of factor C's cost removed
interleave: setup
	@for t in $(TOKENIZERS); do $(MODEVO) interleave $(CAMPAIGN_ARGS) --tokenizer $$t || exit 1; done

# issue 25: what each layer keeps: probes of one run per condition (and the text lens where the vocabulary has
# text) → results/<scale>/layers/ (layers.md, probe_*.png, lens.png); run after make paper / make interleave
layers: setup
	$(MODEVO) layers --scale $(SCALE)

# scored runs without weights, committed beside the results: seeds from several machines meet in one report
pack: setup
	$(MODEVO) runs pack --scale $(SCALE) --out results/$(SCALE)/runs

unpack: setup
	$(MODEVO) runs unpack results/$(SCALE)/runs

plan: setup
	$(MODEVO) plan $(FACTOR) $(FACTOR_ARGS)

report: setup
	$(MODEVO) report --scale $(SCALE)

# score every finished run of a scale on its tasks (layerwise, baselines, CIs → run folders and MLflow)
eval: setup
	$(MODEVO) eval --all --scale $(SCALE) --config configs/eval/$(SCALE).yaml

corpus: setup
	$(MODEVO) corpus build --config configs/corpus/$(SCALE).yaml

stats: setup
	$(MODEVO) corpus stats --config configs/corpus/$(SCALE).yaml
	$(MODEVO) views stats --config configs/views/$(SCALE).yaml

views: setup
	$(MODEVO) views build --config configs/views/$(SCALE).yaml

# the MLflow UI over runs/mlflow.db, bound to 127.0.0.1 (see modevo/report/ui.py for comparing a factor's runs)
PORT ?= 5000
ui: setup
	$(MODEVO) ui --runs-dir runs --port $(PORT)

clean-cache:
	rm -rf cache

# performance: each script times modevo against a reference in the same run and prints its ratio last;
# figures append to bench/out/*.jsonl (see bench/README.md, bench/RESULTS.md)
BENCHES ?= train_throughput mfu eval_layerwise corpus_build memory gpu_train verify_cost
bench: setup test-long
	@for b in $(BENCHES); do echo "== bench/$$b.py"; $(PY) bench/$$b.py $$([ $$b = mfu ] && echo --profile) || exit 1; done

# statistics: empirical coverage of every interval the report prints (bench/coverage.py; QUICK=1: 100 replications)
coverage: setup
	$(PY) bench/coverage.py $(if $(QUICK),--reps 100,)

# reliability: SIGKILL every stage at random moments, rerun, compare with an uninterrupted run (QUICK=1: 3 trials)
faults: setup
	$(PY) bench/faults.py $(if $(QUICK),--quick,)
