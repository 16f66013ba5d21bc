#!/usr/bin/env bash
# `just train-birds [CUB_ROOT] [condor train flags...]`: train the text-to-bird DCGAN.
# Uses CUB-200-2011 (with Reed et al.'s captions) when it is at CUB_ROOT or data/CUB_200_2011, and the
# built-in synthetic birds otherwise (configs/birds-text-64.toml, after pretraining its text head).
# Flags go to `condor train`: --device cuda, --resume, --steps N, --config FILE (a preset such as
# configs/birds-gpu.toml for the synthetic birds).
set -euo pipefail
cd "$(dirname "$0")/.."

cub=data/CUB_200_2011
if [[ $# -gt 0 && $1 != -* ]]; then
    cub=$1
    shift
    [[ -f $cub/images.txt ]] || { echo "error: $cub is not a CUB-200-2011 folder (no images.txt)" >&2; exit 1; }
fi

config=configs/birds-text-64.toml
head=runs/text-heads/birds-minilm.safetensors
for arg in "$@"; do
    [[ $arg == --config ]] && config=
done

if [[ -f $cub/images.txt ]]; then
    echo "Training on CUB-200-2011 at $cub (captions looked for beside it, in text_c10/)."
    if [[ -n $config ]]; then
        mkdir -p runs
        config=runs/birds-cub.toml
        sed "s|@CUB_ROOT@|$cub|" configs/birds-cub.toml > "$config"
        echo "Config: $config (from configs/birds-cub.toml; 64x64, meant for a GPU: add --device cuda)."
    fi
else
    cat <<MSG
CUB-200-2011 is not at $cub: training on the built-in synthetic birds (configs/birds-text-64.toml,
64x64): first its text head ($head, about 5 minutes on a 2-core CPU), then the GAN (about 22 minutes).
To train on real birds, download CUB-200-2011
(https://www.vision.caltech.edu/datasets/cub_200_2011/) into data/CUB_200_2011 and Reed et al.'s
captions (text_c10, from https://github.com/reedscot/icml2016) into data/, then run this again.
MSG
    if [[ -n $config && ! -f $head ]]; then
        mkdir -p "$(dirname "$head")"
        # The head is pretrained on the 32-px birds; the 64-px run's matching loss averages its images down.
        cargo run --release -p condor-cli -- text-encoder pretrain --config configs/birds-text.toml --out "$head"
    fi
fi

exec cargo run --release -p condor-cli -- train ${config:+--config "$config"} "$@"
