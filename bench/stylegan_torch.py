#!/usr/bin/env python3
"""PyTorch twin of Condor's StyleGAN-like training step (`bench_text_to_image --config
configs/birds-stylegan-gpu.toml`), for a side-by-side comparison in `just bench-gpu`.

It reads the same run config and builds the same models, layer for layer as in plugins/stylegan:
  * generator: z and the conditioning-augmentation code (each normalised by its second moment) through
    the equalised-learning-rate mapping network (lr multiplier 0.01) to w; a learned 4x4 constant, two
    3x3 modulated convolutions with demodulation per resolution (one at 4x4), per-layer noise with
    learned strengths, bilinear upsampling, toRGB outputs summed across resolutions; in training, style
    mixing and the moving average of w;
  * discriminator: StyleGAN2's residual one with minibatch standard deviation, the projection term
    and, with `text_concat`, the text code tiled over the 4x4 features;
and times the same iteration: one discriminator update with the three GAN-CLS terms (label smoothing and
instance noise as configured; the lazy R1 penalty
on iterations divisible by its interval; exact, by double backpropagation, where Condor uses a central
difference), one generator update on a batch plus a GAN-INT batch of interpolated captions with the CA
KL term, the non-saturating loss, Adam with the config's betas and rates, and the generator EMA. Images
and sentence embeddings are random stand-ins, as in bench/dcgan_torch.py.

    python bench/stylegan_torch.py [--config configs/birds-stylegan-gpu.toml] [--steps 5] [--device cuda]
"""
import argparse
import math
import os
import resource
import sys
import tomllib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dcgan_torch import ROOT, timed_throughput  # noqa: E402

SQRT2 = math.sqrt(2.0)


