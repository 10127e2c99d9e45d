#!/usr/bin/python3
"""make-adm-fixtures.py: reference outputs of guided-diffusion's own UNetModel
for tests/test-adm.c, on small configurations with random weights.

Run from the source tree with Debian's PyTorch (never needed at test time),
on a checkout of github:openai/guided-diffusion (MIT), whose
guided_diffusion/unet.py is imported as it is (it needs only torch and numpy;
nothing is stubbed):

    /usr/bin/python3 tests/make-adm-fixtures.py GUIDED_DIFFUSION_DIR tests/fixtures/adm

For each configuration NAME it writes
    NAME.pt      the state_dict, saved with torch.save (what a user downloads)
    NAME.flags   the guided-diffusion flags that build it, one line, as a user
                 passes them to `ddpm import` (script_util's flag names)
    NAME.io      a batch and the network's output on it: little-endian int32
                 B, C, S, C_out, then t (B int32), y (B int32, −1 when
                 unconditional), x (B·C·S·S float32), out (B·C_out·S·S float32)

Every parameter is random (the reference zero-initialises its output layers:
a check on those would be vacuous).  GroupNorm's 32 groups make 32 channels
the least a network can have, so the smallest files covering the features
are a few hundred kB, not tens.  The weights are stored as the flags say
(use_fp16: the convolutions in float16, as guided-diffusion's
convert_to_fp16 leaves them) or, to keep the files small, all in float16
(NAME marked "half" below); the reference output is computed in float32 from
exactly the stored (rounded) values, which is what the importer reads.
"""
import os
import struct
import sys

import torch

CONFIGS = [
    # name, create_model kwargs, store all in half
    ("heads-conv", dict(image_size=32, num_channels=32, num_res_blocks=1,
                        channel_mult="1,1,1", attention_resolutions="16,8",
                        num_heads=2, num_head_channels=-1, num_heads_upsample=-1,
                        use_scale_shift_norm=False, resblock_updown=False,
                        learn_sigma=False, class_cond=False, use_fp16=False), True),
    ("headch-updown-sigma-fp16", dict(image_size=32, num_channels=32, num_res_blocks=1,
                                      channel_mult="1,1,2", attention_resolutions="16,8",
                                      num_heads=4, num_head_channels=16,
                                      num_heads_upsample=-1, use_scale_shift_norm=True,
                                      resblock_updown=True, learn_sigma=True,
                                      class_cond=False, use_fp16=True), False),
    ("six-levels-class", dict(image_size=32, num_channels=32, num_res_blocks=1,
                              channel_mult="1,1,1,1,1,1", attention_resolutions="4,2",
                              num_heads=1, num_head_channels=-1, num_heads_upsample=2,
                              use_scale_shift_norm=True, resblock_updown=False,
                              learn_sigma=False, class_cond=True, use_fp16=False), True),
    ("updown-noss", dict(image_size=16, num_channels=32, num_res_blocks=1,
                         channel_mult="1,1,1", attention_resolutions="8",
                         num_heads=2, num_head_channels=-1, num_heads_upsample=-1,
                         use_scale_shift_norm=False, resblock_updown=True,
                         learn_sigma=True, class_cond=True, use_fp16=False), True),
    # improved-diffusion's --rescale_timesteps: 4000 steps, the network fed
    # t·1000/4000 (fractional) as its _WrappedModel does
    ("rescale-4000", dict(image_size=16, num_channels=32, num_res_blocks=1,
                          channel_mult="1,2", attention_resolutions="8",
                          num_heads=2, num_head_channels=-1, num_heads_upsample=-1,
                          use_scale_shift_norm=True, resblock_updown=False,
                          learn_sigma=True, class_cond=False, use_fp16=False), True,
     dict(diffusion_steps=4000, noise_schedule="cosine", rescale_timesteps=True)),
    # The 256x256 ADM's shape (six levels, attention at 32, 16 and 8 by
    # head channels, resblock_updown, scale-shift, learn_sigma, fp16) with
    # the fewest channels: 1,1,2,2,4,4 at GroupNorm's 32 would be 6.1 M
    # parameters (12 MB), so the multipliers double once, late, for 1.9 M
    # (3.8 MB).  For the plug-in's tests (tests/gimp, tests/ui), which
    # tile images into 256x256 pieces with it.
    ("adm256-tiny", dict(image_size=256, num_channels=32, num_res_blocks=1,
                         channel_mult="1,1,1,1,2,2", attention_resolutions="32,16,8",
                         num_heads=4, num_head_channels=32, num_heads_upsample=-1,
                         use_scale_shift_norm=True, resblock_updown=True,
                         learn_sigma=True, class_cond=False, use_fp16=True), False),
]

