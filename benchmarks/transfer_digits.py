"""Does transfer learning pay off? Digits 5-9 from 10 images each, with and without pretraining.

For each seed, through the task CLIs exactly as a user would run them:

1. pretrain: `tasks.image_classify --model resnet` on every image of digits 0-4;
2. transfer: `tasks.transfer_learning --weights <pretrained model.keras> --fine-tune-layers all`
   on 10 images of each of the digits 5-9 (8 train + 2 validation per class), tested on all the
   other images of 5-9 (all layers: with the top 20 of the ResNet's 75 the few images could not
   adapt features that, frozen, a linear head reads at only 58% accuracy on seed 0);
3. scratch: `tasks.image_classify --model resnet` on the same 50 images and test folder, with the
   same epoch budget (phase 1 + phase 2 epochs of the transfer run).

The seed picks the 10 images per class and seeds the weights. Prints each seed's test accuracy and
the mean +- standard deviation; `--write` puts the table in docs/BENCHMARKS.md.

    python benchmarks/transfer_digits.py --seeds 0,1,2 --write
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from doc_section import write_section  # noqa: E402
from PIL import Image  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

PRETRAIN_CLASSES = range(0, 5)
NEW_CLASSES = range(5, 10)
# The small ResNet pretrained on 0-4 and trained from scratch on 5-9: ResNet-20 (three stages of
# three basic blocks; 8x8 digits end at 2x2).
RESNET = ["--model", "resnet", "--set", "model.depth=20"]
HEAD_EPOCHS, FINE_TUNE_EPOCHS = 60, 60
COMMON = ["--set", "export.latency=false"]


def write_folder(root: Path, images: np.ndarray, labels: np.ndarray) -> Path:
    """One sub-folder per digit, one PNG per image (pixels 0..16 scaled to 0..255)."""
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        pixels = np.rint(image * (255.0 / 16.0)).astype("uint8")
        Image.fromarray(pixels, mode="L").save(folder / f"{index:04d}.png")
    return root


def folders(work: Path, seed: int, per_class: int) -> tuple[Path, Path, Path]:
    """`pretrain` (all of 0-4), `few` (per_class of each of 5-9), `rest` (the other 5-9)."""
    digits = load_digits()
    images, labels = digits.images, digits.target
    old = np.isin(labels, PRETRAIN_CLASSES)
    rng = np.random.default_rng(seed)
    few = np.concatenate([rng.choice(np.flatnonzero(labels == label), per_class, replace=False)
                          for label in NEW_CLASSES])
    rest = np.setdiff1d(np.flatnonzero(~old), few)
    return (write_folder(work / "pretrain", images[old], labels[old]),
            write_folder(work / "few", images[few], labels[few]),
            write_folder(work / "rest", images[rest], labels[rest]))


def run(main, argv: list[str], run_dir: Path, export: str = "none") -> dict:
    started = time.perf_counter()
    code = main([*argv, "--run-dir", str(run_dir), "--export", export, *COMMON])
    if code != 0:
        raise SystemExit(f"{' '.join(argv)} exited with {code}")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["wall_seconds"] = time.perf_counter() - started
    return metrics


def one_seed(seed: int, per_class: int, work: Path) -> dict[str, float]:
    from tasks import image_classify, transfer_learning

    pretrain, few, rest = folders(work / f"seed{seed}", seed, per_class)
    runs = work / f"runs{seed}"
    base = run(image_classify.main, ["--data", str(pretrain), "--seed", str(seed), *RESNET],
               runs / "pretrain", export="keras")
    transfer = run(transfer_learning.main, [
        "--data", str(few), "--test-data", str(rest), "--seed", str(seed),
        "--weights", str(runs / "pretrain" / "model.keras"),
        "--epochs", str(HEAD_EPOCHS), "--fine-tune-epochs", str(FINE_TUNE_EPOCHS),
        "--fine-tune-layers", "all"],
        runs / "transfer")
    scratch = run(image_classify.main, [
        "--data", str(few), "--test-data", str(rest), "--seed", str(seed), *RESNET,
        "--epochs", str(HEAD_EPOCHS + FINE_TUNE_EPOCHS)], runs / "scratch")
    result = {"pretrain": base["test"]["accuracy"], "transfer": transfer["test"]["accuracy"],
              "scratch": scratch["test"]["accuracy"],
              "svm": scratch["baselines"]["svm_rbf"]["accuracy"]
              if "svm_rbf" in scratch["baselines"] else float("nan"),
              "test_images": scratch["rows"]["test"],
              "kept": (transfer.get("phases") or {}).get("kept", 1),
              "seconds": {name: metrics["wall_seconds"] for name, metrics in
                          (("pretrain", base), ("transfer", transfer), ("scratch", scratch))}}
    print(f"seed {seed}: pretrain (0-4) {result['pretrain']:.4f}  transfer {result['transfer']:.4f}"
          f"  scratch {result['scratch']:.4f}  (test images {result['test_images']}, phase kept "
          f"{result['kept']})", flush=True)
    return result


def table(results: list[dict], per_class: int, seeds: list[int]) -> str:
    def mean_std(name: str) -> str:
        values = [100 * result[name] for result in results]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.1f} ± {spread:.1f}"

    gains = [100 * (result["transfer"] - result["scratch"]) for result in results]
    lines = [
        f"Digits 5-9 learned from {per_class} images per class (8 train + 2 validation), tested "
        f"on the other {results[0]['test_images']} images of 5-9; seeds {seeds}. Command: "
        "`python benchmarks/transfer_digits.py --write`.",
        "",
        "| seed | ResNet-20 pretrained on 0-4 (its test accuracy) | transfer (`--weights` it) "
        "| same network from scratch | gain (points) |",
        "|---|---|---|---|---|",
        *[f"| {seed} | {100 * result['pretrain']:.1f} | {100 * result['transfer']:.1f} | "
          f"{100 * result['scratch']:.1f} | {gain:+.1f} |"
          for seed, result, gain in zip(seeds, results, gains, strict=True)],
        f"| **mean ± std** | {mean_std('pretrain')} | **{mean_std('transfer')}** | "
        f"{mean_std('scratch')} | **{statistics.mean(gains):+.1f}** |",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--write", action="store_true", help="update docs/BENCHMARKS.md")
    args = parser.parse_args()
    seeds = [int(seed) for seed in args.seeds.split(",")]
    with tempfile.TemporaryDirectory() as scratch:
        results = [one_seed(seed, args.per_class, Path(scratch)) for seed in seeds]
    text = table(results, args.per_class, seeds)
    print(text)
    if args.write:
        write_section("transfer-digits", text)


if __name__ == "__main__":
    main()
