#!/usr/bin/python3
"""torch-peer.py: the PyTorch side of bench/compare.

It imports the project's reference UNet, bench/torch_unet.py (build_model,
count_macs, CONFIGS, timeit), and times one configuration, printing one
JSON line in the format of bench/unet-bench.c:

  torch-peer.py --config tiny --kind train --batch 16 --size 32 --threads 2
  torch-peer.py --config small --kind fwd --batch 1 --size 128 --threads 1 \
                --blas-threads 1 --malloc tuned --channels-last --bf16
  torch-peer.py --config default --kind renoise --image 1024 --steps 20 --strength 0.5
  torch-peer.py --config default --kind renoise --image 1024 --steps 10 --sampler dpm++2m
  torch-peer.py --config tiny --kind train-e2e --batch 64 --data DIR.npy --steps 45

train:   exactly torch_unet.py's step() (q-sample, forward, MSE, zero_grad,
         backward, Adam.step).
train-e2e: a plain PyTorch training script as a user writes it: the whole
         data set in memory (a uint8 .npy of N×H×W gray images), each step
         draws a random batch, random horizontal flips, q-sample, forward,
         MSE, backward, gradient clipping at norm 1, Adam, an EMA of the
         weights (decay 0.999) — the recipe of `ddpm train`'s defaults.  Its
         time per step over --steps steps after 3 warm-up steps.
fwd:     torch_unet.py's fwd() (no_grad forward at batch B).
renoise: what `ddpm renoise` does, in PyTorch (engine/img2img.c): noise
         the image to t0 = round(strength·T) on the config's schedule (cosine
         for `default`, as models/default.safetensors; else linear; T =
         1000), respace 1..t0 into min(steps, t0) steps with trailing
         spacing (the engine's default), then run them with --sampler: ddim
         (η = 0, x̂0 clipped, the engine's default) or dpm++2m
         (DPM-Solver++(2M) in data prediction as engine/sampler-dpm.c: first
         step first order, then second order multistep, the last step to
         σ = 0 returning x̂0).  Each step runs the UNet on overlapping S×S
         tiles, S the config's image size (overlap min(max(8, S/8), S − 1):
         8 for S = 32 and 64; sin² window weights; batches of
         max(1, min(32, 32·32²/S²)) tiles, 8 of 64²; as img2img.c and
         model.c do) and blends the ε predictions (MultiDiffusion).  Timed
         once (no repetitions): it is the whole command.
gd-fwd:  one no_grad forward at batch 1 of guided-diffusion's OWN UNetModel
         (guided_diffusion/unet.py of a checkout, --gd DIR; MIT, run as it
         is) in a published 256² architecture (--arch, see GD_ARCHS), random
         weights; --weights PT is loaded if it exists, else made (every
         parameter random, as tests/make-adm-fixtures.py does, since the
         reference zero-initialises its output layers) and saved with
         torch.save, with PT.flags (the guided-diffusion flags for `ddpm
         import`) and PT.x.f32 (the input image, raw float32);
         --save-output F writes the output, raw float32.  One warm-up
         forward, then --iters forwards (default 1: the ADM one takes ~28 s).

The configuration knobs a PyTorch user has on a CPU, each a flag, so that
bench/compare can take the best of all of them for every row:
  --threads N        torch's intra-op threads (OpenMP: oneDNN convolutions, ATen)
  --blas-threads N   OpenBLAS threads (matmul, bmm, Linear; default = --threads):
                     both pools spin, and on 2 cores 1 is often faster
  --malloc tuned     glibc malloc keeps freed memory instead of unmapping it
                     (GLIBC_TUNABLES mmap_threshold/trim_threshold): torch
                     allocates every large activation afresh, and on this VM
                     each first touch of a page costs a fault (~10 µs); the
                     128² attention's 64 MB matrices made a forward 3–5×
                     slower with the default allocator
  --channels-last    the model and inputs in NHWC (oneDNN's preferred layout)
  --bf16             inference under torch.autocast("cpu", dtype=torch.bfloat16)
The environment settings must be in place before torch is imported
(OpenBLAS and glibc read them once), so this script sets them and
re-executes itself.
"""
import argparse, json, math, os, statistics, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
TORCH_UNET = os.environ.get("DDPM_TORCH_UNET", os.path.join(HERE, "torch_unet.py"))
# glibc's allocator told to keep what it frees (the "tuned" allocator above)
MALLOC_TUNED = "glibc.malloc.mmap_threshold=2147483647:glibc.malloc.trim_threshold=2147483647"


