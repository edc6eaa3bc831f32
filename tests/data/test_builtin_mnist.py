"""The bundled MNIST test set and the IDX reader."""

import gzip
import hashlib
from importlib.resources import files

import numpy as np
import pytest

from honing.data.builtin import load_builtin, read_idx
from honing.errors import DataError


def test_mnist_matches_its_provenance():
    data = load_builtin("mnist_test")
    assert data.frame.shape == (10000, 785) and data.target == "label"
    counts = data.frame["label"].value_counts().sort_index().tolist()
    assert counts == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]  # from SOURCE.md
    raw = gzip.decompress((files("honing.data") / "builtin" / "mnist_test-images-idx3-ubyte.gz").read_bytes())
    assert hashlib.sha256(raw).hexdigest() == "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"
    first = data.frame.iloc[0, :784].to_numpy().reshape(28, 28)
    assert first.max() == 255 and first[0].sum() == 0  # an image with a blank top row


def test_read_idx_rejects_bad_files():
    header = bytes([0, 0, 8, 1]) + (3).to_bytes(4, "big")
    assert read_idx(header + bytes([1, 2, 3])).tolist() == [1, 2, 3]
    with pytest.raises(DataError, match="truncated"):
        read_idx(header + bytes([1]))
    with pytest.raises(DataError, match="IDX"):
        read_idx(b"PK\x03\x04")
    assert np.array_equal(read_idx(bytes([0, 0, 8, 2]) + (1).to_bytes(4, "big") + (2).to_bytes(4, "big") + b"\x05\x06"),
                          np.array([[5, 6]]))
