#!/usr/bin/python3
"""make-unet-fixtures.py: PyTorch reference dumps for tests/test-unet.c.

Run from the source tree with Debian's PyTorch (never needed at test time):

    /usr/bin/python3 tests/make-unet-fixtures.py tests/fixtures

For each configuration below it builds the project's reference UNet (the
architecture of ../shared/bench/torch_unet.py, copied here so this script is
self-contained), sets its weights from a tiny counter-based generator that
test-unet.c re-implements (so the weights need not be stored), runs forward
and backward in float64 on fixed x, t and dout, and writes
tests/fixtures/unet-<name>.bin.

File format (all little-endian):

    char[8]   "DDPMUNF1"
    int32[25] config: in_channels, out_channels, ch, n_levels, ch_mult[8],
              num_res_blocks, n_attn, attn_resolutions[8], image_size,
              B, H (W = H)
    float32   dropout (always 0: the fixtures run without dropout)
    uint64    weight_seed
    uint32    n_tensors, then per parameter tensor, in the engine's order:
        uint32  name length, name bytes (diffusers UNet2DModel name)
        uint32  ndim, uint32[4] shape (unused entries 0)
        float64 offset, bound: weight[i] = (float) (offset + bound·(2u−1)),
                u = (splitmix64 (seed + (index << 32) + i) >> 40) / 2^24
        float32 grad_scale, int16[numel] q: grad[i] = q[i]·grad_scale/32767
                (linear quantisation: error ≤ 1.6e-5 of the tensor's max)
    int32[B]                  t (0-based network timesteps)
    float32[B·in·H·W]         x
    float32[B·out·H·W]        dout
    float32[B·out·H·W]        out   = unet(x, t)
    float32[B·in·H·W]         dx    = d(Σ out·dout)/dx

The gradients are those of L = Σ out·dout, i.e. backward seeded with dout.
"""
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

MAX_LEVELS = 8

CONFIGS = {
    # attention at the top level (16 of 16), which no preset uses
    "attn-top": dict(ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(16,),
                     image_size=16, in_channels=3, B=2, size=16, t=(37, 912)),
    # one input channel, three levels, attention at the middle one
    "gray": dict(ch=32, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(8,),
                 image_size=16, in_channels=1, B=2, size=16, t=(0, 503)),
}


# ----------------------------------------------------------------- the model
# The reference architecture (Ho et al. 2020, appendix B), as in
# ../shared/bench/torch_unet.py build_model().

