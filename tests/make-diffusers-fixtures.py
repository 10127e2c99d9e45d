#!/usr/bin/python3
"""make-diffusers-fixtures.py: diffusers model folders and reference outputs
for tests/test-import-diffusers.c.

Run from the source tree with Debian's PyTorch 1.13 and a checkout of
huggingface/diffusers (never needed at test time):

    /usr/bin/python3 tests/make-diffusers-fixtures.py DIFFUSERS_SRC tests/fixtures/diffusers

where DIFFUSERS_SRC is the checkout's src/ folder (the committed fixtures
were made from huggingface/diffusers 58eb52c0803e, version 0.40.0.dev0;
the script reproduces them byte for byte).  The reference is
diffusers' own UNet2DModel and DDPMScheduler, imported from that checkout
and run unchanged.  Third-party packages diffusers imports at load time but
which are not installed here (huggingface_hub, safetensors, filelock, …:
download, file and version helpers the network never calls) are stubbed in
sys.modules, and a few torch 2 names its other models mention at import
time are given placeholders; the network code itself is not touched.

Each configuration is the layout of a published google/ddpm-* model scaled
down (32 base channels instead of 128), saved as a real diffusers folder:

    <name>/[unet/]config.json                  UNet2DModel.save_config
    <name>/[unet/]diffusion_pytorch_model.bin  torch.save(state_dict)
    <name>/[scheduler/]scheduler_config.json   DDPMScheduler.save_config
    <name>/model_index.json                    pipeline layout only
    <name>.ref                                 inputs and outputs, below

To keep the .bin files a few kB, every weight is a strided view of ONE
shared storage of random numbers (torch.save writes a storage once, however
many tensors view it); GroupNorm scales view a second one, centred on 1.
That is what the importer must read anyway (PyTorch files hold views), and
diffusers' forward runs on exactly these values.  The test rewrites the
weights as diffusion_pytorch_model.safetensors under the old attention
names (query/key/value/proj_attn) to cover that path too.

.ref format (little-endian):
    char[8]  "DDPMDIF1"
    int32    B, C, H, W, C_out
    int32[B] t (diffusers' timesteps, 0-based)
    float32[B·C·H·W]      x
    float32[B·C_out·H·W]  out = UNet2DModel(x, t).sample, run in float64
    int32    T
    float64[T]            DDPMScheduler.alphas_cumprod (as computed, float32)
"""
import collections
import importlib.abc
import importlib.machinery
import json
import os
import re
import struct
import sys
import types

import numpy as np
import torch
import torch.distributed


# ------------------------------------------------------- import diffusers

class _Any:
    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return _Any()

    def __getattr__(self, name):
        return _Any()


class StubModule(types.ModuleType):
    """A missing third-party module: every attribute is a dummy class."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        cls = type(name, (_Any,), {})
        setattr(self, name, cls)
        return cls


STUB_TOP = {"huggingface_hub", "safetensors", "filelock", "regex",
            "importlib_metadata", "tqdm", "httpx"}
STUB_FULL = {"torch.nn.attention", "torch.nn.attention.flex_attention",
             "torch.distributed._functional_collectives", "torch.distributed.tensor",
             "torch.distributed.device_mesh"}


class StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path, target=None):
        if fullname.split(".")[0] in STUB_TOP or fullname in STUB_FULL:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = StubModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module):
        if module.__name__ == "huggingface_hub.constants":
            # read by diffusers.utils.constants at import; nothing is fetched
            module.HF_HOME = "/nonexistent/hf-home"
            module.HUGGINGFACE_CO_RESOLVE_ENDPOINT = "https://invalid.invalid"
            module.HF_HUB_OFFLINE = True
            module.HF_HUB_DISABLE_TELEMETRY = True


class Version:
    """packaging.version.Version, as far as diffusers' checks use it."""

    def __init__(self, text):
        self.public = str(text)
        m = re.match(r"[0-9]+(\.[0-9]+)*", self.public)
        self.release = tuple(int(p) for p in m.group(0).split(".")) if m else (0,)
        self.base_version = ".".join(map(str, self.release))
        self.major = self.release[0]
        self.minor = self.release[1] if len(self.release) > 1 else 0
        self.is_prerelease = bool(re.search(r"(a|b|rc|dev)[0-9]*$", self.public))

    def _key(self):
        return self.release + (0,) * (4 - len(self.release))

    def __lt__(self, other): return self._key() < other._key()
    def __le__(self, other): return self._key() <= other._key()
    def __gt__(self, other): return self._key() > other._key()
    def __ge__(self, other): return self._key() >= other._key()
    def __eq__(self, other): return self._key() == other._key()
    def __str__(self): return self.public