# the diffusion flags of the configurations that give none
DEFAULT_DIFFUSION = dict(diffusion_steps=1000, noise_schedule="linear")

# The reference batch (B, S) where image_size x image_size at batch 2 would
# make the file large: the network is convolutional, so a smaller input
# checks the same weights.
IO_SHAPE = {"adm256-tiny": (1, 64)}

# Configurations after the first four each start from the generator's
# state after those four (as each was made when it was the fifth), so adding
# one never changes another's files.
N_FIRST = 4


def flags_line(kw, diffusion):
    out = []
    for key in sorted(kw):
        value = kw[key]
        if isinstance(value, bool):
            value = "True" if value else "False"
        out.append("--%s %s" % (key, value))
    for key in ("diffusion_steps", "noise_schedule", "rescale_timesteps"):
        if key in diffusion:
            value = diffusion[key]
            if isinstance(value, bool):
                value = "True" if value else "False"
            out.append("--%s %s" % (key, value))
    return " ".join(out)


def randomise(model, gen):
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.GroupNorm):
                module.weight.copy_(1.0 + 0.2 * torch.randn(module.weight.shape, generator=gen))
                module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=gen))
            elif isinstance(module, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Linear,
                                     torch.nn.Embedding)):
                w = module.weight
                fan_in = w[0].numel() if not isinstance(module, torch.nn.Embedding) else 1
                w.copy_(torch.randn(w.shape, generator=gen) / fan_in ** 0.5)
                if getattr(module, "bias", None) is not None:
                    module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=gen))


def main():
    gd_dir, out_dir = sys.argv[1], sys.argv[2]
    sys.path.insert(0, gd_dir)
    from guided_diffusion.script_util import create_model

    os.makedirs(out_dir, exist_ok=True)
    gen = torch.Generator().manual_seed(20261205)
    after_first = None
    for i, (name, kw, half, *rest) in enumerate(CONFIGS):
        if i == N_FIRST:
            after_first = gen.get_state()
        if i >= N_FIRST:
            gen.set_state(after_first)
        diffusion = rest[0] if rest else DEFAULT_DIFFUSION
        steps = diffusion["diffusion_steps"]
        torch.manual_seed(1)
        model = create_model(**{k: v for k, v in kw.items()})
        model.float()
        randomise(model, gen)
        if kw["use_fp16"]:
            model.convert_to_fp16()
        elif half:
            model.half()
        sd = model.state_dict()
        torch.save(sd, os.path.join(out_dir, name + ".pt"))

        # the reference: float32 on the stored values
        model.float()
        model.dtype = torch.float32
        model.load_state_dict({k: v.float() for k, v in sd.items()})
        model.eval()
        B, S = IO_SHAPE.get(name, (2, kw["image_size"]))
        C = 3
        x = torch.randn((B, C, S, S), generator=gen)
        t = torch.tensor(([7, 913] if steps == 1000 else [7, steps - 87])[:B], dtype=torch.int64)
        y = torch.tensor([3, 998][:B]) if kw["class_cond"] else None
        # what the network is fed: t itself, or t·1000/T in float as
        # respace.py's _WrappedModel does with rescale_timesteps
        t_in = t.float() * (1000.0 / steps) if diffusion.get("rescale_timesteps") else t
        with torch.no_grad():
            out = model(x, t_in, y) if y is not None else model(x, t_in)
        c_out = out.shape[1]
        with open(os.path.join(out_dir, name + ".io"), "wb") as f:
            f.write(struct.pack("<4i", B, C, S, c_out))
            f.write(struct.pack("<%di" % B, *t.tolist()))
            f.write(struct.pack("<%di" % B, *(y.tolist() if y is not None else [-1] * B)))
            f.write(x.numpy().astype("<f4").tobytes())
            f.write(out.numpy().astype("<f4").tobytes())
        with open(os.path.join(out_dir, name + ".flags"), "w") as f:
            f.write(flags_line(kw, diffusion) + "\n")
        print(name, sum(p.numel() for p in model.parameters()), "parameters,",
              "output rms %.3f" % out.pow(2).mean().sqrt().item())


if __name__ == "__main__":
    main()