def build_model(ch, ch_mult, num_res_blocks, attn_resolutions, image_size, in_channels, dropout=0.0):
    def norm(c):
        return nn.GroupNorm(32, c, eps=1e-6)

    def timestep_embedding(t, dim):  # as in diffusion_tf nn.get_timestep_embedding
        # in float32 as the reference computes it (the engine does the same);
        # the rest of the network runs in float64 for the fixtures
        half = dim // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / (half - 1))
        args = t.float()[:, None] * freqs[None]
        return torch.cat([torch.sin(args), torch.cos(args)], dim=1).double()

    class ResBlock(nn.Module):
        def __init__(self, cin, cout, tdim):
            super().__init__()
            self.norm1, self.conv1 = norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
            self.temb_proj = nn.Linear(tdim, cout)
            self.norm2, self.drop, self.conv2 = norm(cout), nn.Dropout(dropout), nn.Conv2d(cout, cout, 3, padding=1)
            self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

        def forward(self, x, temb):
            h = self.conv1(F.silu(self.norm1(x)))
            h = h + self.temb_proj(F.silu(temb))[:, :, None, None]
            h = self.conv2(self.drop(F.silu(self.norm2(h))))
            return self.skip(x) + h

    class AttnBlock(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.norm, self.qkv, self.proj = norm(c), nn.Conv2d(c, 3 * c, 1), nn.Conv2d(c, c, 1)

        def forward(self, x):
            B, C, H, W = x.shape
            q, k, v = self.qkv(self.norm(x)).reshape(B, 3, C, H * W).unbind(1)
            w = torch.softmax(torch.bmm(q.transpose(1, 2), k) * C ** -0.5, dim=-1)
            h = torch.bmm(v, w.transpose(1, 2)).reshape(B, C, H, W)
            return x + self.proj(h)

    class Down(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.conv = nn.Conv2d(c, c, 3, stride=2)

        def forward(self, x):
            return self.conv(F.pad(x, (0, 1, 0, 1)))

    class Up(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.conv = nn.Conv2d(c, c, 3, padding=1)

        def forward(self, x):
            return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.ch, tdim, L = ch, 4 * ch, len(ch_mult)
            attn_levels = {int(round(math.log2(image_size / r))) for r in attn_resolutions}
            self.temb = nn.Sequential(nn.Linear(ch, tdim), nn.SiLU(), nn.Linear(tdim, tdim))
            self.conv_in = nn.Conv2d(in_channels, ch, 3, padding=1)
            self.down, chans, c = nn.ModuleList(), [ch], ch
            for lvl, m in enumerate(ch_mult):
                for _ in range(num_res_blocks):
                    self.down.append(nn.ModuleList([ResBlock(c, ch * m, tdim)] + ([AttnBlock(ch * m)] if lvl in attn_levels else [])))
                    c = ch * m
                    chans.append(c)
                if lvl != L - 1:
                    self.down.append(Down(c))
                    chans.append(c)
            self.mid = nn.ModuleList([ResBlock(c, c, tdim), AttnBlock(c), ResBlock(c, c, tdim)])
            self.up = nn.ModuleList()
            for lvl, m in reversed(list(enumerate(ch_mult))):
                for _ in range(num_res_blocks + 1):
                    self.up.append(nn.ModuleList([ResBlock(c + chans.pop(), ch * m, tdim)] + ([AttnBlock(ch * m)] if lvl in attn_levels else [])))
                    c = ch * m
                if lvl != 0:
                    self.up.append(Up(c))
            self.norm_out, self.conv_out = norm(c), nn.Conv2d(c, in_channels, 3, padding=1)

        def forward(self, x, t):
            temb = self.temb(timestep_embedding(t, self.ch))
            hs = [self.conv_in(x)]
            for blk in self.down:
                if isinstance(blk, Down):
                    hs.append(blk(hs[-1]))
                else:
                    h = blk[0](hs[-1], temb)
                    hs.append(blk[1](h) if len(blk) > 1 else h)
            h = self.mid[2](self.mid[1](self.mid[0](hs[-1], temb)), temb)
            for blk in self.up:
                if isinstance(blk, Up):
                    h = blk(h)
                else:
                    h = blk[0](torch.cat([h, hs.pop()], dim=1), temb)
                    h = blk[1](h) if len(blk) > 1 else h
            return self.conv_out(F.silu(self.norm_out(h)))

    return UNet()


# ------------------------------------------------------- diffusers names
# Each entry: (diffusers name, getter returning the reference tensor view
# (parameter or its .grad) in the diffusers shape, setter from such a tensor).

class Entry:
    def __init__(self, name, param, rows=None, squeeze=False):
        self.name, self.param, self.rows, self.squeeze = name, param, rows, squeeze

    def shape(self):
        t = self.param.data if self.rows is None else self.param.data[self.rows[0]:self.rows[1]]
        return tuple(t.reshape(t.shape[0], -1).shape) if self.squeeze else tuple(t.shape)

    def set(self, value):
        dst = self.param.data if self.rows is None else self.param.data[self.rows[0]:self.rows[1]]
        dst.copy_(value.reshape(dst.shape))

    def grad(self):
        g = self.param.grad if self.rows is None else self.param.grad[self.rows[0]:self.rows[1]]
        return g.reshape(self.shape())


def diffusers_entries(model, ch_mult, num_res_blocks):
    E = []

    def wb(prefix, mod):
        E.append(Entry(prefix + ".weight", mod.weight))
        E.append(Entry(prefix + ".bias", mod.bias))

    def res(prefix, r):
        wb(prefix + ".norm1", r.norm1)
        wb(prefix + ".conv1", r.conv1)
        wb(prefix + ".time_emb_proj", r.temb_proj)
        wb(prefix + ".norm2", r.norm2)
        wb(prefix + ".conv2", r.conv2)
        if isinstance(r.skip, nn.Conv2d):
            wb(prefix + ".conv_shortcut", r.skip)

    def attn(prefix, a):
        # the old diffusers AttentionBlock: query/key/value/proj_attn are
        # Linear (C, C), i.e. the 1×1 conv weights squeezed
        wb(prefix + ".group_norm", a.norm)
        C = a.proj.weight.shape[0]
        for i, n in enumerate(("query", "key", "value")):
            E.append(Entry(f"{prefix}.{n}.weight", a.qkv.weight, (i * C, (i + 1) * C), squeeze=True))
            E.append(Entry(f"{prefix}.{n}.bias", a.qkv.bias, (i * C, (i + 1) * C)))
        E.append(Entry(prefix + ".proj_attn.weight", a.proj.weight, squeeze=True))
        E.append(Entry(prefix + ".proj_attn.bias", a.proj.bias))

    wb("time_embedding.linear_1", model.temb[0])
    wb("time_embedding.linear_2", model.temb[2])
    wb("conv_in", model.conv_in)
    L = len(ch_mult)
    it = iter(model.down)
    for lvl in range(L):
        for j in range(num_res_blocks):
            blk = next(it)
            res(f"down_blocks.{lvl}.resnets.{j}", blk[0])
            if len(blk) > 1:
                attn(f"down_blocks.{lvl}.attentions.{j}", blk[1])
        if lvl != L - 1:
            wb(f"down_blocks.{lvl}.downsamplers.0.conv", next(it).conv)
    res("mid_block.resnets.0", model.mid[0])
    attn("mid_block.attentions.0", model.mid[1])
    res("mid_block.resnets.1", model.mid[2])
    it = iter(model.up)
    for i, lvl in enumerate(reversed(range(L))):  # diffusers' up_blocks.0 is the deepest
        for j in range(num_res_blocks + 1):
            blk = next(it)
            res(f"up_blocks.{i}.resnets.{j}", blk[0])
            if len(blk) > 1:
                attn(f"up_blocks.{i}.attentions.{j}", blk[1])
        if lvl != 0:
            wb(f"up_blocks.{i}.upsamplers.0.conv", next(it).conv)
    wb("conv_norm_out", model.norm_out)
    wb("conv_out", model.conv_out)
    return E


# ----------------------------------------------------------- the weights

M64 = (1 << 64) - 1


def splitmix64(z):
    z = (z + np.uint64(0x9E3779B97F4A7C15))
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def generated(seed, index, n, offset, bound):
    i = np.arange(n, dtype=np.uint64)
    base = np.uint64((seed + (index << 32)) & M64)
    with np.errstate(over="ignore"):
        z = splitmix64(base + i)
    u = (z >> np.uint64(40)).astype(np.float64) / float(1 << 24)
    return (offset + bound * (2.0 * u - 1.0)).astype(np.float32)


def init_spec(name, shape):
    """(offset, bound): large enough weights that activations stay O(1) and
    every gradient is far from zero (unlike the zero-initialised outputs)."""
    if "norm" in name:  # GroupNorm γ around 1, β around 0
        return (1.0, 0.2) if name.endswith(".weight") else (0.0, 0.2)
    if name.endswith(".bias"):
        return (0.0, 0.1)
    fan_in = int(np.prod(shape[1:]))
    return (0.0, math.sqrt(3.0 / fan_in))  # unit-variance uniform


def write_fixture(path, name, spec, seed=20201219):
    torch.manual_seed(sum(map(ord, name)))
    cfg = {k: spec[k] for k in ("ch", "ch_mult", "num_res_blocks", "attn_resolutions", "image_size", "in_channels")}
    model = build_model(**cfg).double()
    entries = diffusers_entries(model, spec["ch_mult"], spec["num_res_blocks"])
    assert sum(int(np.prod(e.shape())) for e in entries) == sum(p.numel() for p in model.parameters())
    specs = []
    for j, e in enumerate(entries):
        shape = e.shape()
        off, bound = init_spec(e.name, shape)
        w = generated(seed, j, int(np.prod(shape)), off, bound)
        e.set(torch.from_numpy(w.astype(np.float64)))
        specs.append((off, bound))

    B, S, cin = spec["B"], spec["size"], spec["in_channels"]
    x = torch.randn(B, cin, S, S, dtype=torch.float32).double().requires_grad_(True)
    t = torch.tensor(spec["t"], dtype=torch.int64)
    dout = torch.randn(B, cin, S, S, dtype=torch.float32).double()
    out = model(x, t)
    (out * dout).sum().backward()
    print(f"{name}: params {sum(p.numel() for p in model.parameters()):,}  "
          f"|out| max {out.abs().max().item():.3g} std {out.std().item():.3g}  |dx| max {x.grad.abs().max().item():.3g}")

    ch_mult = list(spec["ch_mult"]) + [0] * (MAX_LEVELS - len(spec["ch_mult"]))
    attn = list(spec["attn_resolutions"]) + [0] * (MAX_LEVELS - len(spec["attn_resolutions"]))
    with open(path, "wb") as f:
        f.write(b"DDPMUNF1")
        f.write(struct.pack("<25i", cin, cin, spec["ch"], len(spec["ch_mult"]), *ch_mult,
                            spec["num_res_blocks"], len(spec["attn_resolutions"]), *attn,
                            spec["image_size"], B, S))
        f.write(struct.pack("<fQI", 0.0, seed, len(entries)))
        for e, (off, bound) in zip(entries, specs):
            shape = list(e.shape())
            nb = e.name.encode()
            f.write(struct.pack("<I", len(nb)) + nb)
            f.write(struct.pack("<5I", len(shape), *(shape + [0] * (4 - len(shape)))))
            g = e.grad().numpy().astype(np.float64).ravel()
            scale = np.float32(max(np.abs(g).max(), 1e-30))
            q = np.rint(g / float(scale) * 32767.0).astype("<i2")
            f.write(struct.pack("<ddf", off, bound, scale))
            f.write(q.tobytes())
        f.write(np.asarray(spec["t"], dtype="<i4").tobytes())
        for a in (x.detach(), dout, out.detach(), x.grad):
            f.write(a.numpy().astype("<f4").tobytes())
    print(f"  wrote {path} ({os.path.getsize(path):,} bytes, {len(entries)} tensors)")


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
    os.makedirs(outdir, exist_ok=True)
    for name, spec in CONFIGS.items():
        write_fixture(os.path.join(outdir, f"unet-{name}.bin"), name, spec)


if __name__ == "__main__":
    main()
