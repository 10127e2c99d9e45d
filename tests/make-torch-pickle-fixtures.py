#!/usr/bin/python3
"""make-torch-pickle-fixtures.py: real PyTorch checkpoints for
tests/test-torch-pickle.c and tests/test-torch-pickle-fuzz.c.

Run from the source tree with Debian's PyTorch (never needed at test time):

    /usr/bin/python3 tests/make-torch-pickle-fixtures.py tests/fixtures

Each readable checkpoint torch-<name>.pt comes with torch-<name>.txt, one line
per tensor of the state_dict, in its order:

    name <TAB> dtype <TAB> shape (comma-separated, empty for a scalar)
         <TAB> values (space-separated, row-major, float32 as Python repr)

dtype is the reader's spelling (F32, F16, BF16, F64, I64); values are the
tensor converted to float32, which is what the reader must return.

Files that must be refused have no .txt:
    torch-legacy.pt          torch.save(..., _use_new_zipfile_serialization=False)
    torch-evil.pt            a zip checkpoint whose pickle calls os.system to
                             create /tmp/ddpm-torch-pickle-pwned (this script
                             checks that torch.load really would run it)
    torch-short-storage.pt   torch-protocol4.pt with one storage record 4 bytes
                             short of what the pickle declares
"""
import collections
import os
import subprocess
import sys
import tempfile
import zipfile

import torch
from torch import nn

PWNED = "/tmp/ddpm-torch-pickle-pwned"

DTYPES = {
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.float64: "F64",
    torch.int64: "I64",
}


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = nn.GroupNorm(2, 4)
        self.conv = nn.Conv2d(4, 4, 3, padding=1)


class Net(nn.Module):
    """Nested names as in guided-diffusion (input_blocks.0.0.weight …), a
    BatchNorm for a LongStorage buffer (num_batches_tracked)."""

    def __init__(self):
        super().__init__()
        self.conv_in = nn.Conv2d(3, 4, 3)
        self.down = nn.ModuleList([nn.Sequential(Block(), nn.SiLU())])
        self.bn = nn.BatchNorm2d(4)
        self.emb = nn.Linear(2, 4)


def net_state_dict(seed):
    torch.manual_seed(seed)
    net = Net()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_()
        net.bn.running_mean.normal_()
        net.bn.running_var.uniform_(0.5, 2)
        net.bn.num_batches_tracked.fill_(7)
    return net


def dump(path, sd):
    with open(path, "w") as f:
        for name, t in sd.items():
            values = t.to(torch.float32).flatten().tolist() if t.numel() else []
            f.write("%s\t%s\t%s\t%s\n" % (
                name, DTYPES[t.dtype], ",".join(str(s) for s in t.shape),
                " ".join(repr(float(v)) for v in values)))


def save(out, name, obj, sd=None, **kw):
    """torch.save obj as torch-<name>.pt, check torch reads it back, and dump
    sd (default obj) as torch-<name>.txt."""
    path = os.path.join(out, "torch-%s.pt" % name)
    torch.save(obj, path, **kw)
    back = torch.load(path)
    sd = obj if sd is None else sd
    ref = back if sd is obj else back["model"]
    for k, v in sd.items():
        assert torch.equal(ref[k].float(), v.float()) or v.isnan().any(), k
    dump(os.path.join(out, "torch-%s.txt" % name), sd)
    return path


