"""The used-vocabulary loss of a random-init student equals the full-vocabulary loss of the same model."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from transformers import Qwen2Config, Qwen2ForCausalLM

from oec.config import ConfigError, parse
from oec.sft.loss import masked_lm_loss_sum
from oec.sft.module import OptimConfig, SFTModule
from oec.sft.vocab import UsedVocab
from oec.student import StudentModel
from tests.sft_helpers import MICRO, loader, micro_model, quiet_trainer


def tied_micro_model(seed: int = 0) -> Qwen2ForCausalLM:
    torch.manual_seed(seed)
    config = Qwen2Config(**{**MICRO, "tie_word_embeddings": True}, attn_implementation="sdpa")
    return Qwen2ForCausalLM(config).float()


def batch_and_vocab(extra_targets: tuple[int, ...] = ()) -> tuple[dict[str, torch.Tensor], UsedVocab]:
    torch.manual_seed(1)
    ids = torch.randint(0, 500, (2, 40))
    mask = torch.rand(2, 40) < 0.5
    vocab = UsedVocab.of_sequences(ids.tolist(), MICRO["vocab_size"])
    for position, token in zip((5, 9), extra_targets, strict=False):
        ids[1, position], mask[1, position] = token, True
    return {"input_ids": ids, "loss_mask": mask, "attention_mask": torch.ones_like(ids)}, vocab


def full_vocab_loss(model, batch) -> torch.Tensor:
    ids, mask = batch["input_ids"], batch["loss_mask"]
    logits = model(input_ids=ids).logits[:, :-1][mask[:, 1:]]
    return F.cross_entropy(logits, ids[:, 1:][mask[:, 1:]], reduction="sum")


@pytest.mark.parametrize("make_model", [micro_model, tied_micro_model], ids=["untied", "tied"])
@pytest.mark.parametrize("chunk", [3, 1000])
def test_used_vocab_loss_equals_the_full_vocab_loss_in_value_and_gradient(make_model, chunk):
    batch, vocab = batch_and_vocab()
    model = make_model()
    vocab.zero_unused_rows(model)
    full_vocab_loss(model, batch).backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    loss, count = masked_lm_loss_sum(model, batch, chunk, vocab)
    loss.backward()
    torch.testing.assert_close(loss, full_vocab_loss(model, batch), rtol=1e-5, atol=1e-4)
    assert count == int(batch["loss_mask"][:, 1:].sum())
    unused = torch.ones(MICRO["vocab_size"], dtype=torch.bool)
    unused[vocab.ids] = False
    for name, param in model.named_parameters():
        if name.endswith(("embed_tokens.weight", "lm_head.weight")):
            # The full softmax pushes the unused rows down; the used-vocabulary loss never moves them.
            assert not param.grad[unused].any(), name
            torch.testing.assert_close(param.grad[~unused], expected[name][~unused], rtol=1e-4, atol=1e-5)
        else:
            torch.testing.assert_close(param.grad, expected[name], rtol=1e-4, atol=1e-5, msg=name)


def test_a_target_outside_the_used_ids_still_gets_its_exact_loss():
    batch, vocab = batch_and_vocab(extra_targets=(151_000, 151_679))
    model = micro_model()
    vocab.zero_unused_rows(model)
    with torch.no_grad():
        loss, _ = masked_lm_loss_sum(model, batch, 8, vocab)
        torch.testing.assert_close(loss, full_vocab_loss(model, batch), rtol=1e-5, atol=1e-4)


def test_unused_rows_stay_zero_through_training_and_the_model_keeps_its_full_vocabulary(examples, tokenizer):
    vocab = UsedVocab.of_sequences(
        (e.input_ids for e in examples), MICRO["vocab_size"], extra_ids=[tokenizer.pad_token_id]
    )
    module = SFTModule(
        tied_micro_model, OptimConfig(lr=1e-2, warmup_steps=0), loss_chunk_size=16, vocab=vocab
    )
    trainer = quiet_trainer(
        accelerator="cpu",
        max_steps=3,
    )
    before = tied_micro_model().get_input_embeddings().weight.detach().clone()
    trainer.fit(module, train_dataloaders=loader(examples, tokenizer, 2, 1, packing=False))
    weight = module.model.get_input_embeddings().weight.detach()
    assert weight.shape == (MICRO["vocab_size"], MICRO["hidden_size"])
    used = torch.zeros(MICRO["vocab_size"], dtype=torch.bool)
    used[vocab.ids] = True
    assert not weight[~used].any()
    assert not torch.equal(weight[used], before[used])
    assert "vocab" not in "".join(module.state_dict())


def test_the_data_vocabulary_is_refused_for_a_pretrained_model():
    with pytest.raises(ConfigError, match=r"^model\.vocab: 'data'"):
        parse(
            StudentModel,
            {"name_or_path": "/models/Qwen2.5-Coder-7B-Instruct", "tag": "7b", "vocab": "data"},
            "model",
        )


def test_ids_outside_the_vocabulary_are_refused():
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        UsedVocab([3, 12], vocab_size=10)