def import_diffusers(src):
    sys.path.insert(0, src)
    sys.meta_path.insert(0, StubFinder())
    packaging = types.ModuleType("packaging")
    packaging.__path__ = []
    packaging.version = types.ModuleType("packaging.version")
    packaging.version.Version = Version
    packaging.version.parse = Version
    packaging.version.InvalidVersion = ValueError
    sys.modules["packaging"] = packaging
    sys.modules["packaging.version"] = packaging.version

    # torch 2 names that other diffusers modules touch at import time
    for dev in ("xpu", "mps", "npu", "mlu", "musa"):
        if not hasattr(torch, dev):
            m = StubModule("torch." + dev)
            m.is_available = lambda: False
            m.device_count = lambda: 0
            setattr(torch, dev, m)
    for name in ("float8_e4m3fn", "float8_e5m2", "float8_e8m0fnu", "float4_e2m1fn_x2",
                 "uint16", "uint32", "uint64", "int1", "int2", "int3", "int4", "int5",
                 "int6", "int7", "uint1", "uint2", "uint3", "uint4", "uint5", "uint6",
                 "uint7"):
        if not hasattr(torch, name):
            setattr(torch, name, object())
    if not hasattr(torch.distributed, "device_mesh"):
        torch.distributed.device_mesh = StubModule("torch.distributed.device_mesh")
        torch.distributed.device_mesh.DeviceMesh = type("DeviceMesh", (), {})
    if not hasattr(torch, "compiler"):
        # this run is eager, as torch 1.13 always is
        torch.compiler = types.ModuleType("torch.compiler")
        torch.compiler.disable = lambda fn=None, *a, **k: fn if fn is not None else (lambda f: f)
        torch.compiler.is_compiling = lambda: False
        torch.compiler.is_dynamo_compiling = lambda: False
    # diffusers checks the installed versions of requests, filelock, numpy
    check = types.ModuleType("diffusers.dependency_versions_check")
    check.dep_version_check = lambda *args, **kwargs: None
    sys.modules["diffusers.dependency_versions_check"] = check

    from diffusers.models.unets.unet_2d import UNet2DModel
    from diffusers.schedulers.scheduling_ddpm import DDPMScheduler
    return UNet2DModel, DDPMScheduler


# ------------------------------------------------------------ configurations

# google/ddpm-cifar10-32 (config.json as published, 0.0.4 keys), with 32
# base channels: 4 levels, attention at 16×16, 2 res blocks, flat folder.
CIFAR = dict(
    act_fn="silu", attention_head_dim=None, block_out_channels=[32, 64, 64, 64],
    center_input_sample=False,
    down_block_types=["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"],
    downsample_padding=0, flip_sin_to_cos=False, freq_shift=1, in_channels=3,
    layers_per_block=2, mid_block_scale_factor=1, norm_eps=1e-06, norm_num_groups=32,
    out_channels=3, sample_size=32, time_embedding_type="positional",
    up_block_types=["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"])

# google/ddpm-celebahq-256 / church / bedroom / cat: 6 levels (128, 128,
# 256, 256, 512, 512), attention at the fifth (16×16 at 256²), here with
# 32 base channels at 64² (attention at 4×4), in the pipeline layout.
L256 = dict(CIFAR, block_out_channels=[32, 32, 64, 64, 128, 128],
            down_block_types=["DownBlock2D"] * 4 + ["AttnDownBlock2D", "DownBlock2D"],
            up_block_types=["UpBlock2D", "AttnUpBlock2D"] + ["UpBlock2D"] * 4,
            sample_size=64)

# the cifar layout with multi-head attention: attention_head_dim 16, so
# 64 / 16 = 4 heads of 16 channels in the attention blocks and the mid
# block (diffusers' heads = channels / attention_head_dim)
HEADS = dict(CIFAR, attention_head_dim=16)

SCHED_GOOGLE = dict(beta_end=0.02, beta_schedule="linear", beta_start=0.0001,
                    clip_sample=True, num_train_timesteps=1000, trained_betas=None,
                    variance_type="fixed_small")
SCHED_COS = dict(SCHED_GOOGLE, beta_schedule="squaredcos_cap_v2", num_train_timesteps=500)

FIXTURES = [
    # name, unet config, scheduler config, pipeline layout, B, size, t, seed
    ("cifar", CIFAR, SCHED_GOOGLE, False, 2, 32, (17, 912), 1),
    ("l256", L256, SCHED_COS, True, 1, 64, (321,), 2),
    ("heads", HEADS, SCHED_GOOGLE, False, 1, 32, (500,), 3),
]