def main(out):
    os.makedirs(out, exist_ok=True)

    # float32: nn.Module.state_dict(), an OrderedDict with _metadata.
    net = net_state_dict(1)
    sd = net.state_dict()
    assert hasattr(sd, "_metadata")
    save(out, "f32", sd)

    # float16 and bfloat16, with the values that test a conversion: signed
    # zeros, the extremes, subnormals, infinities, NaN.
    special = [0.0, -0.0, 1.0, -2.5, 65504.0, -65504.0, 6.103515625e-05,
               5.960464477539063e-08, 1e-5, -3e-7, float("inf"), float("-inf"),
               float("nan"), 0.1, 1.0 / 3]
    sd = net_state_dict(2).half().state_dict()
    sd["special"] = torch.tensor(special, dtype=torch.float16)
    save(out, "f16", sd)

    sd = net_state_dict(3).bfloat16().state_dict()
    sd["special"] = torch.tensor(special + [3.0e38, -1.0e-38, 9.2e-41],
                                 dtype=torch.bfloat16)
    save(out, "bf16", sd)

    # Views: shared storage with offsets, transposed and strided tensors,
    # a broadcast (stride 0), a scalar, an empty tensor, a Parameter
    # (_rebuild_parameter), float64, a permuted 4-d tensor, a half view.
    torch.manual_seed(4)
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6) * 0.5 - 3
    sd = collections.OrderedDict()
    sd["base"] = base
    sd["transposed"] = base.t()
    sd["slice"] = base[1:3, 2:5]
    sd["flat_part"] = base.view(-1)[5:9]
    sd["column"] = base[:, 3]
    sd["expanded"] = torch.tensor([1.0, 2.0, 3.0]).expand(4, 3)
    sd["scalar"] = torch.tensor(2.5)
    sd["empty"] = torch.zeros(0, 3)
    sd["param"] = nn.Parameter(torch.randn(2, 3))
    sd["double"] = torch.randn(3, dtype=torch.float64)
    sd["permuted"] = torch.randn(2, 3, 4, 5).permute(0, 2, 3, 1)
    sd["half_t"] = torch.randn(3, 5).half().t()
    assert not sd["transposed"].is_contiguous()
    assert sd["slice"].storage_offset() == 8
    assert sd["expanded"].stride() == (0, 1)
    save(out, "views", sd)

    # guided-diffusion's layout: trained with use_fp16, it saves each
    # parameter as a view into one of two flat float32 master parameters
    # (vectors and scalars in one, matrices in the other), so a whole
    # checkpoint is a few big shared storages read at many offsets.
    torch.manual_seed(7)
    net = net_state_dict(7)
    named = list(net.named_parameters())
    sd = net.state_dict()
    for group in ([(n, p) for n, p in named if p.ndim <= 1],
                  [(n, p) for n, p in named if p.ndim > 1]):
        flat = nn.Parameter(torch._utils._flatten_dense_tensors(
            [p.detach().float() for _, p in group]))
        views = torch._utils._unflatten_dense_tensors(flat.view(-1), [p for _, p in group])
        for (name, _), view in zip(group, views):
            sd[name] = view
    path = save(out, "guided", sd)
    with zipfile.ZipFile(path) as z:
        records = [n for n in z.namelist() if "/data/" in n]
    assert len(records) == 2 + 3, records   # two masters, three BatchNorm buffers

    # Pickle protocol 4: FRAME, MEMOIZE, SHORT_BINUNICODE, STACK_GLOBAL.
    torch.manual_seed(5)
    small = collections.OrderedDict()
    small["layer.weight"] = torch.randn(3, 2)
    small["layer.bias"] = torch.randn(3)
    save(out, "protocol4", small, pickle_protocol=4)

    # A training checkpoint wrapping the state_dict under 'model', beside an
    # Adam state (floats, tuples, lists, None, bools, tensors) and counters.
    torch.manual_seed(6)
    lin = nn.Linear(2, 3)
    opt = torch.optim.Adam(lin.parameters(), lr=1e-4)
    lin(torch.randn(4, 2)).square().sum().backward()
    opt.step()
    model_sd = lin.state_dict()
    save(out, "wrapped", {"step": 1000, "lr": 1e-4, "model": model_sd,
                          "optimizer": opt.state_dict(), "name": "ddpm"}, sd=model_sd)

    # The top folder comes from the file name at save time: save as
    # weights.pt, commit as torch-renamed.pt.
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = os.path.join(tmp, "weights.pt")
        torch.save(small, tmp_path)
        with open(tmp_path, "rb") as f:
            data = f.read()
    assert b"weights/data.pkl" in data
    with open(os.path.join(out, "torch-renamed.pt"), "wb") as f:
        f.write(data)
    dump(os.path.join(out, "torch-renamed.txt"), small)

    # Refused: the legacy format.  (Its bytes differ at every run: the
    # legacy writer keys storages by object id.)
    torch.save(small, os.path.join(out, "torch-legacy.pt"),
               _use_new_zipfile_serialization=False)

    # Refused: a pickle that runs a command.  Prove it is live: torch.load
    # in a child process must create the file.
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + PWNED,))

    evil_path = os.path.join(out, "torch-evil.pt")
    torch.save(collections.OrderedDict(w=torch.ones(2), x=Evil()), evil_path)
    if os.path.exists(PWNED):
        os.unlink(PWNED)
    subprocess.run([sys.executable, "-c",
                    "import torch; torch.load(%r)" % evil_path], check=True)
    assert os.path.exists(PWNED), "torch-evil.pt did not run its command"
    os.unlink(PWNED)

    # Refused: a storage record shorter than its pickle says.
    src = os.path.join(out, "torch-protocol4.pt")
    with zipfile.ZipFile(src) as zin, \
         zipfile.ZipFile(os.path.join(out, "torch-short-storage.pt"), "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("/data/0"):
                data = data[:-4]
            # A fixed date, so that the file is the same at every run.
            name = info.filename.replace("torch-protocol4/", "torch-short-storage/")
            zout.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data,
                          compress_type=zipfile.ZIP_STORED)

    for name in sorted(os.listdir(out)):
        if name.startswith("torch-"):
            size = os.path.getsize(os.path.join(out, name))
            assert size < 20000, (name, size)
            print("%-28s %6d bytes" % (name, size))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures")
