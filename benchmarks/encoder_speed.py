"""The encoder's backends side by side: speed, agreement with PyTorch float32, memory, profile.

Times one encoder pass per 256 px slice for each candidate, interleaved (each repeat runs
every candidate once on the same slice), for single slices and batches, and prints the
ratio to PyTorch float32 measured in the same run; the embedding's max and relative error;
the Dice of scar proposals from expert-box prompts on EMIDEC dev slices (against the
expert, and against PyTorch float32's masks); threads; and peak memory (each backend in a
fresh process). ``--profile`` adds where PyTorch's and ONNX Runtime's time goes, by operator.
Prints Markdown tables (docs/benchmarks.md). Usage::

    .venv/bin/python benchmarks/encoder_speed.py [--slices 24] [--repeats 5] [--profile]
        [--candidates torch channels_last onnx compile half] [--embed-all]

``compile`` (torch.compile, about 70 s to build) and ``half`` (bfloat16 autocast: emulated
without AVX-512 BF16, about 50 s a slice here) are opt-in candidates. ``--embed-all``
times embedding every EMIDEC dev slice with the default backend and with PyTorch.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("YOLOSAM_HOME", tempfile.mkdtemp(prefix="yolosam-bench-"))
EMIDEC = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "emidec_dev"
DEFAULT = ["torch", "channels_last", "onnx"]


def slices(n: int):
    """``n`` EMIDEC dev slices with scar (spread over the patients) and their expert scar, or
    phantom slices where the data is absent."""
    import numpy as np

    if EMIDEC.is_dir():
        from napari_yolosam import read_stack

        stack = read_stack(EMIDEC)
        scar = stack.scar()
        with_scar = [i for i in range(len(stack)) if scar[i].sum() >= 20]
        pick = np.linspace(0, len(with_scar) - 1, min(n, len(with_scar))).round().astype(int)
        chosen = [with_scar[k] for k in pick]
        return [stack.images[i] for i in chosen], [scar[i] for i in chosen], "EMIDEC dev"
    from napari_yolosam.phantom.make import make_phantom

    phantom = make_phantom(n_slices=n, shape=(256, 256), seed=1)
    truth = phantom.stack.spec.scar_mask(phantom.truth)
    return list(phantom.stack.images), list(truth), "phantom"


def candidates(segmenter, names: list[str]) -> dict:
    """``name -> fn(batch) -> embedding``: every candidate on the same network."""
    import copy

    import torch

    from napari_yolosam.models.segmenter.backends import half_runner, onnx_runner, torch_runner

    made = {}
    for name in names:
        if name == "torch":
            made[name] = torch_runner(segmenter).run
        elif name == "onnx":
            made[name] = onnx_runner(segmenter).run
        elif name == "half":
            made[name] = half_runner(segmenter).run
        elif name == "channels_last":
            encoder = copy.deepcopy(segmenter.model.image_encoder).to(
                memory_format=torch.channels_last
            )
            made[name] = _plain(encoder, channels_last=True)
        elif name == "compile":
            encoder = torch.compile(copy.deepcopy(segmenter.model.image_encoder))
            made[name] = _plain(encoder)
        else:
            raise SystemExit(f"unknown candidate {name}")
    return made


def _plain(encoder, channels_last: bool = False):
    import torch

    def run(batch):
        if channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            return encoder(batch).contiguous()

    return run


def timed(fn, batch) -> float:
    start = time.perf_counter()
    fn(batch)
    return time.perf_counter() - start


def speed_table(made: dict, inputs: list, repeats: int, batch_size: int) -> list[str]:
    """Seconds per slice (median of ``repeats``, interleaved), single slices and batches."""
    import numpy as np
    import torch

    one = inputs[0][None]
    many = torch.stack(inputs[:batch_size])
    for fn in made.values():  # warm-up (builds, first allocations)
        fn(one)
    single = {name: [] for name in made}
    batched = {name: [] for name in made}
    for r in range(repeats):
        for name, fn in made.items():
            single[name].append(timed(fn, inputs[r % len(inputs)][None]))
        for name, fn in made.items():
            batched[name].append(timed(fn, many) / len(many))
    base = float(np.median(single["torch"]))
    rows = [
        f"| backend | s/slice (1) | ratio to torch fp32 | s/slice (batch of {len(many)}) |",
        "|---|---|---|---|",
    ]
    for name in made:
        s1, sb = float(np.median(single[name])), float(np.median(batched[name]))
        rows.append(f"| {name} | {s1:.3f} | {s1 / base:.2f} | {sb:.3f} |")
    return rows


def accuracy_table(segmenter, made: dict, images: list, truths: list, inputs: list) -> list[str]:
    """Embedding error and proposal Dice (expert-box prompts) of each candidate."""
    import numpy as np

    from napari_yolosam.proposals.types import label_boxes

    def dice(a, b):
        total = a.sum() + b.sum()
        return 1.0 if total == 0 else 2 * float((a & b).sum()) / total

    reference = [made["torch"](x[None]) for x in inputs]
    ref_masks = []
    rows = [
        "| backend | max abs error | relative error | Dice vs expert | Dice change | Dice vs torch's masks |",
        "|---|---|---|---|---|---|",
    ]
    results = {}
    for name, fn in made.items():
        errors, rel, vs_expert, vs_ref = [], [], [], []
        for k, (image, truth, x) in enumerate(zip(images, truths, inputs, strict=True)):
            emb = reference[k] if name == "torch" else fn(x[None])
            ref = reference[k]
            errors.append(float((emb - ref).abs().max()))
            rel.append(float((emb - ref).norm() / ref.norm()))
            boxes = label_boxes(truth)
            masks = segmenter.decode(emb.float(), image.shape, boxes=boxes).union
            if name == "torch":
                ref_masks.append(masks)
            vs_expert.append(dice(masks, truth))
            vs_ref.append(dice(masks, ref_masks[k]))
        results[name] = float(np.mean(vs_expert))
        rows.append(
            f"| {name} | {max(errors):.2g} | {max(rel):.2g} | {results[name]:.4f} "
            f"| {results[name] - results['torch']:+.4f} | {np.mean(vs_ref):.4f} |"
        )
    return rows


def rss_mb() -> float:
    """This process's resident memory now, in MB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_during(fn, x, passes: int = 3) -> float:
    """The highest resident memory (MB) sampled every 2 ms while ``fn`` encodes ``passes`` times."""
    import threading

    peak, done = [rss_mb()], threading.Event()

    def sample():
        while not done.is_set():
            peak.append(rss_mb())
            time.sleep(0.002)

    watcher = threading.Thread(target=sample)
    watcher.start()
    for _ in range(passes):
        fn(x)
    done.set()
    watcher.join()
    return max(peak)


