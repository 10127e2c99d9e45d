#!/usr/bin/python3
"""make-dpm-fixtures.py: the reference DPM-Solver++(2M) on the Gaussian-data
problem, for tests/test-dpm-solver.c (never needed at test time).

Run with Debian's PyTorch and the reference implementation
(github.com/LuChengTHU/dpm-solver, dpm_solver_pytorch.py — imported from
where it lies, not copied into the project; the fixture was made with commit
52bc3fbcd5de56d60917b826b15d2b69460fc2fa of 2023-12-06):

    /usr/bin/python3 tests/make-dpm-fixtures.py /path/to/dpm_solver_pytorch.py \\
        tests/fixtures/dpm-reference.txt

The problem: the linear schedule at T = 1000 (β from 1e-4 to 0.02, ᾱ its
cumulative product), data x0 ~ N(μ, s²) with μ = 0.1, s = 0.5, and the
optimal noise predictor ε*(x_t, t) = √(1−ᾱ_t)·(x_t − √ᾱ_t·μ)/(ᾱ_t·s² + 1 − ᾱ_t).

Our N-step chain with trailing spacing visits t = 1000·k/N (k = N..1) and
then jumps to t = 0 through x̂0.  In the reference's discrete-time
convention (continuous t = k/1000 is ᾱ_k, the model is given k − 1) that is
`sample(steps = N − 1, t_start = 1, t_end = 1/N, skip_type = 'time_uniform',
method = 'multistep', order = 2, lower_order_final = False,
denoise_to_zero = True)`: the knots of its piecewise-linear log α are the
schedule's own, so its λ are ours exactly, and its last step to the data
prediction is our first-order step to σ = 0.  (lower_order_final = False:
for fewer than 10 steps the reference would also lower the step into
t_end, which in our chain is an ordinary step to t = 1000/N.)

Output, one case a line: N, then the 16 x_T values, then the 16 results,
in float64 (%.17g).
"""
import importlib.util
import sys

import torch


def main():
    ref_path, out_path = sys.argv[1], sys.argv[2]
    spec = importlib.util.spec_from_file_location("dpm_solver_pytorch", ref_path)
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)

    T = 1000
    mu, s = 0.1, 0.5
    betas = torch.linspace(1e-4, 0.02, T, dtype=torch.float64)
    alpha_bar = torch.cumprod(1.0 - betas, dim=0)  # alpha_bar[k - 1] is ᾱ_k

    def eps_model(x, t_input, **kwargs):
        # the reference gives the 0-based discrete step k − 1
        k = int(round(float(t_input.reshape(-1)[0]))) + 1
        ab = alpha_bar[k - 1]
        return torch.sqrt(1 - ab) * (x - torch.sqrt(ab) * mu) / (ab * s * s + 1 - ab)

    ns = ref.NoiseScheduleVP("discrete", alphas_cumprod=alpha_bar, dtype=torch.float64)
    model_fn = ref.model_wrapper(eps_model, ns, model_type="noise")
    solver = ref.DPM_Solver(model_fn, ns, algorithm_type="dpmsolver++")

    xT = torch.linspace(-2.5, 2.5, 16, dtype=torch.float64).reshape(1, 16)
    lines = []
    for N in (5, 10, 25):
        x = solver.sample(xT.clone(), steps=N - 1, t_start=1.0, t_end=1.0 / N,
                          order=2, skip_type="time_uniform", method="multistep",
                          lower_order_final=False, denoise_to_zero=True)
        values = [N] + xT.reshape(-1).tolist() + x.reshape(-1).tolist()
        lines.append(" ".join("%.17g" % v for v in values))
    with open(out_path, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
