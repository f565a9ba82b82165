#!/usr/bin/env bash
# Submit the paper's conditions at the paper's scale: one CPU job that builds every view once (corpus,
# renderings, units, BPE: no GPU needed), then one GPU job per condition × seed, each waiting for it.
#
#   NODES=1 SEEDS="0 1 2" scripts/slurm/paper_conditions.sh
#   NODES=2 STRATEGY=fsdp scripts/slurm/paper_conditions.sh            # 8 GPUs per condition, sharded
#   VIEWS="phone-repeat@varied speech-varied" scripts/slurm/paper_conditions.sh   # factor C only
#
# The corpus comes from configs/corpus/paper.yaml's sources through the views config that
# configs/train/paper.yaml includes; build the corpus first if it is not cached:
#   modevo corpus build --config configs/corpus/paper.yaml 'source.paths=[/data/books]'
# Then score every finished run:  modevo eval --all --scale paper --config configs/eval/paper.yaml
set -euo pipefail
cd "$(dirname "$0")/../.."

VIEWS=${VIEWS:-"text-bpe text-char phone-bpe phone phone-repeat@varied speech-varied"}
SEEDS=${SEEDS:-0}
NODES=${NODES:-1}
VIEWS_CONFIG=${VIEWS_CONFIG:-configs/views/cpu.yaml}   # the file configs/train/paper.yaml includes
MODEVO=${MODEVO:-.venv/bin/modevo}
mkdir -p logs

# every rank of a training job would otherwise wait while its rank zero builds the view on the GPUs
build=$(sbatch --parsable --job-name=modevo-views --nodes=1 --ntasks=1 --cpus-per-task=32 --mem=64G \
        --time=24:00:00 --output=logs/%x-%j.out \
        --wrap "$MODEVO views build --config $VIEWS_CONFIG --views $(echo $VIEWS | tr ' ' ,)")
echo "views: job $build"

for view in $VIEWS; do
    for seed in $SEEDS; do
        job=$(sbatch --parsable --dependency=afterok:"$build" --nodes="$NODES" \
              --job-name="modevo-${view//[@\/]/_}-s$seed" \
              --export=ALL,VIEW="$view",SEED="$seed",STRATEGY="${STRATEGY:-ddp}" scripts/slurm/train_paper.sbatch)
        echo "$view seed $seed: job $job"
    done
done