def stylegan_modules(torch, nn, F):
    """The StyleGAN-like generator and residual discriminator of plugins/stylegan."""

    def lrelu(x):
        return F.leaky_relu(x, 0.2) * SQRT2

    def normalize(x):
        return x * (x.square().mean(1, keepdim=True) + 1e-8).rsqrt()

    def channels(r, base, top):
        return max(min(base // r, top), 1)

    class EqualLinear(nn.Module):
        def __init__(self, fan_in, fan_out, lr_mul=1.0, bias_init=0.0):
            super().__init__()
            self.weight = nn.Parameter(torch.randn(fan_out, fan_in) / lr_mul)
            self.bias = nn.Parameter(torch.full((fan_out,), bias_init / lr_mul))
            self.gain, self.lr_mul = lr_mul / math.sqrt(fan_in), lr_mul

        def forward(self, x):
            return F.linear(x, self.weight * self.gain, self.bias * self.lr_mul)

    class EqualConv(nn.Module):
        def __init__(self, c_in, c_out, k, bias=True):
            super().__init__()
            self.weight = nn.Parameter(torch.randn(c_out, c_in, k, k))
            self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None
            self.gain, self.pad = 1 / math.sqrt(c_in * k * k), k // 2

        def forward(self, x):
            return F.conv2d(x, self.weight * self.gain, self.bias, padding=self.pad)

    class ModulatedConv(nn.Module):
        """StyleGAN2's non-fused modulated convolution, as in plugins/stylegan/src/layers.rs."""

        def __init__(self, c_in, c_out, k, w_dim, demodulate):
            super().__init__()
            self.weight = nn.Parameter(torch.randn(c_out, c_in, k, k))
            self.affine = EqualLinear(w_dim, c_in, 1.0, 1.0)
            self.gain, self.pad, self.demodulate = 1 / math.sqrt(c_in * k * k), k // 2, demodulate

        def forward(self, x, w):
            s = self.affine(w)
            weight = self.weight * self.gain
            y = F.conv2d(x * s[:, :, None, None], weight, padding=self.pad)
            if not self.demodulate:
                return y
            norms = (s.square() @ weight.square().sum((2, 3)).t() + 1e-8).sqrt()
            return y / norms[:, :, None, None]

    def up(x):
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)

    class StyleLayer(nn.Module):
        def __init__(self, c_in, c_out, upsample, w_dim):
            super().__init__()
            self.conv = ModulatedConv(c_in, c_out, 3, w_dim, True)
            self.noise_strength = nn.Parameter(torch.zeros(c_out))
            self.bias = nn.Parameter(torch.zeros(c_out))
            self.upsample = upsample

        def forward(self, x, w):
            y = self.conv(up(x) if self.upsample else x, w)
            noise = torch.randn(y.shape[0], 1, y.shape[2], y.shape[3], device=y.device, dtype=y.dtype)
            return lrelu(y + noise * self.noise_strength[None, :, None, None] + self.bias[None, :, None, None])

    class ToRgb(nn.Module):
        def __init__(self, c_in, c_out, w_dim):
            super().__init__()
            self.conv = ModulatedConv(c_in, c_out, 1, w_dim, False)
            self.bias = nn.Parameter(torch.zeros(c_out))

        def forward(self, x, w):
            return self.conv(x, w) + self.bias[None, :, None, None]

    class Generator(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.z_dim, self.ca_dim, self.w_dim = c["z_dim"], c["augmentation"]["dim"], c["w_dim"]
            self.mixing, self.w_avg_decay = c.get("style_mixing", 0.9), c.get("w_avg_decay", 0.995)
            self.kl_weight = c["augmentation"].get("kl_weight", 1.0)
            self.ca = EqualLinear(c["cond_dim"], 2 * self.ca_dim)
            lr_mul = c.get("mapping_lr_mul", 0.01)
            self.mapping = nn.ModuleList(
                EqualLinear(self.z_dim + self.ca_dim if i == 0 else self.w_dim, self.w_dim, lr_mul)
                for i in range(c.get("mapping_layers", 8))
            )
            self.register_buffer("w_avg", torch.zeros(self.w_dim))
            ch = lambda r: channels(r, c.get("channel_base", 1024), c.get("channel_max", 128))
            self.const = nn.Parameter(torch.randn(ch(4), 4, 4))
            self.layers, self.to_rgb, self.layers_per_block = nn.ModuleList(), nn.ModuleList(), []
            r = 4
            while r <= c.get("image_size", 32):
                block = [StyleLayer(ch(4), ch(4), False, self.w_dim)] if r == 4 else [
                    StyleLayer(ch(r // 2), ch(r), True, self.w_dim), StyleLayer(ch(r), ch(r), False, self.w_dim)]
                self.layers.extend(block)
                self.layers_per_block.append(len(block))
                self.to_rgb.append(ToRgb(ch(r), c.get("channels", 3), self.w_dim))
                r *= 2
            self.style_count = len(self.layers) + 1

        def stats(self, e):
            h = self.ca(normalize(e))
            return h[:, : self.ca_dim], h[:, self.ca_dim :]

        def map(self, z, code):
            x = torch.cat([normalize(z), normalize(code)], 1)
            for layer in self.mapping:
                x = lrelu(layer(x))
            return x

        def forward(self, z, e):
            mu, log_sigma = self.stats(e)
            code = mu + log_sigma.exp() * z[:, self.z_dim :]
            w = self.map(z[:, : self.z_dim], code)
            self.w_avg.copy_(self.w_avg_decay * self.w_avg + (1 - self.w_avg_decay) * w.detach().mean(0))
            b, n = w.shape[0], self.style_count
            # Style mixing: with probability `mixing` a sample takes a second latent's styles from a
            # random layer on.
            mixed = torch.rand(b, device=w.device) < self.mixing
            cutoff = torch.where(mixed, torch.randint(1, n, (b,), device=w.device), torch.full((b,), n, device=w.device))
            w2 = self.map(torch.randn(b, self.z_dim, device=w.device), code)
            keep = (torch.arange(n, device=w.device)[None] < cutoff[:, None]).to(w.dtype)[:, :, None]
            ws = w[:, None] * keep + w2[:, None] * (1 - keep)
            x = self.const[None].expand(b, -1, -1, -1)
            img, i = None, 0
            for count, to_rgb in zip(self.layers_per_block, self.to_rgb):
                for layer in self.layers[i : i + count]:
                    x = layer(x, ws[:, i])
                    i += 1
                rgb = to_rgb(x, ws[:, i])
                img = rgb if img is None else up(img) + rgb
            return torch.tanh(img)

        def kl(self, e):
            mu, log_sigma = self.stats(e)
            return self.kl_weight * (0.5 * (mu.square() + (2 * log_sigma).exp() - 1) - log_sigma).mean()

    def minibatch_stddev(x, group, features):
        b, c, h, w = x.shape
        g = max(d for d in range(1, min(group, b) + 1) if b % d == 0)
        m = b // g
        y = x.reshape(g, m, features, c // features, h, w)
        std = ((y - y.mean(0)).square().mean(0) + 1e-8).sqrt()
        stat = std.flatten(2).mean(2).reshape(1, m, features, 1, 1).expand(g, m, features, h, w)
        return torch.cat([x, stat.reshape(b, features, h, w)], 1)

    class ResBlock(nn.Module):
        def __init__(self, c_in, c_out):
            super().__init__()
            self.conv0, self.conv1 = EqualConv(c_in, c_in, 3), EqualConv(c_in, c_out, 3)
            self.skip = EqualConv(c_in, c_out, 1, bias=False)

        def forward(self, x):
            skip = self.skip(F.avg_pool2d(x, 2))
            h = lrelu(self.conv1(F.avg_pool2d(lrelu(self.conv0(x)), 2)))
            return (skip + h) / SQRT2

    class Discriminator(nn.Module):
        def __init__(self, c):
            super().__init__()
            size = c.get("image_size", 32)
            ch = lambda r: channels(r, c.get("channel_base", 1024), c.get("channel_max", 128))
            self.group, self.features = c.get("mbstd_group", 4), c.get("mbstd_features", 1)
            self.from_rgb = EqualConv(c.get("channels", 3), ch(size), 1)
            res = [size >> i for i in range(int(math.log2(size)) - 2)]
            self.blocks = nn.Sequential(*(ResBlock(ch(r), ch(r // 2)) for r in res))
            c4 = ch(4)
            extra = self.features if self.group > 0 else 0
            concat = c.get("text_concat", 0)
            self.conv = EqualConv(c4 + extra + concat, c4, 3)
            self.fc, self.out = EqualLinear(c4 * 16, c4), EqualLinear(c4, 1)
            self.projection = EqualLinear(c["cond_dim"], c4)
            self.text_code = EqualLinear(c["cond_dim"], concat) if concat else None

        def forward(self, x, e):
            h = self.blocks(lrelu(self.from_rgb(x)))
            if self.group > 0:
                h = minibatch_stddev(h, self.group, self.features)
            e = normalize(e)
            if self.text_code is not None:
                code = lrelu(self.text_code(e))
                h = torch.cat([h, code[:, :, None, None].expand(-1, -1, 4, 4)], 1)
            h = lrelu(self.fc(lrelu(self.conv(h)).flatten(1)))
            return self.out(h).view(-1) + (self.projection(e) * h).sum(1) / math.sqrt(h.shape[1])

    return Generator, Discriminator


def train_throughput(torch, device, config, steps, warmup):
    nn, F = torch.nn, torch.nn.functional
    Generator, Discriminator = stylegan_modules(torch, nn, F)
    gc, dc = config["generator"]["config"], config["discriminator"]["config"]
    g, d = Generator(gc).to(device), Discriminator(dc).to(device)
    count = lambda m: sum(p.numel() for p in m.parameters())
    print(f"parameters: generator {count(g)}, discriminator {count(d)}", file=sys.stderr)
    ema = Generator(gc).to(device).requires_grad_(False)
    ema.load_state_dict(g.state_dict())
    training, opt = config.get("training", {}), config.get("optimizer", {})

    def adam(params, o):
        return torch.optim.Adam(params, o.get("lr", 2e-4), betas=(o.get("beta1", 0.5), o.get("beta2", 0.999)))

    opt_g, opt_d = adam(g.parameters(), opt.get("generator", {})), adam(d.parameters(), opt.get("discriminator", {}))
    r1 = training.get("r1")
    ema_cfg = training.get("ema") or {}
    bce = F.binary_cross_entropy_with_logits
    b, size, cond = config["batch_size"], gc.get("image_size", 32), gc["cond_dim"]
    latent = g.z_dim + g.ca_dim
    ones, zeros = torch.full((b,), 1.0 - training.get("label_smoothing", 0.0), device=device), torch.zeros(b, device=device)
    sigma = (training.get("instance_noise") or {}).get("sigma", 0.0)

    def noisy(x):
        return x + sigma * torch.randn_like(x) if sigma > 0 else x

    def step(i):
        x = noisy(torch.rand(b, 3, size, size, device=device) * 2 - 1)
        e = F.normalize(torch.randn(b, cond, device=device), dim=1)
        fake = noisy(g(torch.randn(b, latent, device=device), e).detach())
        wrong = torch.roll(e, -1, 0)
        regularise = r1 is not None and i % r1.get("every", 16) == 0
        x.requires_grad_(regularise)
        d_real = d(x, e)
        loss_d = bce(d_real, ones) + 0.5 * (bce(d(x, wrong), zeros) + bce(d(fake, e), zeros))
        if regularise:
            (grad,) = torch.autograd.grad(d_real.sum(), x, create_graph=True)
            penalty = r1.get("gamma", 10.0) / 2 * grad.square().sum() / b
            loss_d = loss_d + penalty * r1.get("every", 16)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        e_g = F.normalize(torch.randn(b, cond, device=device), dim=1)
        e_all = torch.cat([e_g, 0.5 * e_g + 0.5 * torch.roll(e_g, -1, 0)], 0)
        logits = d(noisy(g(torch.randn(2 * b, latent, device=device), e_all)), e_all)
        loss_g = F.softplus(-logits[:b]).mean() + F.softplus(-logits[b:]).mean() + g.kl(e_all)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        with torch.no_grad():
            decay = ema_cfg.get("decay", 0.999) if i >= ema_cfg.get("start_step", 0) else 0.0
            for pe, p in zip(ema.parameters(), g.parameters()):
                pe.lerp_(p, 1 - decay)
            for be, bg in zip(ema.buffers(), g.buffers()):
                be.copy_(bg)

    return timed_throughput(torch, device, step, b, steps, warmup)


def fill_from_data(config):
    """Condor fills the model fields a config leaves to its data (image size, conditioning size:
    MiniLM's 384 for captioned birds); the same here."""
    size = config["data"].get("size", 64)
    for net in ("generator", "discriminator"):
        c = config[net].setdefault("config", {})
        c.setdefault("image_size", size)
        c.setdefault("cond_dim", 384)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=os.path.join(ROOT, "configs", "birds-stylegan-gpu.toml"))
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="f32", help="f32, or bf16 (autocast) on a GPU")
    args = ap.parse_args()
    try:
        import torch
    except ImportError:
        print("torch is not installed: pip install torch")
        sys.exit(1)
    torch.set_num_threads(os.cpu_count() or 1)
    with open(args.config, "rb") as f:
        config = tomllib.load(f)
    fill_from_data(config)
    if config["generator"]["plugin"] != "stylegan" or config["discriminator"]["plugin"] != "stylegan":
        sys.exit(f"{args.config} is not a stylegan config")
    device = torch.device(args.device)
    torch.manual_seed(0)
    if args.precision == "bf16":
        with torch.autocast(device.type, dtype=torch.bfloat16):
            ips = train_throughput(torch, device, config, args.steps, args.warmup)
    else:
        ips = train_throughput(torch, device, config, args.steps, args.warmup)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gpu = ""
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        gpu = f" (GPU in use: {(total - free) / 2**20:.0f} MiB; peak allocated {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB)"
    print(f"| PyTorch {torch.__version__} ({args.device}, {torch.get_num_threads()} threads, {args.precision}) | "
          f"{ips:.1f} img/s | n/a | train {rss:.0f} MiB{gpu} |")


if __name__ == "__main__":
    main()
