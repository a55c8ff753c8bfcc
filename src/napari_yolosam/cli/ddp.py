"""Multi-GPU / multi-node SAM training: ``torchrun ... -m napari_yolosam.cli.ddp``.

Each process trains on its shard of the prompts (DistributedDataParallel
averages gradients), metrics are reduced across ranks, and rank 0 alone
writes the checkpoints and ``metrics.csv``. CPU runs use the gloo backend,
GPU runs NCCL with one GPU per process (``LOCAL_RANK``). Example::

    torchrun --nproc_per_node 4 -m napari_yolosam.cli.ddp --data DIR --out RUN --segmenter sam_vit_b --mode full

YOLO trains through ultralytics' own DDP (``yolosam train --device 0,1``).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def ddp_parser() -> argparse.ArgumentParser:
    """The launcher's options: the data, the run folder and ``yolosam train``'s training options."""
    from ..defaults import default_segmenter
    from .options import add_encoder_backend_option, add_spec_options, add_train_options

    parser = argparse.ArgumentParser(prog="napari_yolosam.cli.ddp", description=__doc__)
    parser.add_argument(
        "--images", "--data", dest="images", required=True, help="the labelled stack to train on"
    )
    parser.add_argument("--out", required=True, help="run folder")
    parser.add_argument("--segmenter", default=default_segmenter())
    add_encoder_backend_option(parser)
    add_train_options(parser)
    parser.add_argument("--max-steps-per-epoch", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--report-dir", help=argparse.SUPPRESS)  # tests: per-rank weight checksums
    add_spec_options(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point for one process of a ``torchrun`` launch."""
    import torch
    import torch.distributed as dist

    from ..io import read_stack
    from ..models.segmenter import Segmenter
    from ..progress import cli_progress, drive
    from ..training.run import write_metrics
    from ..training.sam import train_segmenter
    from .options import sam_config_from_args, spec_from_args

    args = ddp_parser().parse_args(argv)

    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo")
    rank = dist.get_rank()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    device = f"cuda:{local_rank}" if cuda else "cpu"
    if cuda:
        torch.cuda.set_device(local_rank)
    try:
        stack = read_stack(
            args.images,
            spec=spec_from_args(args),
            series=getattr(args, "series", None),
            phase=getattr(args, "phase", None),
        )
        segmenter = Segmenter.from_spec(args.segmenter, device, args.encoder_backend)
        config = sam_config_from_args(args)
        result = drive(
            train_segmenter(stack, segmenter, config, args.out),
            cli_progress() if rank == 0 else None,
        )
        if rank == 0:
            write_metrics(Path(args.out) / "metrics.csv", result.history)
        if args.report_dir:
            total = sum(float(p.detach().double().sum()) for p in segmenter.model.parameters())
            Path(args.report_dir).mkdir(parents=True, exist_ok=True)
            (Path(args.report_dir) / f"rank{rank}.json").write_text(
                json.dumps({"rank": rank, "world": dist.get_world_size(), "checksum": total})
            )
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