STORAGE = 4099   # floats in each shared storage (a prime)
WEIGHT_SCALE = 0.08  # weights U(−0.08, 0.08): activations stay O(1)


def strided_state(model, seed):
    """Every parameter as a strided view of one of two shared storages:
    GroupNorm scales view 1 + U(−0.3, 0.3), everything else
    U(−WEIGHT_SCALE, WEIGHT_SCALE).  Element [i0, i1, …] of a tensor is
    storage[offset + Σ i_d·stride_d] with distinct small strides, so a
    transposed or flipped mapping reads other values."""
    g = torch.Generator().manual_seed(seed)
    base = ((torch.rand(STORAGE, generator=g, dtype=torch.float64) * 2 - 1)
            * WEIGHT_SCALE).float()
    gamma = (1 + 0.3 * (torch.rand(STORAGE, generator=g, dtype=torch.float64) * 2 - 1)).float()
    strides_by_ndim = {1: (1,), 2: (7, 1), 4: (11, 5, 3, 1)}
    state = collections.OrderedDict()
    for i, (name, p) in enumerate(model.state_dict().items()):
        shape = tuple(p.shape)
        is_gamma = re.search(r"norm[0-9a-z_]*\.weight$", name) is not None
        store = gamma if is_gamma else base
        strides = strides_by_ndim[len(shape)]
        span = sum((n - 1) * st for n, st in zip(shape, strides)) + 1
        assert span <= STORAGE, (name, shape, span)
        offset = (i * 97) % (STORAGE - span + 1)
        state[name] = store.as_strided(shape, strides, offset)
    return state


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def make(UNet2DModel, DDPMScheduler, out_dir, name, config, sched, pipeline, B, size, t, seed):
    folder = os.path.join(out_dir, name)
    unet_dir = os.path.join(folder, "unet") if pipeline else folder
    sched_dir = os.path.join(folder, "scheduler") if pipeline else folder
    os.makedirs(unet_dir, exist_ok=True)
    os.makedirs(sched_dir, exist_ok=True)

    model = UNet2DModel(**config)
    state = strided_state(model, seed)
    model.load_state_dict(state)
    model = model.double().eval()

    if pipeline:
        # what save_pretrained writes today: every key of the signature
        model.save_config(unet_dir)
        write_json(os.path.join(folder, "model_index.json"),
                   {"_class_name": "DDPMPipeline", "_diffusers_version": "0.24.0",
                    "scheduler": ["diffusers", "DDPMScheduler"],
                    "unet": ["diffusers", "UNet2DModel"]})
    else:
        # as google/ddpm-cifar10-32 publishes it: the 0.0.4 key set
        write_json(os.path.join(unet_dir, "config.json"),
                   dict(config, _class_name="UNet2DModel", _diffusers_version="0.0.4"))
    torch.save(state, os.path.join(unet_dir, "diffusion_pytorch_model.bin"))

    scheduler = DDPMScheduler(**sched)
    scheduler.save_config(sched_dir)

    g = torch.Generator().manual_seed(100 + seed)
    C = config["in_channels"]
    x = torch.randn(B, C, size, size, generator=g, dtype=torch.float32)
    tt = torch.tensor(t, dtype=torch.long)
    with torch.no_grad():
        out = model(x.double(), tt).sample
    out = out.float().numpy()
    abar = scheduler.alphas_cumprod.double().numpy()

    with open(os.path.join(out_dir, name + ".ref"), "wb") as f:
        f.write(b"DDPMDIF1")
        f.write(struct.pack("<5i", B, C, size, size, out.shape[1]))
        f.write(struct.pack("<%di" % B, *t))
        f.write(x.numpy().astype("<f4").tobytes())
        f.write(out.astype("<f4").tobytes())
        f.write(struct.pack("<i", len(abar)))
        f.write(abar.astype("<f8").tobytes())
    print("%s: %d parameters, |out| max %.3f, mean %.3f" %
          (name, sum(p.numel() for p in model.parameters()),
           np.abs(out).max(), np.abs(out).mean()))


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: make-diffusers-fixtures.py DIFFUSERS_SRC OUT_DIR")
    UNet2DModel, DDPMScheduler = import_diffusers(sys.argv[1])
    out_dir = sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    for fixture in FIXTURES:
        make(UNet2DModel, DDPMScheduler, out_dir, *fixture)
    # a PyTorch file that holds no state_dict: a list of tensors
    torch.save([torch.zeros(2), torch.ones(3)], os.path.join(out_dir, "not-a-state-dict.bin"))


if __name__ == "__main__":
    main()
