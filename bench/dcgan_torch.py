#!/usr/bin/env python3
"""PyTorch twin of Condor's text-to-image benchmark (`just bench`), for a side-by-side comparison.

It builds the same models and the same training step as Condor's `bench_text_to_image` example:
  * the text-conditional DCGAN of configs/birds-gpu.toml (64x64, width 64, StackGAN conditioning
    augmentation, projection term in the discriminator, 384-dim sentence embeddings), DCGAN
    initialisation;
  * one iteration = one discriminator update with the three GAN-CLS terms (real/right,
    real/wrong, fake/right) and one generator update on a batch plus a GAN-INT half-batch of
    interpolated captions, non-saturating loss, CA KL term, Adam(beta1 0.5; lr 1e-3 for G, 2e-4 for D); batch 64;
and prints the same figures: train-step throughput (images/s), txt2img latency (process start to PNG
written, for the shipped 32x32 checkpoint and the shipped MiniLM text encoder, run in PyTorch) and
peak memory (max RSS).

Needs torch, numpy, safetensors, tokenizers and pillow (`pip install torch numpy safetensors tokenizers
pillow`). Condor itself does not depend on any of them.

    python bench/dcgan_torch.py              # everything
    python bench/dcgan_torch.py --steps 20   # more timed steps
"""
import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time

START = time.perf_counter()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def dcgan_modules(torch, nn, F):
    """The conditional DCGAN generator and discriminator, layer for layer as in plugins/dcgan."""

    class Generator(nn.Module):
        def __init__(self, noise=100, cond=384, ca=128, size=64, width=64, channels=3):
            super().__init__()
            n = int(math.log2(size)) - 2
            self.noise, self.ca_dim, self.top = noise, ca, width << (n - 1)
            self.ca = nn.Linear(cond, 2 * ca)
            self.project = nn.Linear(noise + ca, self.top * 16, bias=False)
            self.project_bn = nn.BatchNorm2d(self.top)
            ups = []
            for i in range(n - 1):
                cin, cout = self.top >> i, self.top >> (i + 1)
                ups += [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
            self.ups = nn.Sequential(*ups)
            self.to_rgb = nn.ConvTranspose2d(width, channels, 4, 2, 1)

        def stats(self, e):
            h = self.ca(e)
            return h[:, : self.ca_dim], h[:, self.ca_dim :]

        def forward(self, z, e):
            mu, log_sigma = self.stats(e)
            code = mu + log_sigma.exp() * z[:, self.noise :]
            x = self.project(torch.cat([z[:, : self.noise], code], 1)).view(-1, self.top, 4, 4)
            x = F.relu(self.project_bn(x))
            return torch.tanh(self.to_rgb(self.ups(x)))

        def kl(self, e):
            mu, log_sigma = self.stats(e)
            return (0.5 * (mu**2 + (2 * log_sigma).exp() - 1) - log_sigma).mean()

    class Discriminator(nn.Module):
        def __init__(self, cond=384, proj=128, size=64, width=64, channels=3):
            super().__init__()
            n = int(math.log2(size)) - 2
            layers = [nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2)]
            for i in range(1, n):
                cin, cout = width << (i - 1), width << i
                layers += [nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2)]
            self.features = nn.Sequential(*layers)
            top = width << (n - 1)
            self.text = nn.Linear(cond, proj)
            self.joint = nn.Conv2d(top + proj, top, 1, bias=False)
            self.joint_bn = nn.BatchNorm2d(top)
            self.projection = nn.Linear(cond, top, bias=False)
            self.logit = nn.Conv2d(top, 1, 4)

        def forward(self, x, e):
            h = self.features(x)
            projected = (self.projection(e) * h.sum((2, 3))).sum(1)
            code = F.leaky_relu(self.text(e), 0.2)[:, :, None, None].expand(-1, -1, 4, 4)
            h = F.leaky_relu(self.joint_bn(self.joint(torch.cat([h, code], 1))), 0.2)
            return self.logit(h).view(-1) + projected

    def init(m):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)

    return Generator, Discriminator, init


def train_throughput(torch, device, steps, warmup):
    nn, F = torch.nn, torch.nn.functional
    Generator, Discriminator, init = dcgan_modules(torch, nn, F)
    g, d = Generator().to(device), Discriminator().to(device)
    g.apply(init)
    d.apply(init)
    opt_g = torch.optim.Adam(g.parameters(), 1e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999))
    bce = F.binary_cross_entropy_with_logits
    b, latent = 64, 100 + 128
    ones, zeros = torch.ones(b, device=device), torch.zeros(b, device=device)

    def step(_):
        x = torch.rand(b, 3, 64, 64, device=device) * 2 - 1
        e = F.normalize(torch.randn(b, 384, device=device), dim=1)
        fake = g(torch.randn(b, latent, device=device), e).detach()
        wrong = torch.roll(e, -1, 0)
        loss_d = bce(d(x, e), ones) + 0.5 * (bce(d(x, wrong), zeros) + bce(d(fake, e), zeros))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        e_g = F.normalize(torch.randn(b, 384, device=device), dim=1)
        e_all = torch.cat([e_g, 0.5 * e_g + 0.5 * torch.roll(e_g, -1, 0)], 0)
        logits = d(g(torch.randn(2 * b, latent, device=device), e_all), e_all)
        loss_g = bce(logits[:b], ones) + bce(logits[b:], ones) + g.kl(e_all)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()

    return timed_throughput(torch, device, step, b, steps, warmup)


