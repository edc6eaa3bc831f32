"""Builtin datasets, used as ``data.source: builtin:NAME`` (no download needed).

Four CSVs, a gzipped CSV (SST-2) and MNIST's test set (gzipped IDX files) ship inside the package
(``honing/data/builtin/``, provenance in ``NAME.SOURCE.md``); four more come from
:mod:`sklearn.datasets`, which bundles them.

=====================  ======================  ==============  ======================================
name                   target                  task            notes
=====================  ======================  ==============  ======================================
titanic                Survived (0/1)          classification  Kaggle train.csv, 891 rows
wine_quality           quality (3..8)          regression      UCI red wine, 1,599 rows
california_housing     median_house_value      regression      20,640 rows, 207 blanks, categorical
breast_cancer          target (malignant /     classification  sklearn's 0/1 labels replaced by the
                       benign)                                 class names
iris                   species (setosa, …)     classification  sklearn's 0/1/2 labels replaced by the
                                                               species names
digits                 target (0..9)           classification  8x8 images as 64 pixel columns
diabetes               target                  regression      sklearn's scaled features
mnist_test             label (0..9)            classification  the official MNIST test set: 10,000
                                                               28x28 images as 784 pixel columns
pima_diabetes          outcome (0/1)           classification  768 rows, 35% positive (imbalanced);
                                                               zeros mean missing in 5 columns
sst2                   label (negative /       classification  SST-2 sentiment, text: 20,000 train
                       positive)                               phrases + the 872 official test
                                                               sentences; ``split`` says which
                                                               (never a feature; use it with
                                                               ``data.split.column: split``)
=====================  ======================  ==============  ======================================

Every call to :func:`load_builtin` returns a fresh copy of the frame.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files

import numpy as np
import pandas as pd

from honing.errors import DataError
from honing.registry import Registry


@dataclass
class Builtin:
    """A bundled dataset with its default target and task."""

    name: str
    frame: pd.DataFrame
    target: str
    task: str
    description: str
    source: str
    #: Column kinds that inference would get wrong (pixels are numbers even when only 0/1 occur).
    types: dict[str, str] = field(default_factory=dict)


BUILTINS = Registry("builtin dataset", DataError)


def load_builtin(name: str) -> Builtin:
    """The builtin dataset ``name``; an unknown name raises DataError with a did-you-mean."""
    loader: Callable[[], Builtin] = BUILTINS.get(name, key="data.source")
    dataset = loader()
    dataset.frame = dataset.frame.copy()
    return dataset


def builtin_names() -> list[str]:
    """Names of every builtin dataset, in registration order."""
    return BUILTINS.names()


@cache
def _package_csv(filename: str) -> pd.DataFrame:
    """A CSV (``.csv`` or ``.csv.gz``) shipped in ``honing/data/builtin/`` (read once, copied by
    :func:`load_builtin`)."""
    resource = files("honing.data") / "builtin" / filename
    with resource.open("rb") as fh:
        return pd.read_csv(fh, compression="gzip" if filename.endswith(".gz") else None)


@cache
def _sklearn_frame(loader_name: str) -> tuple[pd.DataFrame, list[str]]:
    """``sklearn.datasets.<loader_name>(as_frame=True)``: its frame and target names."""
    from sklearn import datasets

    bunch = getattr(datasets, loader_name)(as_frame=True)
    names = [str(n) for n in getattr(bunch, "target_names", [])]
    return bunch.frame, names


def _named_labels(loader_name: str, column: str) -> pd.DataFrame:
    """A sklearn frame whose integer ``target`` is replaced by the class names in ``column``."""
    frame, names = _sklearn_frame(loader_name)
    out = frame.drop(columns="target")
    out[column] = pd.Series(names, dtype="str").take(frame["target"].to_numpy()).to_numpy()
    return out


@BUILTINS.register("titanic", task="classification")
def _titanic() -> Builtin:
    """The Kaggle Titanic training set."""
    return Builtin(
        "titanic",
        _package_csv("titanic.csv"),
        target="Survived",
        task="classification",
        description="Titanic passengers (891 rows): who survived, from class, sex, age, fare, …",
        source="Kaggle 'Titanic: Machine Learning from Disaster' train.csv (via datasciencedojo/datasets)",
    )


@BUILTINS.register("wine_quality", task="regression")
def _wine_quality() -> Builtin:
    """UCI red wine quality."""
    return Builtin(
        "wine_quality",
        _package_csv("wine_quality.csv"),
        target="quality",
        task="regression",
        description="Red Vinho Verde wines (1,599 rows): quality score 3-8 from 11 lab measurements.",
        source="UCI Wine Quality (Cortez et al. 2009), CC BY 4.0, via jbrownlee/Datasets",
    )


@BUILTINS.register("california_housing", task="regression")
def _california_housing() -> Builtin:
    """California housing (Hands-On ML variant)."""
    return Builtin(
        "california_housing",
        _package_csv("california_housing.csv"),
        target="median_house_value",
        task="regression",
        description="California census block groups (20,640 rows): median house value; "
        "has missing total_bedrooms and a categorical ocean_proximity.",
        source="StatLib (Pace & Barry 1997), Hands-On ML variant via ageron/data",
    )


@BUILTINS.register("breast_cancer", task="classification")
def _breast_cancer() -> Builtin:
    """Wisconsin breast cancer, labels as class names."""
    return Builtin(
        "breast_cancer",
        _named_labels("load_breast_cancer", "target"),
        target="target",
        task="classification",
        description="Wisconsin diagnostic breast cancer (569 rows): malignant or benign from 30 cell measurements.",
        source="UCI Breast Cancer Wisconsin (Diagnostic), bundled with scikit-learn",
    )


@BUILTINS.register("iris", task="classification")
def _iris() -> Builtin:
    """Iris, labels as species names."""
    return Builtin(
        "iris",
        _named_labels("load_iris", "species"),
        target="species",
        task="classification",
        description="Fisher's iris flowers (150 rows): species from sepal and petal sizes.",
        source="Fisher (1936) iris data, bundled with scikit-learn",
    )


@BUILTINS.register("digits", task="classification")
def _digits() -> Builtin:
    """8x8 handwritten digits."""
    frame = _sklearn_frame("load_digits")[0]
    return Builtin(
        "digits",
        frame,
        types={c: "numeric" for c in frame.columns if c != "target"},
        target="target",
        task="classification",
        description="Handwritten digits (1,797 rows): the digit 0-9 from 8x8 pixel intensities.",
        source="UCI Optical Recognition of Handwritten Digits (test set), bundled with scikit-learn",
    )


@BUILTINS.register("diabetes", task="regression")
def _diabetes() -> Builtin:
    """Diabetes progression."""
    return Builtin(
        "diabetes",
        _sklearn_frame("load_diabetes")[0],
        target="target",
        task="regression",
        description="Diabetes patients (442 rows): disease progression after one year from 10 baseline variables.",
        source="Efron et al. (2004) 'Least Angle Regression' diabetes data, bundled with scikit-learn",
    )


def read_idx(raw: bytes) -> np.ndarray:
    """An IDX array (the MNIST file format): magic (0, 0, dtype code, ndim), big-endian sizes, data."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError("not an unsigned-byte IDX file", "MNIST-style .idx files start with 0x0000 08")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise DataError(f"IDX file holds {data.size} values, its header says {shape}", "the file is truncated")
    return data.reshape(shape)


