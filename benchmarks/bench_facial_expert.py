"""Faces/s of the facial experts (batch 1 and batch 32), on CPU and on CUDA when there is one.

    .venv/bin/python benchmarks/bench_facial_expert.py [--faces 64] [--threads 0] [--expert offline]

Crops are 224 x 224 (FaceCropper's default). `offline` runs face-api's landmark net (tokens +
landmarks) and age/gender net, each twice (flip averaging) unless --no-flip; `expression` is the
7-class expression net alone. Printed ratios (batch 32 / batch 1, flip / no flip) come from one run.
"""

from __future__ import annotations

import argparse
import time

import torch

from emo_llama.expert import get_expert, get_expression_net


def faces_per_second(fn, crops: torch.Tensor, batch: int, device: torch.device) -> float:
    fn(crops[:batch])  # warm-up (kernel selection, allocator)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(0, len(crops), batch):
        fn(crops[i:i + batch])
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(crops) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, default=64, help="crops per measurement")
    parser.add_argument("--size", type=int, default=224, help="crop side, pixels")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    crops = torch.rand(args.faces, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    print(f"{args.faces} crops of {args.size}x{args.size}; CPU threads: {torch.get_num_threads()}")
    print(f"{'device':8s} {'model':26s} {'batch 1':>10s} {'batch 32':>10s} {'32 / 1':>7s}")
    for device in devices:
        x = crops.to(device)
        models = {
            "offline (flip average)": get_expert("offline", device=str(device)),
            "offline (no flip)": get_expert("offline", device=str(device), flip_average=False),
            "expression net": get_expression_net(str(device), flip_average=False),
            "tiny (random)": get_expert("tiny", device=str(device)),
        }
        rates = {}
        for name, model in models.items():
            one = faces_per_second(model, x, 1, device)
            many = faces_per_second(model, x, 32, device)
            rates[name] = (one, many)
            print(f"{device.type:8s} {name:26s} {one:10.1f} {many:10.1f} {many / one:7.2f}")
        flip, plain = rates["offline (flip average)"][1], rates["offline (no flip)"][1]
        print(f"{device.type:8s} flip averaging costs x{plain / flip:.2f} at batch 32")


if __name__ == "__main__":
    main()
