"""Local temporal loss: the vectorised implementation against a loop over patients and bins, in one run.

    python benchmarks/local_loss.py [--batch 64] [--dim 128] [--repeats 20]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from ptacl_core.model.losses import local_temporal_loss


def loop_reference(u_ecg, u_cmr, mask, temperature=0.1):
    """One patient and one bin at a time (what a first implementation looks like)."""
    total, count = u_ecg.new_zeros(()), 0
    for i in range(u_ecg.shape[0]):
        valid = torch.nonzero(mask[i]).flatten()
        for position, k in enumerate(valid.tolist()):
            row = u_ecg[i, k] @ u_cmr[i, valid].T / temperature
            column = u_cmr[i, k] @ u_ecg[i, valid].T / temperature
            target = torch.tensor(position)
            total = total + 0.5 * (F.cross_entropy(row[None], target[None]) + F.cross_entropy(column[None], target[None]))
            count += 1
    return total / count


def timed(function, repeats):
    function()
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"B={args.batch}, d={args.dim}, forward + backward, CPU ({torch.get_num_threads()} threads)")
    for bins in (10, 25):
        u_ecg = F.normalize(torch.randn(args.batch, bins, args.dim), dim=-1).requires_grad_()
        u_cmr = F.normalize(torch.randn(args.batch, bins, args.dim), dim=-1).requires_grad_()
        mask = torch.rand(args.batch, bins) > 0.1
        assert torch.allclose(local_temporal_loss(u_ecg, u_cmr, mask), loop_reference(u_ecg, u_cmr, mask), atol=1e-5)
        inputs = (u_ecg, u_cmr, mask)
        fast = timed(lambda inputs=inputs: local_temporal_loss(*inputs).backward(), args.repeats)
        slow = timed(lambda inputs=inputs: loop_reference(*inputs).backward(), max(args.repeats // 10, 2))
        print(f"K={bins:3d}: vectorised {1000 * fast:7.2f} ms, loop {1000 * slow:8.1f} ms -> x{slow / fast:.0f}")


if __name__ == "__main__":
    main()
