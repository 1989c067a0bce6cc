"""Every script in benchmarks/ runs end to end in its smoke mode, so a refactor cannot break one.

`python benchmarks/<name> --smoke` runs the whole script on tiny sizes (benchmarks/smoke.py).
The scripts are found by listing the folder, so a new one is run the day it is added; its
result lines must then be named in `RESULTS` (the test fails until they are).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import ROOT, assert_cli_error, run_script

BENCHMARKS = ROOT / "benchmarks"
DOC = ROOT / "docs" / "BENCHMARKS.md"
SMOKE_NOTE = "smoke run (--smoke): tiny sizes, every number below is meaningless"

# Modules the scripts import, not scripts: they have no smoke mode of their own.
HELPERS = {
    "doc_section.py": "writes a script's table into docs/BENCHMARKS.md (--write)",
    "smoke.py": "the --smoke flag every script shares",
}
NUMBER = r"[\d,]+\.?\d*"
# Lines a script prints only once its measurement ran to the end (regular expressions).
RESULTS = {
    "cv_accuracy.py": [rf"\| diabetes \| rmse \| {NUMBER} ± {NUMBER} \| \w+ {NUMBER}",
                       r"2-fold CV"],
    "export_table.py": [rf"\| wine \| keras_predict \|  \|  \|  \|  \| {NUMBER} \| 1 \|",
                        rf"\| wine \| tflite_int8 \| {NUMBER} \| {NUMBER} \| .+ \| (yes|NO) \|"],
    "fit_speed.py": [rf"\| naive \| {NUMBER} \| {NUMBER} \|",
                     rf"\| ours \| {NUMBER} \| {NUMBER} \|",
                     rf"speed-up \(naive / ours\): {NUMBER}x"],
    "image_defaults.py": [rf"seed 0: test accuracy {NUMBER} \(\d+/\d+/\d+ images, 1 epochs",
                          rf"mean test accuracy {NUMBER} over seeds 0"],
    "image_throughput.py": [rf"\| digits \(8x8x1, \d+ training images, 1 epochs\) \| ours \| "
                            rf"{NUMBER} \| {NUMBER} \| {NUMBER}x \|",
                            rf"\| shapes folder \(64x64x3, \d+ training images, 1 epochs\) \| "
                            rf"ours \| {NUMBER} \|",
                            rf"Loading the generated folder \(32 PNG/JPEG .*: {NUMBER} s median"],
    "main_job.py": [rf"\| `import tensorflow, keras` only \| {NUMBER} \|",
                    rf"\| `python -m tasks.binary_classify` \| {NUMBER} \|",
                    rf"\| of which `fit` \| {NUMBER} \|"],
    "stop_agreement.py": [rf"worker {index}: agreement {NUMBER} ms; epoch of 64 steps {NUMBER} ms "
                          rf"in one call, {NUMBER} ms with 1 stop checks" for index in (0, 1)],
    "streaming.py": [r"\| streamed training rows \(one epoch\) \| [\d,]+ \|",
                     rf"\| \*\*peak RSS of the run\*\* \| \*\*{NUMBER} GB\*\*",
                     rf"\| \*\*training throughput\*\* \| \*\*{NUMBER} rows/s\*\* \|"],
    "transfer_digits.py": [rf"\| 0 \| {NUMBER} \| {NUMBER} \| {NUMBER} \| [+-]{NUMBER} \| "
                           rf"{NUMBER} \|",
                           rf"\| 0 \| stage0 output \(8, 8, 16\) \| {NUMBER} \| {NUMBER} \|"],
    "tune_speed.py": [rf"\| naive keras-tuner pattern \| {NUMBER} \| {NUMBER} \|",
                      rf"\| ours \(`--tune`\) \| {NUMBER} \| {NUMBER} \| {NUMBER} \|",
                      rf"Default template \(untuned, same split\): test accuracy {NUMBER}",
                      rf"\*\*Speed-up {NUMBER}×\*\*"],
}
SCRIPTS = [path.name for path in sorted(BENCHMARKS.glob("*.py")) if path.name not in HELPERS]


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_runs_end_to_end_in_smoke_mode(script: str, tmp_path: Path) -> None:
    assert script in RESULTS, f"name the lines {script} prints when it succeeds in RESULTS"
    document = DOC.read_bytes()
    result = run_script(BENCHMARKS / script, "--smoke", cwd=tmp_path)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-5000:])
    assert result.stdout.count(SMOKE_NOTE) == 1, result.stdout[-3000:]
    for pattern in RESULTS[script]:
        assert re.search(pattern, result.stdout), (pattern, result.stdout[-5000:])
    # A smoke run writes only into temporary folders: not docs/, not where it was started.
    assert DOC.read_bytes() == document
    assert not list(tmp_path.iterdir())


def test_every_helper_module_is_used_by_a_script() -> None:
    sources = "\n".join((BENCHMARKS / script).read_text() for script in SCRIPTS)
    for helper in HELPERS:
        assert (BENCHMARKS / helper).is_file(), helper
        assert re.search(rf"^from {Path(helper).stem} import ", sources, re.MULTILINE), helper


def test_smoke_run_refuses_to_write_the_docs(tmp_path: Path) -> None:
    document = DOC.read_bytes()
    # streaming.py imports no TensorFlow before parsing its flags: this stays fast.
    result = run_script(BENCHMARKS / "streaming.py", "--smoke", "--write", cwd=tmp_path)
    assert_cli_error(result, "Received: --smoke --write", "drop one of them")
    assert DOC.read_bytes() == document