@cache
def _mnist_test() -> pd.DataFrame:
    folder = files("honing.data") / "builtin"
    images = read_idx(gzip.decompress((folder / "mnist_test-images-idx3-ubyte.gz").read_bytes()))
    labels = read_idx(gzip.decompress((folder / "mnist_test-labels-idx1-ubyte.gz").read_bytes()))
    pixels = images.reshape(len(images), -1)
    frame = pd.DataFrame(pixels, columns=[f"px{i}" for i in range(pixels.shape[1])])
    frame["label"] = labels.astype(np.int64)
    return frame


@BUILTINS.register("mnist_test", task="classification")
def _mnist() -> Builtin:
    """The MNIST test set (28x28 images as 784 pixel columns px0..px783, row by row)."""
    frame = _mnist_test()
    return Builtin(
        "mnist_test",
        frame,
        types={c: "numeric" for c in frame.columns if c != "label"},
        target="label",
        task="classification",
        description="MNIST handwritten digits, official test set (10,000 rows): the digit from 28x28 pixels.",
        source="LeCun, Cortes & Burges, MNIST database (t10k files), via RahulBaboota/MNIST",
    )


@BUILTINS.register("pima_diabetes", task="classification")
def _pima_diabetes() -> Builtin:
    """Pima Indians diabetes (zeros stand for missing values in five columns)."""
    return Builtin(
        "pima_diabetes",
        _package_csv("pima_diabetes.csv"),
        target="outcome",
        task="classification",
        description="Pima Indian women (768 rows): diabetes within five years (outcome 1, 35% of rows) from "
        "8 clinical measurements. Imbalanced (500 / 268). Zeros in glucose, blood_pressure, "
        "skin_thickness, insulin and bmi stand for missing values (kept as 0).",
        source="NIDDK via the former UCI repository (Smith et al. 1988), via jbrownlee/Datasets",
    )


@BUILTINS.register("sst2", task="classification")
def _sst2() -> Builtin:
    """SST-2 sentiment: a seeded 20,000-phrase training sample and the official 872-sentence test set."""
    return Builtin(
        "sst2",
        _package_csv("sst2.csv.gz"),
        # ``split`` (train / test) marks the official test set; as an identifier it is never a feature.
        types={"sentence": "text", "split": "identifier"},
        target="label",
        task="classification",
        description="Stanford Sentiment Treebank, binary (20,872 rows): negative or positive from a movie-review "
        "sentence. split = 'train' (20,000 phrases sampled with seed 0) or 'test' (the 872 GLUE dev sentences); "
        "use data.split.column: split to keep that official test set.",
        source="Socher et al. (2013) SST-2, GLUE version, via forest-snow/alps",
    )
