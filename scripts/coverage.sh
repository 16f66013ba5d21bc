#!/usr/bin/env bash
# Trains the MLP GAN on ring-8 and grid-25 with the non-saturating and the minimax generator loss
# (3,000 steps each, one CPU thread) and prints, per run, its wall time and the mode coverage of
# 2,000 samples (a mode is hit by a sample within 3 sigma of it).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p condor-cli
out=runs/coverage
mkdir -p "$out"
for base in ring8 grid25; do
    for loss in non_saturating minimax; do
        name="$base-$loss"
        sed -e "s/^name = .*/name = \"$name\"/" -e "s/^loss = .*/loss = \"$loss\"/" "configs/$base.toml" > "$out/$name.toml"
        rm -rf "${out:?}/$name"
        start=$(date +%s.%N)
        RAYON_NUM_THREADS=1 ./target/release/condor train --config "$out/$name.toml" --runs "$out" > "$out/$name.log" 2>&1
        secs=$(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $start }")
        ckpt=$(ls "$out/$name/checkpoints/"*.safetensors | tail -n 1)
        json=$(./target/release/condor sample --checkpoint "$ckpt" --out "$out/$name.png" --n 2000 --seed 1 | head -n 1)
        echo "$name ${secs}s $json"
    done
done
echo "scatter plots: $out/*.png"