def timed_throughput(torch, device, step, batch, steps, warmup):
    """Images/s of `step(i)` (one training iteration of `batch` images) over `steps` timed iterations
    after `warmup` untimed ones; iterations are numbered from 0, warm-up included."""
    for i in range(warmup):
        step(i)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for i in range(warmup, warmup + steps):
        step(i)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - t)


def txt2img(prompt, out):
    """Process start to PNG: MiniLM in PyTorch, the shipped generator, a 4-image grid."""
    import numpy as np
    import torch
    from PIL import Image
    from safetensors.torch import load_file
    from tokenizers import Tokenizer

    nn, F = torch.nn, torch.nn.functional
    enc_dir = os.path.join(ROOT, "weights", "all-MiniLM-L6-v2")
    cfg = json.load(open(os.path.join(enc_dir, "config.json")))
    w = {k: v.float() for k, v in load_file(os.path.join(enc_dir, "model.safetensors")).items()}
    w = {k.removeprefix("bert."): v for k, v in w.items()}
    tok = Tokenizer.from_file(os.path.join(enc_dir, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(128)
    ids = torch.tensor([tok.encode(prompt).ids])
    heads, hidden = cfg["num_attention_heads"], cfg["hidden_size"]
    ln = lambda x, p: F.layer_norm(x, (hidden,), w[p + ".weight"], w[p + ".bias"], 1e-12)
    lin = lambda x, p: F.linear(x, w[p + ".weight"], w[p + ".bias"])
    with torch.no_grad():
        pos = torch.arange(ids.shape[1])[None]
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][pos]
        x = ln(x + w["embeddings.token_type_embeddings.weight"][0], "embeddings.LayerNorm")
        for i in range(cfg["num_hidden_layers"]):
            p = f"encoder.layer.{i}."
            split = lambda t: t.view(1, -1, heads, hidden // heads).transpose(1, 2)
            q, k, v = (split(lin(x, p + f"attention.self.{n}")) for n in ("query", "key", "value"))
            a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(1, -1, hidden)
            x = ln(x + lin(a, p + "attention.output.dense"), p + "attention.output.LayerNorm")
            h = F.gelu(lin(x, p + "intermediate.dense"))
            x = ln(x + lin(h, p + "output.dense"), p + "output.LayerNorm")
        e = F.normalize(x.mean(1), dim=1)
        ckpt = os.path.join(ROOT, "weights", "birds-dcgan-32.safetensors")
        from safetensors import safe_open

        with safe_open(ckpt, "pt") as f:
            gw = {k: f.get_tensor(k) for k in f.keys()}
            meta = f.metadata()
        gcfg = json.loads(meta["condor.config"])["generator"]["config"]
        Generator, _, _ = dcgan_modules(torch, nn, F)
        g = Generator(
            noise=gcfg.get("noise_dim", 100),
            ca=(gcfg.get("augmentation") or {}).get("dim", 128),
            size=gcfg.get("image_size", 32),
            width=gcfg.get("width", 32),
        )
        g.load_state_dict(torch_state(g, gw), strict=True)
        g.eval()
        img = g(torch.randn(4, g.noise + g.ca_dim), e.repeat(4, 1))
        im = ((img.clamp(-1, 1) + 1) * 127.5).byte().permute(0, 2, 3, 1).numpy()
        Image.fromarray(np.concatenate(list(im), 1)).save(out)


def torch_state(g, tensors):
    """Maps Condor's generator tensor names (`ema.` or `g.` prefix) onto the PyTorch module's."""
    prefix = "ema." if any(k.startswith("ema.") for k in tensors) else "g."
    ours = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    state = {}
    for name in g.state_dict():
        if name.endswith("num_batches_tracked"):
            state[name] = g.state_dict()[name]
            continue
        key = name
        if name.startswith("ups."):
            idx, rest = name.split(".")[1:3]
            stage, kind = divmod(int(idx), 3)
            key = f"up{stage}.{rest}" if kind == 0 else f"up{stage}_bn.{rest}"
        state[name] = ours[key]
    return state


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--txt2img-child", metavar="OUT", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.txt2img_child:
        txt2img("a red bird", args.txt2img_child)
        return
    try:
        import torch
    except ImportError:
        print("torch is not installed: pip install torch numpy safetensors tokenizers pillow")
        sys.exit(1)
    torch.set_num_threads(os.cpu_count() or 1)
    out = os.path.join("/tmp", f"condor-bench-torch-{os.getpid()}.png")
    t = time.perf_counter()
    child = subprocess.run([sys.executable, __file__, "--txt2img-child", out], capture_output=True, text=True)
    latency = time.perf_counter() - t
    if child.returncode != 0 or not os.path.exists(out):
        print(child.stderr)
        latency = float("nan")
    child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    ips = train_throughput(torch, torch.device(args.device), args.steps, args.warmup)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"| PyTorch {torch.__version__} ({args.device}, {torch.get_num_threads()} threads) | "
          f"{ips:.1f} img/s | {latency:.2f} s | train {rss:.0f} MiB, txt2img {child_rss:.0f} MiB |")


if __name__ == "__main__":
    main()
