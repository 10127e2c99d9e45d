#!/usr/bin/python3
"""make-learned-variance-fixtures.py: reference values of one DDPM step with
a learned variance (Nichol & Dhariwal 2021, eq. 15) for tests/test-sampler.c,
computed by guided-diffusion's own gaussian_diffusion.py / respace.py
(p_mean_variance of a SpacedDiffusion with LEARNED_RANGE), never by our
formulas.

    /usr/bin/python3 tests/make-learned-variance-fixtures.py GUIDED_DIFFUSION_DIR \\
        tests/fixtures/learned-variance.txt

The "model" is a fake that returns fixed ε and v (concatenated on the
channel axis, as a learn_sigma UNet does), so the step's arithmetic alone is
checked.  The chain is the linear 1000-step schedule respaced to the 10
timesteps our trailing spacing keeps (1-based 100, 200, …, 1000; the
reference's 0-based 99, …, 999).

Output: a line "timesteps t_1 … t_10" (1-based), a line "n N", then per
case a line "case i clip" (i the chain index, 1-based) followed by lines
"x …", "eps …", "v …", "mean …", "variance …", "log_variance …" of N
values each (%.17g).
"""
import sys

import numpy as np
import torch


def main():
    gd_dir, out_path = sys.argv[1], sys.argv[2]
    sys.path.insert(0, gd_dir)
    from guided_diffusion import gaussian_diffusion as gd
    from guided_diffusion.respace import SpacedDiffusion

    kept = [100 * k - 1 for k in range(1, 11)]
    diffusion = SpacedDiffusion(
        use_timesteps=kept,
        betas=gd.get_named_beta_schedule("linear", 1000),
        model_mean_type=gd.ModelMeanType.EPSILON,
        model_var_type=gd.ModelVarType.LEARNED_RANGE,
        loss_type=gd.LossType.MSE,
        rescale_timesteps=False,
    )
    gen = torch.Generator().manual_seed(20261206)
    n = 6
    lines = ["timesteps " + " ".join(str(t + 1) for t in diffusion.timestep_map),
             "n %d" % n]
    for i, clip in [(10, False), (10, True), (7, True), (4, False), (2, True), (2, False),
                    (1, True), (1, False)]:
        x = torch.randn((1, n, 1, 1), generator=gen, dtype=torch.float64) * 1.5
        eps = torch.randn((1, n, 1, 1), generator=gen, dtype=torch.float64)
        v = torch.rand((1, n, 1, 1), generator=gen, dtype=torch.float64) * 2 - 1
        v[0, 0] = -1.0
        v[0, 1] = 1.0
        # the engine's tensors are float: give the reference the same values
        x, eps, v = (a.float().double() for a in (x, eps, v))

        def model(x_in, ts):
            return torch.cat([eps, v], dim=1)

        out = diffusion.p_mean_variance(model, x, torch.tensor([i - 1]),
                                        clip_denoised=clip)
        lines.append("case %d %d" % (i, int(clip)))
        for name, value in [("x", x), ("eps", eps), ("v", v), ("mean", out["mean"]),
                            ("variance", out["variance"]),
                            ("log_variance", out["log_variance"])]:
            value = value.reshape(-1).numpy() if torch.is_tensor(value) else \
                np.broadcast_to(value, (n,))
            lines.append(name + " " + " ".join("%.17g" % float(a) for a in value))
    with open(out_path, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
