"""The char_lm network and estimator: perplexity against hand computations, the causal mask, sampling."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from honing.errors import HoningError, RecipeError
from honing.models.language_model import IGNORE, CharLanguageModel, CharVocabulary, sequence_loss, windows
from honing.recipe import TrainConfig
from honing.training.trainer import Trainer

TINY = {"block_size": 16, "d_model": 32, "heads": 2, "layers": 1, "dropout": 0.0}


def _model(text: str, **params) -> CharLanguageModel:
    torch.manual_seed(0)
    return CharLanguageModel(CharVocabulary.fit(text), {**TINY, **params})


def test_vocabulary_maps_unseen_characters_to_unk():
    vocab = CharVocabulary.fit("abca")
    assert vocab.chars == ["<unk>", "a", "b", "c"]
    assert vocab.encode("abz") == [1, 2, 0]
    assert vocab.unknown("abzz") == 2
    assert vocab.decode([1, 3]) == "ac"


def test_windows_predict_every_character_after_the_first_once():
    X, y = windows(list(range(1, 11)), 4)
    assert X.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 0, 0, 0]]
    assert y.tolist() == [[2, 3, 4, 5], [6, 7, 8, 9], [10, IGNORE, IGNORE, IGNORE]]


def test_a_uniform_model_has_the_vocabulary_size_as_perplexity():
    text = "the cat sat on the mat.\n" * 5
    model = _model(text)
    with torch.no_grad():
        model.module_.head.weight.zero_()
        model.module_.head.bias.zero_()
    assert model.perplexity(text) == pytest.approx(len(model.vocabulary), rel=1e-6)
    assert model.evaluate(text)["bits_per_char"] == pytest.approx(math.log2(len(model.vocabulary)), rel=1e-6)


def test_perplexity_equals_a_hand_computation_over_prefixes():
    """exp(mean −log p(next char)) computed one prefix at a time (each in its own forward pass)."""
    text = "abracadabra, said the cat to the bat\n"
    model = _model(text, block_size=8)
    ids = model.vocabulary.encode(text)
    logps = []
    with torch.no_grad():
        for i in range(1, len(ids)):
            start = (i - 1) // 8 * 8  # the window that predicts character i
            logits = model.module_(torch.tensor([ids[start:i]]))[0, -1]
            logps.append(float(torch.log_softmax(logits, -1)[ids[i]]))
    assert model.perplexity(text) == pytest.approx(math.exp(-sum(logps) / len(logps)), rel=1e-5)
    X, y = model.tensors(text)
    with torch.no_grad():
        assert math.exp(float(sequence_loss(model.module_(X), y))) == pytest.approx(model.perplexity(text), rel=1e-5)


def test_the_output_at_position_t_ignores_the_tokens_after_t():
    model = _model("abcdefgh")
    model.module_.eval()
    torch.manual_seed(1)
    x = torch.randint(0, len(model.vocabulary), (2, 16))
    changed = x.clone()
    changed[:, 9:] = (changed[:, 9:] + 1) % len(model.vocabulary)
    with torch.no_grad():
        a, b = model.module_(x), model.module_(changed)
    assert torch.allclose(a[:, :9], b[:, :9], atol=1e-5)
    assert not torch.allclose(a[:, 9:], b[:, 9:], atol=1e-3)


def _memorised() -> tuple[CharLanguageModel, str]:
    line = "honing learns to write this line.\n"
    model = _model(line, block_size=32, d_model=48, heads=4, layers=2)
    X, y = model.tensors(line * 40, stride=3)
    cfg = TrainConfig(epochs=40, batch_size=32, early_stopping=None, device="cpu",
                      optimizer={"name": "adamw", "lr": 3e-3})
    Trainer(model.module_, sequence_loss, cfg, seed=0).fit(X, y)
    return model, line


def test_greedy_decoding_is_deterministic_and_reproduces_a_memorised_line():
    model, line = _memorised()
    first = model.generate("honing ", len(line) - 7, top_k=1, seed=1)
    assert first == model.generate("honing ", len(line) - 7, top_k=1, seed=2)
    assert first == line
    assert model.perplexity(line * 3) < 1.5


def test_sampling_is_seeded_and_top_k_1_is_the_argmax():
    text = "the quick brown fox jumps over the lazy dog\n"
    model = _model(text)
    sampled = model.generate("the", 30, temperature=1.5, seed=7)
    assert sampled == model.generate("the", 30, temperature=1.5, seed=7)
    assert sampled.startswith("the") and len(sampled) == 33
    assert sampled != model.generate("the", 30, temperature=1.5, seed=8)
    for bad in (0.0, -1.0, float("nan"), float("inf")):  # from Python as from the CLI
        with pytest.raises(HoningError, match="finite number > 0"):
            model.generate("the", 3, temperature=bad)
    ids = model.vocabulary.encode("the")
    with torch.no_grad():
        best = int(torch.argmax(model.module_(torch.tensor([ids]))[0, -1]))
    assert model.generate("the", 1, temperature=0.3, top_k=1) == "the" + model.vocabulary.chars[best]
    # top-k: a character outside the k likeliest is never drawn
    with torch.no_grad():
        allowed = set(torch.topk(model.module_(torch.tensor([ids]))[0, -1], 2).indices.tolist())
    drawn = {model.vocabulary.encode(model.generate("the", 1, temperature=5.0, top_k=2, seed=s)[-1])[0]
             for s in range(30)}
    assert drawn <= allowed


def test_sampling_and_parameter_mistakes_are_one_line_errors():
    model = _model("abc")
    with pytest.raises(HoningError, match="--temperature must be a finite number > 0"):
        model.generate("a", 5, temperature=0)
    with pytest.raises(HoningError, match="--top-k must be >= 1"):
        model.generate("a", 5, top_k=0)
    with pytest.raises(RecipeError, match="model.params: char_lm has no parameter 'width'"):
        CharLanguageModel(CharVocabulary.fit("abc"), {"width": 3})
    with pytest.raises(RecipeError, match="model.params.d_model"):
        CharLanguageModel(CharVocabulary.fit("abc"), {"d_model": 30, "heads": 4})


def test_export_and_import_give_the_same_model():
    model = _model("some text to model\n")
    tensors, meta = model.export_state()
    again = CharLanguageModel.import_state(tensors, meta)
    assert again.vocabulary.chars == model.vocabulary.chars
    assert again.perplexity("some text") == pytest.approx(model.perplexity("some text"), rel=1e-6)
    assert F.mse_loss(again.module_.head.weight, model.module_.head.weight) == 0
