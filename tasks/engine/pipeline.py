"""`run(config)`: one task run, step by step; each step is one named call into its module.

load and validate -> split -> adapt preprocessing on train -> build and compile in the strategy
scope -> fit with the standard callbacks -> score on validation and test with scikit-learn ->
baselines on the same split -> export with a parity gate -> report.

Everything is written to a staging folder next to the run directory and moved into place only
when the run succeeds (`staging.staged_directory`), so a failed run never overwrites an earlier
good one. docs/architecture.md maps each step to its module.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import keras

from datasets.registry import load_configured
from tasks.config import TaskConfig
from tasks.engine import (
    distribute,
    export,
    fingerprints,
    inference,
    latency,
    metrics,
    parity,
    plots,
    presets,
    report,
    resume,
    roles,
    run_card,
    run_guard,
    search,
    staging,
    state_files,
    tuning,
)
from tasks.engine.fitting import fit_default
from tasks.engine.inputs import ImageInputs, TableInputs, inputs_for
from tasks.engine.outcomes import ExportOutcome, PreparedData, RunOutcome, Scores, Training
from tasks.engine.preflight import preflight


def run(config: TaskConfig, splits: Any = None) -> RunOutcome:
    """Trains, evaluates, exports and reports one task run (the Python API is `tasks.run`).

    Args:
        config: The resolved configuration; with `config.tune.enabled` the network is the best
            configuration of a search on the validation split, refit on train + validation.
        splits: The data, if already loaded with `datasets.registry.load_configured`.

    Returns:
        The run directory, metrics, model and history (a cluster's non-chief task and a
        search's worker write no run: empty metrics).

    Raises:
        InputError: Bad data or settings (before anything is written).
        export.ExportError: An artifact failed to convert or disagrees with the Keras model.
    """
    started = time.perf_counter()
    space = preflight(config)
    keras.utils.set_random_seed(config.runtime.seed)
    inputs = load_inputs(config, splits)
    strategy = distribute.get_strategy(config.runtime.strategy, search=space is not None)
    distribution = roles.describe_distribution(config, strategy)
    final_dir = Path(config.runtime.run_dir or staging.default_run_dir(config.task))
    if space is not None and tuning.role() == "worker":
        search.run_trials_as_worker(config, space, inputs, strategy)
        return RunOutcome(final_dir, {})
    staging.check_run_dir(final_dir)
    data_hashes = fingerprints.data_hashes(config)  # once: resume checks and the run card
    if not distribute.is_chief(strategy):
        roles.train_as_cluster_worker(config, inputs, strategy, final_dir, data_hashes)
        return RunOutcome(final_dir, {})
    carry, expected = resumable_state(config, space, final_dir, data_hashes)
    with (distribute.leave_cluster(strategy), run_guard.guard(final_dir),
          staging.staged_directory(final_dir, carry) as run_dir):
        report.write_json(run_dir / "config.json", config.to_dict())
        if space is None:
            training = fit_default(config, inputs, strategy, run_dir, data_hashes)
        else:
            training = search.search_and_refit(config, space, expected, inputs, strategy, run_dir)
        model = training.data.compose(training.fit.network)
        scores = score(config, inputs, model, training)
        exported = export_model(config, inputs, training.data, model, run_dir)
        document = metrics.metrics_document(config, inputs, training, scores, exported,
                                            distribution, strategy, started)
        write_run_files(run_dir, config, inputs, training, scores, exported, document,
                        data_hashes)
        warnings = parity.check_parity(exported.artifacts, config.export.parity_tolerance)
    for line in warnings:
        print(line, flush=True)
    metrics.print_summary(document, presets.get_preset(config.problem).headline, final_dir)
    return RunOutcome(final_dir, document, model, training.fit.history)


def load_inputs(config: TaskConfig, splits: Any = None) -> TableInputs | ImageInputs:
    """Loads and splits the data (unless given), wraps it for the engine, prints what it is."""
    splits = splits or load_configured(config.data, config.problem, config.runtime.seed,
                                       config.inputs)
    inputs = inputs_for(splits, config.inputs, config.data.max_categories)
    print(inputs.describe(), flush=True)
    return inputs


def resumable_state(config: TaskConfig, space: tuning.Space | None, final_dir: Path,
                    data_hashes: dict[str, Any]) -> tuple[tuple[str, ...], dict[str, Any] | None]:
    """What an earlier, stopped run of `final_dir` left to resume, checked before any writing.

    Returns:
        The folders the new stage starts with (a fit's backup, or the search's tuner state),
        and the search's fingerprint (None without a search).

    Raises:
        InputError: A damaged backup, or a tuner state of another search.
    """
    if space is None:
        state_files.check_backup(staging.newest_state(final_dir, resume.BACKUP_DIR))
        return (resume.BACKUP_DIR,), None
    expected = tuning.fingerprint(config, space, data_hashes)
    if config.tune.overwrite:
        return (), expected
    tuning.check_resume(staging.newest_state(final_dir, search.TUNER_DIR), expected, config,
                        space)
    return (search.TUNER_DIR,), expected


def score(config: TaskConfig, inputs: TableInputs | ImageInputs, model: keras.Model,
          training: Training) -> Scores:
    """The model's scores on validation and test, and the baselines', all with scikit-learn.

    A tuned network was refit on the validation rows: its validation scores are the best
    trial's, from the search, and the baselines learn from the same train + validation rows.
    """
    preset = presets.get_preset(config.problem)
    names = ("test",) if training.search else ("validation", "test")
    outputs = {name: inference.keras_outputs(model, inputs.features[name]) for name in names}
    scores = {name: preset.score(inputs.ids[name], outputs[name]) for name in names}
    return Scores(
        test=scores["test"],
        validation=(training.search.best.validation if training.search
                    else scores["validation"]),
        test_output=outputs["test"],
        baselines=inputs.baselines(preset, config.runtime.seed,
                                   with_validation=training.search is not None))


def export_model(config: TaskConfig, inputs: TableInputs | ImageInputs, data: PreparedData,
                 model: keras.Model, run_dir: Path) -> ExportOutcome:
    """Writes every requested artifact, each judged against `model` on the test rows."""
    started = time.perf_counter()
    preset = presets.get_preset(config.problem)
    test_ids, test_features = inputs.ids["test"], inputs.features["test"]
    artifacts = export.export_all(model, export.ExportInputs(
        held_out=test_features, calibration=inputs.features["train"],
        client_schema=data.preprocessor.client_schema(),
        float_layers=data.preprocessor.float_layers, scale=data.target_std,
        score=lambda output: preset.score(test_ids, output)[preset.headline],
        predicted=preset.predicted_ids if preset.classifies else None,
        higher_is_better=preset.higher_is_better, relative_drop=not preset.classifies),
        run_dir, config.export)
    reference = (latency.keras_reference(model, test_features)
                 if artifacts and config.export.latency else {})
    return ExportOutcome(artifacts, reference, time.perf_counter() - started)


def write_run_files(run_dir: Path, config: TaskConfig, inputs: TableInputs | ImageInputs,
                    training: Training, scores: Scores, exported: ExportOutcome,
                    document: dict[str, Any], data_hashes: dict[str, Any]) -> None:
    """Plots, metrics.json, report.md, schema.json and the run card."""
    preset = presets.get_preset(config.problem)
    drawn = plots.draw_run_plots(run_dir, training.fit.history, preset, inputs.ids["test"],
                                 scores.test_output, inputs)
    if training.search and training.search.plot:
        drawn.append(training.search.plot)
    report.write_json(run_dir / "metrics.json", document)
    report.write_report(run_dir / "report.md", document, config.to_dict(),
                        metrics.report_summary(config, inputs, training), drawn)
    report.write_json(run_dir / "schema.json", inputs.schema.to_dict())
    report.write_json(run_dir / "run_card.json", run_card.build_run_card(
        config.to_dict(), data_hashes, run_dir, exported.artifacts, config.export))