def memory_of(name: str) -> dict:
    """Resident memory of a fresh process that loads the segmenter (and the backend), then its
    peak while encoding 3 slices with ``name``."""
    code = (
        f"import sys, torch; sys.path.insert(0, {str(Path(__file__).parent)!r}); import encoder_speed as b;"
        "from napari_yolosam.models.segmenter import Segmenter;"
        "seg = Segmenter.from_spec('lite_medsam');"
        f"fn = b.candidates(seg, [{name!r}])[{name!r}];"
        "x = torch.zeros(1, 3, seg.img_size, seg.img_size); fn(x);"
        "before = b.rss_mb(); print(before, b.peak_during(fn, x))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    return {"loaded_mb": float(out[-2]), "peak_mb": float(out[-1])}


def profile_tables(segmenter, made: dict, x) -> list[str]:
    """Where the time goes: PyTorch's operators, and ONNX Runtime's by operator type."""
    import collections

    import torch
    from torch.profiler import ProfilerActivity, profile

    rows = ["PyTorch float32, by operator (self time, one pass):", "```"]
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        made["torch"](x[None])
    rows += prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=10).splitlines()
    rows.append("```")
    if "onnx" in made:
        import onnxruntime as ort

        from napari_yolosam.models.segmenter.backends import exported_encoder

        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tempfile.mkdtemp()) / "ort")
        options.log_severity_level = 3
        session = ort.InferenceSession(str(exported_encoder(segmenter)), options)
        for _ in range(3):
            session.run(None, {session.get_inputs()[0].name: x[None].numpy()})
        events = json.loads(Path(session.end_profiling()).read_text())
        by_op: collections.Counter = collections.Counter()
        for event in events:
            if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
                by_op[event["args"]["op_name"]] += event["dur"] / 3
        total = sum(by_op.values())
        rows += ["", "ONNX Runtime float32, by operator type (one pass):", ""]
        rows += ["| operator | ms | share |", "|---|---|---|"]
        rows += [
            f"| {op} | {us / 1000:.1f} | {100 * us / total:.1f}% |"
            for op, us in by_op.most_common(10)
        ]
    return rows


def embed_all(backends: list[str]) -> list[str]:
    """Minutes to embed every EMIDEC dev slice (memory cache only), per backend, alone."""
    from napari_yolosam import read_stack
    from napari_yolosam.models.embeddings import EmbeddingCache, embed_stack
    from napari_yolosam.models.segmenter import Segmenter
    from napari_yolosam.progress import drive

    stack = read_stack(EMIDEC)
    rows = ["| backend | slices | minutes | s/slice |", "|---|---|---|---|"]
    for name in backends:
        segmenter = Segmenter.from_spec("lite_medsam", encoder_backend=name)
        assert segmenter.encoder_runner.name  # export and check outside the timing
        start = time.perf_counter()
        drive(embed_stack(segmenter, list(stack.images), EmbeddingCache(max_bytes=1 << 33)))
        took = time.perf_counter() - start
        rows.append(f"| {name} | {len(stack)} | {took / 60:.1f} | {took / len(stack):.2f} |")
    return rows


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--candidates", nargs="+", default=DEFAULT)
    parser.add_argument("--slices", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--embed-all", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from napari_yolosam.models.preprocess import prepare_image
    from napari_yolosam.models.segmenter import Segmenter

    names = ["torch"] + [n for n in args.candidates if n != "torch"]
    segmenter = Segmenter.from_spec("lite_medsam", encoder_backend="torch")
    images, truths, source = slices(args.slices)
    inputs = [prepare_image(image, segmenter.preprocess) for image in images]
    made = candidates(segmenter, names)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, LiteMedSAM encoder, "
        f"{len(images)} {source} slices, {args.repeats} interleaved repeats; cpu: "
        f"{torch.backends.cpu.get_cpu_capability()}\n"
    )
    print("\n".join(speed_table(made, inputs, args.repeats, args.batch)), "\n")
    print("\n".join(accuracy_table(segmenter, made, images, truths, inputs)), "\n")
    if not args.no_memory:
        print("| backend | RSS before encoding, MB | peak RSS while encoding, MB | added |")
        print("|---|---|---|---|")
        for name in names:
            mem = memory_of(name)
            added = mem["peak_mb"] - mem["loaded_mb"]
            print(f"| {name} | {mem['loaded_mb']:.0f} | {mem['peak_mb']:.0f} | {added:+.0f} |")
        print()
    if args.profile:
        print("\n".join(profile_tables(segmenter, made, inputs[0])), "\n")
    if args.embed_all and EMIDEC.is_dir():
        print("\n".join(embed_all(["auto", "torch"])))


if __name__ == "__main__":
    main()