def load_reference():
    import importlib.util
    spec = importlib.util.spec_from_file_location("torch_unet", TORCH_UNET)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def tile_axis(L, S, overlap):
    """engine/img2img.c tile_axis_init: tile positions and sin² weights."""
    if L <= S:
        n = 1
    else:
        stride = S - overlap
        n = (L - S + stride - 1) // stride + 1
    pos = [0 if n == 1 else (k * (L - S) + (n - 1) // 2) // (n - 1) for k in range(n)]
    total = [0.0] * L
    for p in pos:
        for u in range(S):
            if p + u < L:
                total[p + u] += math.sin(math.pi * (u + 0.5) / S) ** 2
    weight = [[(math.sin(math.pi * (u + 0.5) / S) ** 2 / total[p + u]) if p + u < L else 0.0
               for u in range(S)] for p in pos]
    return pos, weight


def alpha_bar(kind, T):
    """ᾱ_1..ᾱ_T (float64; index j holds ᾱ_{j+1}) of a named schedule.
    linear: Ho et al. 2020, β from 1e-4 to 0.02 (scaled by 1000/T).
    cosine: Nichol & Dhariwal 2021, eq. 17, ᾱ(t) = f(t)/f(0) with
    f(t) = cos²((t/T + s)/(1 + s)·π/2), s = 0.008, taken as
    β_t = 1 − f(t)/f(t−1) clipped at 0.999 (their §3.2), ᾱ = ∏(1 − β)."""
    import torch
    if kind == "linear":
        beta = torch.linspace(1e-4 * 1000 / T, 0.02 * 1000 / T, T, dtype=torch.float64)
    else:
        s = 0.008
        f = torch.cos((torch.arange(T + 1, dtype=torch.float64) / T + s) / (1 + s)
                      * math.pi / 2) ** 2
        beta = (1 - f[1:] / f[:-1]).clamp(max=0.999)
    return torch.cumprod(1 - beta, 0)


def trailing(t_max, n):
    """The kept base timesteps 0 < k_1 < … < k_n = t_max (1-based) of
    trailing spacing (Lin et al. 2024, table 2): k_i = round(i·t_max/n),
    halves away from zero as llround; k_0 = 0 (ᾱ = 1)."""
    return [0] + [int(math.floor(i * t_max / n + 0.5)) for i in range(1, n + 1)]


def sampler_step(x, eps, ab, i, n, x0_prev, dpm, clip=True):
    """One reverse step from chain index i to i − 1 (ab: ᾱ'_0 = 1 … ᾱ'_n);
    returns (x, x0_prev).  DDIM, η = 0 (Song et al. 2021, eq. 12), with the
    ε consistent with the clipped x̂0, as engine/sampler.c; or
    DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2) as engine/sampler-dpm.c:
    with λ = log(α/σ) and h = λ_{i−1} − λ_i,
      x_{i−1} = (σ_{i−1}/σ_i)·x_i − α_{i−1}·(e^{−h} − 1)·D,
    D = x_θ at the first step (i = n, first order), else
    D = x_θ + (1/(2r))·(x_θ − x_θ,prev), r = h_prev/h; the last step, to
    σ = 0 (λ = +∞), returns x_θ itself."""
    a_t, a_p = ab[i], ab[i - 1]
    # the data prediction x_θ = (x − σ·ε)/α
    x0_hat = (x - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    if not dpm:
        e_hat = (x - math.sqrt(a_t) * x0_hat) / math.sqrt(1 - a_t) if clip else eps
        return math.sqrt(a_p) * x0_hat + math.sqrt(1 - a_p) * e_hat, None
    if i == 1:
        return x0_hat, x0_hat

    def lam(j):
        return 0.5 * math.log(ab[j] / (1 - ab[j]))
    h = lam(i - 1) - lam(i)
    d = x0_hat
    if i < n:
        d = x0_hat + 0.5 * h / (lam(i) - lam(i + 1)) * (x0_hat - x0_prev)
    return (math.sqrt((1 - a_p) / (1 - a_t)) * x - math.sqrt(a_p) * math.expm1(-h) * d,
            x0_hat)


def renoise(ref, args):
    import torch
    cfg = ref.CONFIGS[args.config]
    model = ref.build_model(**cfg).eval()
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    S, C, L = cfg["image_size"], cfg["in_channels"], args.image
    T = 1000
    base = alpha_bar(ref.SCHEDULES.get(args.config, "linear"), T)
    pos, wts = tile_axis(L, S, min(max(8, S // 8), S - 1))   # img2img.c's default
    n_tiles = len(pos) ** 2
    # gather indices of every tile's pixels in the flattened (C, L, L) image
    # and the weight of each
    ys = torch.tensor(pos)[:, None] + torch.arange(S)[None]          # (n, S)
    w1 = torch.tensor(wts, dtype=torch.float32)                       # (n, S)
    idx = (ys[:, None, :, None] * L + ys[None, :, None, :]).reshape(n_tiles, S * S)
    wt = (w1[:, None, :, None] * w1[None, :, None, :]).reshape(n_tiles, S * S)
    plane = L * L
    cidx = (torch.arange(C)[:, None] * plane)                         # (C, 1)
    # tiles per network call: model.c's max_batch, 32·32² pixels (8 of 64²), at most 32
    batch = max(1, min(32, 32 * 32 * 32 // (S * S)))

    # SDEdit as img2img.c plans it: t0 = round(strength·T), min(steps, t0)
    # steps on the respaced chain i = n … 1 with ᾱ'_i = ᾱ_{k_i}, ᾱ'_0 = 1
    t0 = int(math.floor(args.strength * T + 0.5))
    n = min(args.steps, t0)
    kept = trailing(t0, n)
    ab = [1.0] + [base[k - 1].item() for k in kept[1:]]
    x0 = torch.rand(C, L, L) * 2 - 1
    g = torch.Generator().manual_seed(0)
    dpm = args.sampler in ("dpm++2m", "dpm-solver++")

    def run():
        x = (math.sqrt(ab[n]) * x0.reshape(-1)
             + math.sqrt(1 - ab[n]) * torch.randn(C * plane, generator=g))
        x0_prev = None
        with inference_context(args):
            for i in range(n, 0, -1):
                eps = torch.zeros(C * plane)
                tt = torch.full((batch,), kept[i] - 1, dtype=torch.long)   # 0-based t
                for first in range(0, n_tiles, batch):
                    sel = slice(first, min(first + batch, n_tiles))
                    gi = (cidx[None] + idx[sel][:, None, :])           # (b, C, S*S)
                    tiles = x[gi].reshape(-1, C, S, S)
                    e = model(layout(args, tiles), tt[:tiles.shape[0]]).float().reshape(-1, C, S * S)
                    eps.index_add_(0, gi.reshape(-1), (e * wt[sel][:, None, :]).reshape(-1))
                x, x0_prev = sampler_step(x, eps, ab, i, n, x0_prev, dpm)
        return x

    t_start = time.perf_counter()
    run()
    dt = time.perf_counter() - t_start
    macs = ref.count_macs(model, S, C)
    return dict(min=dt, median=dt, max=dt, n=1, macs_per_tile=macs,
                gflop=2.0 * macs * n_tiles * n / 1e9, tiles=n_tiles, steps=n,
                sampler="dpm++2m" if dpm else "ddim",
                schedule=ref.SCHEDULES.get(args.config, "linear"))


# The published 256² architectures, as guided-diffusion's create_model
# (script_util.py) builds them from its flags.
GD_ARCHS = {
    # OpenAI's 256x256_diffusion_uncond.pt (Dhariwal & Nichol 2021), the flags
    # of guided-diffusion's README; 552 M parameters
    "adm256": dict(image_size=256, num_channels=256, num_res_blocks=2, channel_mult="",
                   attention_resolutions="32,16,8", num_heads=4, num_head_channels=64,
                   num_heads_upsample=-1, use_scale_shift_norm=True, resblock_updown=True,
                   learn_sigma=True, class_cond=False, use_fp16=False, dropout=0.0),
    # DDPM CelebA-HQ 256² (Ho et al. 2020, appendix B: ch 128, ch_mult
    # 1,1,2,2,4,4, 2 res blocks, attention at 16², dropout 0 for sampling);
    # 114 M parameters.  guided-diffusion's UNetModel expresses it: one
    # attention head, plain "h + temb" res blocks (no scale-shift),
    # strided-conv down- and nearest+conv up-sampling (resblock_updown
    # False), attention at resolution 16 of image_size 256.  What differs
    # from diffusion_tf is arithmetic-free detail (the sinusoid's order, the
    # down-sampling conv's padding, GroupNorm's ε), so the work is the same.
    "celebahq256": dict(image_size=256, num_channels=128, num_res_blocks=2,
                        channel_mult="1,1,2,2,4,4", attention_resolutions="16", num_heads=1,
                        num_head_channels=-1, num_heads_upsample=-1,
                        use_scale_shift_norm=False, resblock_updown=False, learn_sigma=False,
                        class_cond=False, use_fp16=False, dropout=0.0),
}


def gd_flags_line(kw):
    """kw as guided-diffusion's command-line flags (`ddpm import` takes them)."""
    out = []
    for key in sorted(kw):
        value = kw[key]
        if isinstance(value, bool):
            value = "True" if value else "False"
        if key == "channel_mult" and value == "":
            continue                      # script_util's default for the size
        out.append("--%s %s" % (key, value))
    return " ".join(out) + " --diffusion_steps 1000 --noise_schedule linear"


def gd_randomise(model, gen):
    """Every parameter random (fan-in scaled), as make-adm-fixtures.py does."""
    import torch
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.GroupNorm):
                module.weight.copy_(1.0 + 0.2 * torch.randn(module.weight.shape, generator=gen))
                module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=gen))
            elif isinstance(module, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Linear)):
                w = module.weight
                w.copy_(torch.randn(w.shape, generator=gen) / w[0].numel() ** 0.5)
                if module.bias is not None:
                    module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=gen))


def gd_forward(args):
    import numpy as np, torch
    sys.path.insert(0, args.gd)
    from guided_diffusion.script_util import create_model
    kw = GD_ARCHS[args.arch]
    model = create_model(**kw)
    S = kw["image_size"]
    if os.path.exists(args.weights):
        model.load_state_dict(torch.load(args.weights))
        x = torch.from_numpy(np.fromfile(args.weights + ".x.f32", dtype="<f4")).reshape(1, 3, S, S)
    else:
        gen = torch.Generator().manual_seed(20261206)
        gd_randomise(model, gen)
        torch.save(model.state_dict(), args.weights)
        with open(args.weights + ".flags", "w") as f:
            f.write(gd_flags_line(kw) + "\n")
        x = torch.randn((1, 3, S, S), generator=gen)
        x.numpy().astype("<f4").tofile(args.weights + ".x.f32")
    if args.iters == 0:
        return None                        # --iters 0: only make the files
    model.eval()
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    n_params = sum(p.numel() for p in model.parameters())
    t = torch.tensor([499])
    xin = layout(args, x)

    # multiply-adds, counted on the warm-up forward: convolutions and linears
    # by hooks, and the attention products (QK^T and AV: 2·T²·width per
    # image, width = the qkv channels / 3)
    macs = [0]

    def hook(mod, inp, out):
        if isinstance(mod, torch.nn.Conv2d):
            macs[0] += out.numel() * mod.in_channels // mod.groups * mod.kernel_size[0] \
                * mod.kernel_size[1]
        elif isinstance(mod, torch.nn.Conv1d):
            macs[0] += out.numel() * mod.in_channels // mod.groups * mod.kernel_size[0]
        elif isinstance(mod, torch.nn.Linear):
            macs[0] += out.numel() * mod.in_features
        elif type(mod).__name__.startswith("QKVAttention"):
            qkv = inp[0]
            macs[0] += 2 * qkv.shape[0] * (qkv.shape[1] // 3) * qkv.shape[2] ** 2
    hs = [m.register_forward_hook(hook) for m in model.modules()
          if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Linear))
          or type(m).__name__.startswith("QKVAttention")]
    with inference_context(args):
        model(xin, t)
    for h in hs:
        h.remove()
    ts = []
    for _ in range(args.iters):
        t0 = time.perf_counter()
        with inference_context(args):
            out = model(xin, t)
        ts.append(time.perf_counter() - t0)
    if args.save_output:
        out.float().contiguous().numpy().astype("<f4").tofile(args.save_output)
    return dict(min=min(ts), median=statistics.median(ts), max=max(ts), n=len(ts),
                gflop=2.0 * macs[0] / 1e9, params=n_params)


def inference_context(args):
    """no_grad, and bf16 autocast when asked."""
    import contextlib, torch
    stack = contextlib.ExitStack()
    stack.enter_context(torch.no_grad())
    if args.bf16:
        stack.enter_context(torch.autocast("cpu", dtype=torch.bfloat16))
    return stack


def layout(args, t):
    import torch
    return t.contiguous(memory_format=torch.channels_last) if args.channels_last else t


def train_e2e(ref, args):
    """The plain training script (see the docstring); seconds per step."""
    import numpy as np, torch
    data = torch.from_numpy(np.load(args.data))              # N, H, W uint8
    N, H, W = data.shape
    cfg = dict(ref.CONFIGS[args.config], in_channels=1, image_size=H)
    model = ref.build_model(**cfg)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    ema = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.Adam(model.parameters(), lr=2e-4)
    T, B = 1000, args.batch
    abar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, T, dtype=torch.float64), 0).float()
    model.train()

    def step():
        idx = torch.randint(0, N, (B,))
        x0 = data[idx].float().div_(127.5).sub_(1).unsqueeze(1)
        flip = torch.rand(B) < 0.5
        x0[flip] = x0[flip].flip(-1)
        t = torch.randint(0, T, (B,))
        eps = torch.randn_like(x0)
        a = abar[t][:, None, None, None]
        xt = layout(args, a.sqrt() * x0 + (1 - a).sqrt() * eps)
        loss = torch.nn.functional.mse_loss(model(xt, t), eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            torch._foreach_mul_(ema, 0.999)
            torch._foreach_add_(ema, [p.detach() for p in model.parameters()], alpha=0.001)

    for _ in range(3):
        step()
    ts = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        ts.append(time.perf_counter() - t0)
    macs = ref.count_macs(model, H, 1)
    return dict(min=min(ts), median=statistics.median(ts), max=max(ts), mean=sum(ts) / len(ts),
                n=len(ts), gflop=3 * 2.0 * macs * B / 1e9)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--config", default="tiny")
    p.add_argument("--kind", choices=("train", "train-e2e", "fwd", "renoise", "gd-fwd"), default="fwd")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--blas-threads", type=int, default=None)
    p.add_argument("--malloc", choices=("default", "tuned"), default="default")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--iters", type=int, default=7)
    p.add_argument("--budget", type=float, default=20.0)
    p.add_argument("--image", type=int, default=1024)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--strength", type=float, default=0.5)
    p.add_argument("--sampler", choices=("ddim", "dpm++2m", "dpm-solver++"), default="ddim",
                   help="renoise: DDIM (η = 0) or DPM-Solver++(2M) (dpm-solver++ is the same)")
    p.add_argument("--data", help="train-e2e: a uint8 .npy of N×H×W images")
    p.add_argument("--arch", choices=sorted(GD_ARCHS), default="adm256", help="gd-fwd")
    p.add_argument("--gd", help="gd-fwd: a guided-diffusion checkout (has guided_diffusion/)")
    p.add_argument("--weights", help="gd-fwd: the state_dict .pt (made if absent)")
    p.add_argument("--save-output", help="gd-fwd: write the output here, raw float32")
    args = p.parse_args()
    if args.blas_threads is None:
        args.blas_threads = args.threads
    if args.bf16 and args.kind in ("train", "train-e2e"):
        p.error("--bf16 is for inference rows (training stays fp32, as ours)")

    if os.environ.get("DDPM_PEER_CHILD") != "1":
        env = dict(os.environ, DDPM_PEER_CHILD="1", OMP_NUM_THREADS=str(args.threads),
                   OPENBLAS_NUM_THREADS=str(args.blas_threads))
        if args.malloc == "tuned":
            env["GLIBC_TUNABLES"] = MALLOC_TUNED
        os.execve(sys.executable, [sys.executable] + sys.argv, env)

    ref = None if args.kind == "gd-fwd" else load_reference()
    import torch
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    cfg = None if ref is None else ref.CONFIGS[args.config]

    if args.kind == "gd-fwd":
        r = gd_forward(args)
        if r is None:
            return
    elif args.kind == "renoise":
        r = renoise(ref, args)
    elif args.kind == "train-e2e":
        r = train_e2e(ref, args)
    else:
        model = ref.build_model(**cfg)
        if args.channels_last:
            model = model.to(memory_format=torch.channels_last)
        B, S, T = args.batch, args.size, 1000
        macs = ref.count_macs(model, S, cfg["in_channels"])
        if args.kind == "train":
            abar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, T), 0)
            opt = torch.optim.Adam(model.parameters(), lr=2e-4)
            x0 = torch.randn(B, cfg["in_channels"], S, S)

            def fn():  # torch_unet.py child(): step()
                t = torch.randint(0, T, (B,))
                eps = torch.randn_like(x0)
                a = abar[t][:, None, None, None]
                xt = layout(args, a.sqrt() * x0 + (1 - a).sqrt() * eps)
                loss = torch.nn.functional.mse_loss(model(xt, t), eps)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            model.train()
            gflop = 3 * 2.0 * macs * B / 1e9
        else:
            x, t = layout(args, torch.randn(B, cfg["in_channels"], S, S)), torch.full((B,), 500)

            def fn():
                with inference_context(args):
                    model(x, t)
            model.eval()
            gflop = 2.0 * macs * B / 1e9
        r = ref.timeit(fn, warmup=2, iters=args.iters, budget_s=args.budget)
        r["gflop"] = gflop
    print(json.dumps(dict(engine="torch", config=args.arch if args.kind == "gd-fwd" else args.config, kind=args.kind, batch=args.batch,
                          size=args.image if args.kind == "renoise" else args.size,
                          threads=args.threads, blas_threads=args.blas_threads,
                          malloc=args.malloc, channels_last=args.channels_last, bf16=args.bf16,
                          **r)))


if __name__ == "__main__":
    main()
