"""``data.streaming``: a whole run on a Parquet / CSV file read in chunks — as good as the in-memory run,
the same run directory, a bundle like any other — and its memory staying flat as the rows grow."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

import honing
from conftest import assert_user_error
from honing.data.streaming import split_codes
from honing.train_flow import train

pytestmark = pytest.mark.slow

RECIPE = {"model": {"type": "mlp", "params": {"hidden": [32]}}, "train": {"epochs": 4, "batch_size": 256},
          "evaluate": {"explain": False, "bootstrap": 0}, "tracking": False}


def _table(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 6))
    city = rng.choice(["oslo", "rome", "lima", "pune"], rows)
    logit = 2 * X[:, 0] - X[:, 1] + 0.8 * X[:, 2] * X[:, 3] + 1.5 * (city == "rome") - 0.4
    label = np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), "yes", "no")
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(6)]).assign(city=city, label=label)
    frame.loc[rng.random(rows) < 0.05, "x4"] = np.nan
    return frame


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("streaming")
    frame = _table(50_000)
    frame.to_parquet(folder / "t.parquet", row_group_size=6000, index=False)
    frame.to_csv(folder / "t.csv", index=False)
    return frame, folder


def _recipe(source, **data) -> dict:
    return {**RECIPE, "data": {"source": str(source), "target": "label", **data}}


def test_a_streamed_run_scores_like_the_in_memory_run(files, tmp_path):
    frame, folder = files
    streamed = train(_recipe(folder / "t.parquet", streaming=True, workers=1), out=tmp_path / "s", track=False)
    memory = train(_recipe(folder / "t.parquet", streaming=False), out=tmp_path / "m", track=False)
    assert streamed.model == "mlp" and streamed.task == "classification"
    assert streamed.metrics["test"]["accuracy"] > memory.metrics["baseline"]["test"]["accuracy"] + 0.2
    assert abs(streamed.metrics["test"]["accuracy"] - memory.metrics["test"]["accuracy"]) < 0.02
    assert abs(streamed.metrics["test"]["roc_auc"] - memory.metrics["test"]["roc_auc"]) < 0.02
    rows = streamed.metrics["rows"]
    assert sum(rows.values()) == len(frame) and abs(rows["test"] / len(frame) - 0.15) < 0.01

    run = streamed.run_dir  # the same run directory as an in-memory run
    for name in ("recipe.yaml", "metrics.json", "schema.json", "audit.json", "history.csv", "leaderboard.csv",
                 "report.html", "plots/learning_curve.png", "plots/roc.png", "plots/confusion_matrix.png"):
        assert (run / name).is_file(), name
    assert "could not be drawn" not in (run / "report.html").read_text()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["streaming"]["train_rows_per_s"] > 0 and metrics["leaderboard"][0]["model"] == "mlp"
    assert len(pd.read_csv(run / "history.csv")) == 4

    # metrics.json's numbers are sklearn's on the bundle's own predictions of the test rows
    from sklearn.metrics import accuracy_score, roc_auc_score

    from honing.data.streaming import split_codes

    test = frame[split_codes(np.arange(len(frame), dtype=np.uint64), 42, 0.15, 0.15) == 2]
    bundle = honing.load(streamed.bundle_dir)
    assert accuracy_score(test["label"], bundle.predict(test)) == pytest.approx(metrics["test"]["accuracy"], abs=1e-9)
    proba = bundle.predict_proba(test)
    assert roc_auc_score(test["label"] == "yes", proba["yes"]) == pytest.approx(metrics["test"]["roc_auc"], abs=1e-9)


def test_a_streamed_bundle_predicts_a_parquet_file_in_chunks(files, tmp_path):
    from honing.serving.batch import predict_file
    from honing.serving.batch_read import open_source

    frame, folder = files
    run = train(_recipe(folder / "t.csv", streaming=True, workers=0, chunk_rows=5000), out=tmp_path / "c",
                track=False)  # a CSV file streams too
    assert run.metrics["test"]["accuracy"] > 0.7
    bundle = honing.load(run.bundle_dir)
    chunks = [len(rows) for rows, _ in open_source(bundle, folder / "t.parquet", [], 4000).chunks]
    assert max(chunks) <= 4000 and sum(chunks) == len(frame)  # read a row group at a time, in pieces
    assert predict_file(bundle, folder / "t.parquet", tmp_path / "p.parquet", chunk_rows=4000) == len(frame)
    out = pd.read_parquet(tmp_path / "p.parquet")
    assert out["prediction"].tolist() == list(bundle.predict(frame))
    np.testing.assert_allclose(out[["proba_no", "proba_yes"]].to_numpy(), bundle.predict_proba(frame).to_numpy(), atol=1e-6)


@pytest.mark.parametrize("streaming", [False, True])
def test_labels_and_codes_written_with_leading_zeros_keep_them(tmp_path, streaming):
    """Class labels 01 / 002 / 10 and zip codes stay text (as written) through training and prediction;
    a label written with spaces around it (' 01 ') is the same class."""
    from honing.serving.batch import predict_file

    rng = np.random.default_rng(0)
    x = rng.normal(size=600)
    frame = pd.DataFrame({"x": x, "zip": rng.choice(["02134", "00501", "94110"], 600),
                          "label": np.where(x < -0.5, "01", np.where(x < 0.5, "002", "10"))})
    spaced = frame.assign(label=[f" {v} " if i % 7 == 0 else v for i, v in enumerate(frame["label"])])
    spaced.to_csv(tmp_path / "z.csv", index=False)
    run = train({**RECIPE, "train": {"epochs": 40, "batch_size": 64},
                 "data": {"source": str(tmp_path / "z.csv"), "target": "label", "streaming": streaming}},
                out=tmp_path / "run", track=False)
    bundle = honing.load(run.bundle_dir)
    assert bundle.classes == ["002", "01", "10"]
    zip_column = next(c for c in bundle.features["columns"] if c["name"] == "zip")
    assert zip_column["kind"] == "categorical" and "00501" in zip_column["categories"]
    predict_file(bundle, tmp_path / "z.csv", tmp_path / "p.csv")
    written = pd.read_csv(tmp_path / "p.csv", dtype=str)
    assert set(written["prediction"]) == {"01", "002", "10"} and list(written.columns)[1:] == [
        "proba_002", "proba_01", "proba_10"]
    assert (written["prediction"] == frame["label"]).mean() > 0.8


def test_a_streamed_regression_run(tmp_path):
    rng = np.random.default_rng(1)
    n = 20_000
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "g": rng.choice(["u", "v"], n),
                          "day": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D")})
    frame["y"] = 3 * frame.a - 2 * frame.b + 4 * (frame.g == "u") + rng.normal(0, 0.3, n) + 50
    frame.to_parquet(tmp_path / "r.parquet", row_group_size=3000, index=False)
    run = train({**RECIPE, "data": {"source": str(tmp_path / "r.parquet"), "target": "y", "streaming": True,
                                    "workers": 0}}, out=tmp_path / "r", track=False)
    assert run.task == "regression" and run.metrics["test"]["r2"] > 0.95
    assert (run.run_dir / "plots" / "residuals.png").is_file()
    bundle = honing.load(run.bundle_dir)
    assert np.corrcoef(bundle.predict(frame.head(500)), frame.y.head(500))[0, 1] > 0.97


def test_a_streamed_sequence_model_reads_token_ids(tmp_path):
    """data.text: tokens streams: the vocabulary comes from the row sample, the lstm's embedding is
    sized by it, and it learns a word-order task (negation) a bag of words cannot."""
    rng = np.random.default_rng(2)
    n = 6000
    nouns, fillers = np.array(["film", "plot", "cast", "score"]), np.array(["the", "a", "this", "was", "so"])
    good, negated = rng.random(n) < 0.5, rng.random(n) < 0.5
    words = [" ".join([*rng.choice(fillers, rng.integers(0, 3)), rng.choice(nouns), *(["not"] if neg else []),
                       "good" if g else "bad", *rng.choice(fillers, rng.integers(0, 3))])
             for g, neg in zip(good, negated)]
    frame = pd.DataFrame({"review": words, "liked": np.where(good != negated, "yes", "no")})
    frame.to_parquet(tmp_path / "t.parquet", row_group_size=1000, index=False)
    run = train({**RECIPE, "model": {"type": "lstm", "params": {"hidden": 32}}, "train": {"epochs": 6, "batch_size": 64},
                 "data": {"source": str(tmp_path / "t.parquet"), "target": "liked", "text": "tokens",
                          "types": {"review": "text"}, "max_tokens": 12, "streaming": True, "workers": 1}}, out=tmp_path / "r", track=False)
    assert run.metrics["test"]["accuracy"] > 0.95, run.metrics["test"]
    bundle = honing.load(run.bundle_dir)
    assert bundle.model.net_params_["vocab_size"] == 4 + 5 + 3 + 2  # every word, padding and unknown
    reviews = pd.DataFrame({"review": ["the film was not good", "a plot so bad", "the cast was not bad zzz"]})
    assert list(bundle.predict(reviews)) == ["no", "no", "yes"]  # an unseen word is the unknown id


def test_a_streamed_run_augments_its_training_text(tmp_path):
    rng = np.random.default_rng(4)
    n = 3000
    liked = rng.random(n) < 0.5
    words = [" ".join(["the", "film", "was", "so", "good" if g else "bad", *rng.choice(["today", "here"], 1)])
             for g in liked]
    frame = pd.DataFrame({"review": words, "liked": np.where(liked, "yes", "no")})
    frame.to_parquet(tmp_path / "t.parquet", row_group_size=500, index=False)
    run = train({**RECIPE, "data": {"source": str(tmp_path / "t.parquet"), "target": "liked", "streaming": True,
                                    "workers": 0, "types": {"review": "text"},
                                    "augment": [{"name": "text", "synonyms": 0.5, "deletion": 0.0, "copies": 2}]}},
                out=tmp_path / "r", track=False)
    assert run.metrics["streaming"]["train_rows_per_epoch"] == 3 * run.metrics["rows"]["train"]
    assert any("rewrites of its text" in note for note in run.notes)
    assert run.metrics["test"]["accuracy"] > 0.95  # the test rows are the originals (never augmented)
    bundle = honing.load(run.bundle_dir)  # synonyms (good: decent; bad: lousy) only the copies hold are known
    assert list(bundle.predict(pd.DataFrame({"review": ["the film was so decent", "the film was so lousy"]}))) == \
        ["yes", "no"]


def test_tuning_a_streamed_table_searches_a_sample_and_trains_the_best_on_every_row(files, tmp_path, monkeypatch):
    """honing tune on a streamed recipe: the trials read a uniform sample (its rows in the splits streaming
    gives them), best.yaml still names the whole file, and best/ is a streamed run on every row."""
    import yaml

    from honing.data import stream_stats
    from honing.data.streaming import split_codes
    from honing.tune_flow import tune

    frame, folder = files
    monkeypatch.setattr(stream_stats, "SAMPLE_ROWS", 4000)  # a smaller sample than the 20,000 rows, for speed
    seen = []
    import honing.tune_flow as flow

    real = flow.load_data
    monkeypatch.setattr(flow, "load_data", lambda recipe, progress: seen.append(real(recipe, progress)) or seen[-1])
    recipe = {**_recipe(folder / "t.parquet", streaming=True, workers=0),
              "tune": {"trials": 2, "space": {"train.optimizer.lr": {"float": [1e-3, 1e-2], "log": True}}}}
    result = tune(recipe, out=tmp_path / "tuned")
    (sample,) = seen
    rows = sum(len(part) for part in sample.splits.values())
    assert rows == 4000
    codes = split_codes(np.arange(len(frame), dtype=np.uint64), 42, 0.15, 0.15)
    assert len(sample.splits["test"]) == pytest.approx(0.15 * rows, rel=0.2)
    assert abs(len(sample.splits["test"]) / rows - (codes == 2).mean()) < 0.03
    best = yaml.safe_load((tmp_path / "tuned" / "best.yaml").read_text())
    assert best["data"]["source"] == str(folder / "t.parquet") and best["data"]["streaming"] is True
    assert "lr" in best["train"]["optimizer"]
    trained = result.trained.metrics
    assert "streaming" in trained and sum(trained["rows"].values()) == len(frame)  # every row, streamed
    assert not list((tmp_path / "tuned").rglob("tuning-sample.parquet"))

    # what the statistics show the best recipe cannot do is refused before any trial
    from honing.errors import RecipeError

    clash = {**recipe, "audit": {"sensitive": ["city"], "mitigate": "threshold"},
             "evaluate": {"explain": False, "threshold": "f1"}, "tune": {**recipe["tune"], "refit": False}}
    monkeypatch.setattr(flow, "load_data", lambda *a: pytest.fail("a trial ran"))
    with pytest.raises(RecipeError, match="audit.mitigate: threshold sets its own decision thresholds"):
        tune(clash, out=tmp_path / "clash")


def test_a_streamed_run_calibrates_and_thresholds_on_its_validation_rows(files, tmp_path):
    """evaluate.calibrate and evaluate.threshold on a streamed table: fitted on the held validation
    probabilities (no second pass), saved in the bundle, and metrics.json's test scores are
    scikit-learn's on that bundle's own predictions."""
    from sklearn.metrics import accuracy_score, roc_auc_score

    from honing.data.streaming import split_codes

    frame, folder = files
    recipe = {**_recipe(folder / "t.parquet", streaming=True, workers=0),
              "evaluate": {"explain": False, "bootstrap": 0, "calibrate": "isotonic", "threshold": "f1"}}
    run = train(recipe, out=tmp_path / "s", track=False)
    metrics = run.metrics
    assert metrics["calibration"]["method"] == "isotonic" and 0 < metrics["decision"]["threshold"] < 1
    assert (run.bundle_dir / "calibrator.skops").is_file() and (run.run_dir / "plots" / "threshold.png").is_file()
    bundle = honing.load(run.bundle_dir)
    assert bundle.calibrator is not None and bundle.decision["method"] == "f1"
    test = frame[split_codes(np.arange(len(frame), dtype=np.uint64), 42, 0.15, 0.15) == 2]
    predicted = bundle.predict(test)
    assert accuracy_score(test["label"], predicted) == pytest.approx(metrics["test"]["accuracy"], abs=1e-9)
    proba = bundle.predict_proba(test)["yes"]
    assert roc_auc_score(test["label"] == "yes", proba) == pytest.approx(metrics["test"]["roc_auc"], abs=1e-9)
    assert (predicted == np.where(proba >= metrics["decision"]["threshold"], "yes", "no")).all()


def test_data_parallel_ranks_stream_their_own_share(files, tmp_path, cli):
    """train.processes: 2 — each torchrun rank reads its own shard of the training rows."""
    _, folder = files
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"data: {{source: {folder / 't.parquet'}, target: label, streaming: true}}\n"
                      "model: {type: mlp, params: {hidden: [32]}}\ntrain: {epochs: 2, processes: 2}\ntracking: false\n")
    result = cli("--quiet", "train", recipe, "--out", tmp_path / "ddp")
    assert result.code == 0, result.err
    metrics = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] > metrics["baseline"]["test"]["accuracy"] + 0.2
    assert len(pd.read_csv(tmp_path / "ddp" / "history.csv")) == 2


def test_a_streamed_run_reduces_its_columns_with_a_pca(tmp_path):
    frame = _table(8000, seed=3)
    frame.to_parquet(tmp_path / "t.parquet", row_group_size=1000, index=False)
    run = train(_recipe(tmp_path / "t.parquet", streaming=True, workers=0, reduce={"pca": 5}), out=tmp_path / "r",
                track=False)
    bundle = honing.load(run.bundle_dir)
    assert bundle.preprocessor.named_steps["reduce"].n_components_ == 5
    assert bundle.transform(frame.head(3)).shape == (3, 5)  # the model reads the 5 components
    assert run.metrics["test"]["accuracy"] > run.metrics["baseline"]["test"]["accuracy"] + 0.1
    from sklearn.metrics import accuracy_score

    from honing.data.streaming import split_codes

    test = frame[split_codes(np.arange(len(frame), dtype=np.uint64), 42, 0.15, 0.15) == 2]
    assert accuracy_score(test["label"], bundle.predict(test)) == pytest.approx(run.metrics["test"]["accuracy"])


def test_a_non_neural_model_type_is_refused(files, tmp_path, cli):
    _, folder = files
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"data: {{source: {folder / 't.parquet'}, target: label, streaming: true}}\ntracking: false\n")
    assert_user_error(cli("train", recipe, "--out", tmp_path / "r", "--set", "model.type=random_forest"),
                      "model.type", "random_forest", "data.streaming")
    assert_user_error(cli("train", recipe, "--out", tmp_path / "r"), "model.type", "auto")
    assert_user_error(cli("train", recipe, "--out", tmp_path / "r", "--set", "model.type=mlp",
                          "--set", "data.split.group=city"), "data.split.group")
    assert_user_error(cli("train", recipe, "--out", tmp_path / "r", "--set", "model.type=mlp",
                          "--set", "evaluate.cv={folds: 3}"), "evaluate.cv", "data.streaming")
    assert not (tmp_path / "r").exists()


def test_streamed_data_mistakes_are_one_line_errors(files, tmp_path, cli):
    """Read options, a regression target that is not a number past the rows the schema is inferred on,
    and a file too small to leave a validation row: each refused before training."""
    frame, _ = files
    reg = _table(52_000).astype({"x5": object})
    reg.loc[51_000, "x5"] = "bad"
    reg.to_csv(tmp_path / "reg.csv", index=False)
    frame.head(6).to_csv(tmp_path / "tiny.csv", index=False)
    seed = next(s for s in range(1000) if not split_codes(np.arange(6, dtype=np.uint64), s, 0.15, 0.15).any())
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"data: {{source: {tmp_path / 'reg.csv'}, target: x5, streaming: true, chunk_rows: 10000}}\n"
                      "model: {type: mlp}\ntracking: false\n")
    run = ("train", recipe, "--out", tmp_path / "r", "--set")
    assert_user_error(cli(*run, "data.read.encoding=bogus"), "data.read.encoding", "bogus")
    assert_user_error(cli(*run, "data.read.delimiter=ab"), "data.read.delimiter", "'ab'")
    assert_user_error(cli(*run, "data.task=regression"), "target 'x5'", "'bad'", "row 51000")
    assert_user_error(cli(*run, f"data.source={tmp_path / 'tiny.csv'}", "--set", "data.target=label", "--set",
                          f"seed={seed}"), "tiny.csv", "6 rows", "data.split.validation")
    assert not (tmp_path / "r").exists()


_CHILD = textwrap.dedent("""
    import json, resource, sys
    import numpy as np, pyarrow as pa, pyarrow.parquet as pq
    rows, path, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    rng = np.random.default_rng(0)
    with pq.ParquetWriter(path, pa.schema([*(pa.field(f"x{i}", pa.float64()) for i in range(48)),
                                           pa.field("c", pa.string()), pa.field("label", pa.string())])) as writer:
        for start in range(0, rows, 50_000):
            n = min(50_000, rows - start)
            X = rng.normal(size=(n, 48))
            label = np.where(X[:, 0] + rng.normal(size=n) > 0, "yes", "no")
            arrays = {f"x{i}": X[:, i] for i in range(48)}
            writer.write_table(pa.table({**arrays, "c": rng.choice(["a", "b", "c"], n), "label": label}))
    from honing.train_flow import train
    train({"data": {"source": path, "target": "label", "streaming": True, "workers": 1, "shuffle_buffer": 10_000},
           "model": {"type": "mlp", "params": {"hidden": [32]}}, "train": {"epochs": 1, "batch_size": 1024},
           "tracking": False}, out=out, track=False)
    print(json.dumps([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss]))
""")


def test_peak_memory_does_not_grow_with_the_rows(tmp_path):
    """600k and 60k rows × 50 columns, each trained in a fresh process: the larger run's peak resident
    memory (the training process or its reader, whichever is larger) is within 1.3× of the smaller's,
    and under 1.5 GB, while its data alone would take 229 MiB in memory."""
    peaks = {}
    for rows in (60_000, 600_000):
        done = subprocess.run([sys.executable, "-c", _CHILD, str(rows), str(tmp_path / f"{rows}.parquet"),
                               str(tmp_path / f"run{rows}")], capture_output=True, text=True, timeout=300,
                              check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        peaks[rows] = max(json.loads(done.stdout.strip().splitlines()[-1])) / 1024  # KiB → MiB
    assert peaks[600_000] <= 1.3 * peaks[60_000], peaks
    assert peaks[600_000] < 1500, peaks
