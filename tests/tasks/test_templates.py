"""Whole default templates, as users run them (slow: a few full trainings)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.binary_classify import default_config
from tasks.config import DEFAULT_EXPORTS
from tasks.engine import pipeline

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_main_job_with_no_flags(tmp_path):
    """`python -m tasks.binary_classify` on the bundled data: trains, beats baselines, exports."""
    # PYTHONPATH: the process runs in an empty folder, and must import this checkout, not
    # whichever checkout an editable install points to.
    result = subprocess.run([sys.executable, "-m", "tasks.binary_classify"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=600,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
                                 "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run_dir.name.startswith("binary_classify-")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["dataset"] == "smartwatch"
    baselines = metrics["baselines"]
    # The data's rule is not linear; the template must beat the linear baseline and be close to
    # the tree baseline (Bayes-optimal accuracy is 0.92, documented in datasets/smartwatch.py).
    assert metrics["test"]["accuracy"] > baselines["logistic_regression"]["accuracy"]
    assert metrics["test"]["accuracy"] >= baselines["hist_gradient_boosting"]["accuracy"] - 0.02
    assert list(metrics["exports"]) == list(DEFAULT_EXPORTS)
    assert all(result["passed"] for result in metrics["exports"].values())
    assert "done in" in result.stdout and str(run_dir.name) in result.stdout


@pytest.mark.slow
def test_breast_cancer_default_template_matches_logistic_regression(tmp_path):
    config = default_config()
    config.data.data = "breast_cancer"
    config.export.formats = []
    config.runtime.run_dir = str(tmp_path / "bc")
    metrics = pipeline.run(config).metrics
    logistic = metrics["baselines"]["logistic_regression"]["accuracy"]
    assert metrics["test"]["accuracy"] >= logistic - 0.01


@pytest.mark.slow
def test_regression_default_template_on_store_sales(tmp_path):
    from tasks.regression import default_config as regression_config

    config = regression_config()
    config.export.formats = ["tflite"]
    config.runtime.run_dir = str(tmp_path / "sales")
    metrics = pipeline.run(config).metrics
    baselines = metrics["baselines"]
    # The rule is multiplicative and non-linear: the template must beat ridge clearly and be
    # about as good as gradient boosting (noise floor RMSE ~64,000, datasets/store_sales.py).
    assert metrics["test"]["rmse"] < 0.8 * baselines["ridge"]["rmse"]
    assert metrics["test"]["rmse"] <= 1.1 * baselines["hist_gradient_boosting"]["rmse"]
    assert metrics["exports"]["tflite"]["max_scaled_diff"] <= 1e-4


@pytest.mark.slow
def test_multiclass_default_template_on_wine(tmp_path):
    from tasks.multiclass_classify import default_config as multiclass_config

    config = multiclass_config()
    config.export.formats = []
    config.runtime.run_dir = str(tmp_path / "wine")
    metrics = pipeline.run(config).metrics
    assert metrics["dataset"] == "wine"
    assert metrics["test"]["accuracy"] >= (
        metrics["baselines"]["logistic_regression"]["accuracy"] - 0.03)
