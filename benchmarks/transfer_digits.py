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
the mean +- standard deviation, next to the scratch run's SVM baseline on the same 50 images;
`--write` puts the table in docs/BENCHMARKS.md.

`--ceiling` measures what 10 images per class are compared against: 5-fold cross-validation over
all the images of 5-9 (about 717 to learn from per fold, 90 times the few-shot data), the same
ResNet-20 through `tasks.image_classify` and an RBF SVM on the pixels, same folds. A gain of G
points over scratch needs scratch + G from 10 images per class, which cannot be expected above
this ceiling.

`--transfer-set KEY=VALUE` tries another recipe for the transfer runs (e.g.
`train.fine_tune_learning_rate_factor=0.01`); `--cut LAYER` transfers from the pretrained network
cut after LAYER, its output flattened (e.g. `stage0_block2_out_relu`, the first stage, where the
probe below finds the most). Such runs are printed, not written.

`--probe` asks what the pretrained network knows about 5-9: a logistic regression on the
frozen features of each stage of the ResNet pretrained on 0-4 (averaged over positions, as the
head sees them, and flattened, keeping the layout), learned from the same 50 images, against one
on the raw pixels.

    python benchmarks/transfer_digits.py --seeds 0,1,2 --write
    python benchmarks/transfer_digits.py --ceiling --write
    python benchmarks/transfer_digits.py --probe --write
    python benchmarks/transfer_digits.py --smoke   # comparison + probe: ResNet-8, 1 epoch
    python benchmarks/transfer_digits.py --smoke --ceiling   # 2 folds, 1 epoch
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from doc_section import write_section  # noqa: E402
from PIL import Image  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import StratifiedKFold  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.svm import SVC  # noqa: E402
from smoke import parse_args  # noqa: E402

PRETRAIN_CLASSES = range(0, 5)
NEW_CLASSES = range(5, 10)
COMMON = ["--set", "export.latency=false"]


@dataclass(frozen=True)
class Budget:
    """The ResNet's depth and every run's epochs (all tiny in a smoke run).

    The small ResNet pretrained on 0-4 and trained from scratch on 5-9 is ResNet-20 (three
    stages of three basic blocks; 8x8 digits end at 2x2).
    """

    depth: int = 20
    head_epochs: int = 60
    fine_tune_epochs: int = 60
    epochs: int | None = None  # pretraining and the ceiling; None: image_classify's (150)
    folds: int = 5  # the ceiling's cross-validation

    def resnet(self) -> list[str]:
        """`tasks.image_classify` flags for the ResNet (and its epochs, unless the default)."""
        epochs = ["--epochs", str(self.epochs)] if self.epochs else []
        return ["--model", "resnet", "--set", f"model.depth={self.depth}", *epochs]


SMOKE = Budget(depth=8, head_epochs=1, fine_tune_epochs=1, epochs=1, folds=2)


def to_pixels(images: np.ndarray) -> np.ndarray:
    """Digits' pixels 0..16 scaled to 0..255, as the PNG files hold them."""
    return np.rint(images * (255.0 / 16.0)).astype("uint8")


def write_folder(root: Path, images: np.ndarray, labels: np.ndarray) -> Path:
    """One sub-folder per digit, one PNG per image."""
    for index, (image, label) in enumerate(zip(to_pixels(images), labels, strict=True)):
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image, mode="L").save(folder / f"{index:04d}.png")
    return root


def split(labels: np.ndarray, seed: int,
          per_class: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of `pretrain` (all of 0-4), `few` (per_class of each of 5-9), `rest` (other 5-9)."""
    old = np.isin(labels, PRETRAIN_CLASSES)
    rng = np.random.default_rng(seed)
    few = np.concatenate([rng.choice(np.flatnonzero(labels == label), per_class, replace=False)
                          for label in NEW_CLASSES])
    return np.flatnonzero(old), few, np.setdiff1d(np.flatnonzero(~old), few)


def folders(work: Path, seed: int, per_class: int) -> tuple[Path, Path, Path]:
    """The three sets of `split` as image folders: `pretrain`, `few`, `rest`."""
    digits = load_digits()
    return tuple(write_folder(work / name, digits.images[chosen], digits.target[chosen])
                 for name, chosen in zip(("pretrain", "few", "rest"),
                                         split(digits.target, seed, per_class), strict=True))


@functools.cache  # a smoke run probes the network its comparison pretrained
def pretrain(folder: Path, seed: int, run_dir: Path, budget: Budget) -> dict:
    """ResNet-20 on all of 0-4 through `tasks.image_classify`; its model.keras in `run_dir`."""
    from tasks import image_classify

    return run(image_classify.main, ["--data", str(folder), "--seed", str(seed),
                                     *budget.resnet()], run_dir, export="keras")


def pretrained_network(run_dir: Path):
    """The trained network inside a run's model.keras (float pixels 0..255 in, 0-4 out).

    Its augmentation layers pass images through unchanged outside training.
    """
    import keras

    import zoo.layers  # noqa: F401  (registers the zoo's layers for loading)
    from zoo.applications import _find_network

    return _find_network(keras.saving.load_model(run_dir / "model.keras", safe_mode=True,
                                                 compile=False))


def cut_at(run_dir: Path, layer: str, path: Path) -> Path:
    """Saves the pretrained network cut after `layer`, flattened, as a model `--weights` takes.

    `--weights PATH` makes the input of a model's `"head"` layer the backbone's features, so a
    head named so goes on the flattened output; its own weights are not used.
    """
    import keras

    network = pretrained_network(run_dir)
    features = keras.layers.Flatten()(network.get_layer(layer).output)
    head = keras.layers.Dense(len(NEW_CLASSES), name="head")(features)
    keras.Model(network.input, head, name=f"{network.name}_cut").save(path)
    return path


def run(main, argv: list[str], run_dir: Path, export: str = "none") -> dict:
    started = time.perf_counter()
    code = main([*argv, "--run-dir", str(run_dir), "--export", export, *COMMON])
    if code != 0:
        raise SystemExit(f"{' '.join(argv)} exited with {code}")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["wall_seconds"] = time.perf_counter() - started
    return metrics


def one_seed(seed: int, per_class: int, work: Path, budget: Budget,
             settings: tuple[str, ...] = (), cut: str | None = None) -> dict[str, float]:
    from tasks import image_classify, transfer_learning

    pretrain_folder, few, rest = folders(work / f"seed{seed}", seed, per_class)
    runs = work / f"runs{seed}"
    base = pretrain(pretrain_folder, seed, runs / "pretrain", budget)
    weights = runs / "pretrain" / "model.keras"
    if cut:
        weights = cut_at(runs / "pretrain", cut, runs / "cut.keras")
    transfer = run(transfer_learning.main, [
        "--data", str(few), "--test-data", str(rest), "--seed", str(seed),
        "--weights", str(weights),
        "--epochs", str(budget.head_epochs), "--fine-tune-epochs", str(budget.fine_tune_epochs),
        "--fine-tune-layers", "all", *[arg for item in settings for arg in ("--set", item)]],
        runs / "transfer")
    scratch = run(image_classify.main, [
        "--data", str(few), "--test-data", str(rest), "--seed", str(seed), *budget.resnet(),
        "--epochs", str(budget.head_epochs + budget.fine_tune_epochs)], runs / "scratch")
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
        "| same network from scratch | gain (points) | SVM baseline on the 50 images |",
        "|---|---|---|---|---|---|",
        *[f"| {seed} | {100 * result['pretrain']:.1f} | {100 * result['transfer']:.1f} | "
          f"{100 * result['scratch']:.1f} | {gain:+.1f} | {100 * result['svm']:.1f} |"
          for seed, result, gain in zip(seeds, results, gains, strict=True)],
        f"| **mean ± std** | {mean_std('pretrain')} | **{mean_std('transfer')}** | "
        f"{mean_std('scratch')} | **{statistics.mean(gains):+.1f}** | {mean_std('svm')} |",
    ]
    return "\n".join(lines)


def ceiling(work: Path, budget: Budget) -> str:
    """Accuracy on 5-9 with most of their images to learn from: the most any recipe can reach."""
    from tasks import image_classify

    digits = load_digits()
    new = np.flatnonzero(np.isin(digits.target, NEW_CLASSES))
    images, labels = digits.images[new], digits.target[new]
    resnet, svm = [], []
    folds = budget.folds
    splits = StratifiedKFold(folds, shuffle=True, random_state=0).split(images, labels)
    for fold, (learn, test) in enumerate(splits):
        root = work / f"fold{fold}"
        metrics = run(image_classify.main, [
            "--data", str(write_folder(root / "learn", images[learn], labels[learn])),
            "--test-data", str(write_folder(root / "test", images[test], labels[test])),
            "--seed", str(fold), *budget.resnet()], root / "run")
        resnet.append(metrics["test"]["accuracy"])
        pixels = make_pipeline(StandardScaler(), SVC()).fit(
            images[learn].reshape(len(learn), -1), labels[learn])
        svm.append(pixels.score(images[test].reshape(len(test), -1), labels[test]))
        print(f"fold {fold}: {len(learn)} images to learn from, {len(test)} to test: ResNet-20 "
              f"{resnet[-1]:.4f}  SVM {svm[-1]:.4f}", flush=True)

    def mean_std(values: list[float]) -> str:
        return f"{100 * statistics.mean(values):.1f} ± {100 * statistics.stdev(values):.1f}"

    return "\n".join([
        f"Ceiling: {folds}-fold cross-validation over all {len(labels)} images of 5-9 "
        f"(about {len(labels) * (folds - 1) // folds} to learn from per fold, 80% of them "
        "for training, the rest validation). Command: "
        "`python benchmarks/transfer_digits.py --ceiling --write`.",
        "",
        "| learned from | ResNet-20 (`tasks.image_classify`, 150 epochs) | SVM on the pixels |",
        "|---|---|---|",
        f"| all other images of 5-9 | {mean_std(resnet)} | {mean_std(svm)} |",
    ])


def probe(seed: int, per_class: int, work: Path, budget: Budget) -> list[str]:
    """Linear probes of the pretrained stages' features vs the pixels, from the few images."""
    import keras

    pretrain_folder, _, _ = folders(work / f"seed{seed}", seed, per_class)
    run_dir = work / f"runs{seed}" / "pretrain"
    pretrain(pretrain_folder, seed, run_dir, budget)
    network = pretrained_network(run_dir)
    digits = load_digits()
    labels = digits.target
    _, few, rest = split(labels, seed, per_class)
    pixels = to_pixels(digits.images).astype("float32")[..., None]

    def accuracy(features: np.ndarray) -> float:
        features = features.reshape(len(features), -1)
        classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
        return classifier.fit(features[few], labels[few]).score(features[rest], labels[rest])

    stages = [layer for layer in network.layers
              if layer.name.endswith("_out_relu") and "block" in layer.name]
    last = {layer.name.split("_")[0]: layer for layer in stages}  # each stage's last block
    outputs = keras.Model(network.input, [layer.output for layer in last.values()]).predict(
        pixels, verbose=0)
    rows = [f"| {seed} | pixels {tuple(pixels.shape[1:])} | {100 * accuracy(pixels):.1f} | |"]
    for name, maps in zip(last, outputs, strict=True):
        pooled = maps.mean(axis=(1, 2))
        rows.append(f"| {seed} | {name} output {tuple(maps.shape[1:])} "
                    f"| {100 * accuracy(maps):.1f} | {100 * accuracy(pooled):.1f} |")
    print(*rows, sep="\n", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--probe", action="store_true",
                        help="instead, probe the pretrained features with a linear classifier")
    parser.add_argument("--ceiling", action="store_true",
                        help="instead, cross-validate on all images of 5-9 (the ceiling)")
    parser.add_argument("--transfer-set", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting for the transfer runs only, as --set (repeatable)")
    parser.add_argument("--cut", metavar="LAYER",
                        help="transfer from the pretrained network cut after LAYER, flattened "
                             "(e.g. stage0_block2_out_relu)")
    parser.add_argument("--write", action="store_true", help="update docs/BENCHMARKS.md")
    args = parse_args(parser, seeds="0", per_class=5)
    if args.write and (args.transfer_set or args.cut):
        parser.error("--write records the default recipe only; drop --transfer-set and --cut")
    seeds = [int(seed) for seed in args.seeds.split(",")]
    budget = SMOKE if args.smoke else Budget()
    # A smoke run without --probe or --ceiling probes the network it pretrained for the
    # comparison too: the probe reaches into the saved model, which a refactor could break
    # unseen. The ceiling's runs are plain `tasks.image_classify` runs, as the comparison's.
    with tempfile.TemporaryDirectory() as scratch:
        if args.probe or (args.smoke and not args.ceiling):
            probe_table(args, seeds, budget, Path(scratch))
        if args.ceiling:
            text = ceiling(Path(scratch) / "ceiling", budget)
            print(text)
            if args.write:
                write_section("transfer-ceiling", text)
        if not (args.probe or args.ceiling):
            results = [one_seed(seed, args.per_class, Path(scratch), budget,
                                tuple(args.transfer_set), args.cut) for seed in seeds]
            text = table(results, args.per_class, seeds)
            print(text)
            if args.write:
                write_section("transfer-digits", text)


def probe_table(args: argparse.Namespace, seeds: list[int], budget: Budget, work: Path) -> None:
    """Prints (and with --write records) the linear probes of every seed."""
    rows = [row for seed in seeds for row in probe(seed, args.per_class, work, budget)]
    text = "\n".join([
        f"Linear probe (logistic regression) learned from the same {args.per_class} images "
        f"per class of 5-9, tested on the other images of 5-9; frozen ResNet-20 pretrained "
        f"on 0-4; seeds {seeds}. Command: `python benchmarks/transfer_digits.py --probe "
        f"--seeds {args.seeds} --write`.",
        "",
        "| seed | features | accuracy, flattened (%) | averaged over positions (%) |",
        "|---|---|---|---|",
        *rows])
    print(text)
    if args.write:
        write_section("transfer-probe", text)


if __name__ == "__main__":
    main()
