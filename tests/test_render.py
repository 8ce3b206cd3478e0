"""Golden tests of SFT rendering with the real Qwen2.5 tokenizer: ids, loss masks, refusals, truncation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from oec.data import show
from oec.data.render import END_OF_TURN, RenderError, render, render_many
from oec.store import TrajectoryStore
from oec.types import Message, Trajectory

SYSTEM = "You are a software engineer. Call exactly one tool per reply."
STUDENT_1 = "Let me look around.\n\n<function=bash>\n<parameter=command>\nls\n</parameter>\n</function>"
STUDENT_2 = "<function=bash>\n<parameter=command>\ncat slug.py\n</parameter>\n</function>"
EXPERT_1 = (
    "The bug is in `slugify`: it keeps trailing dashes.\n\n<function=str_replace_editor>\n"
    "<parameter=command>\nstr_replace\n</parameter>\n<parameter=path>\ntextkit/slug.py\n</parameter>\n"
    "<parameter=old_str>\nreturn s\n</parameter>\n<parameter=new_str>\nreturn s.strip('-')\n</parameter>\n"
    "</function>"
)
EXPERT_2 = "Done; ünïcode ✓ and 中文 survive.\n\n<function=submit>\n</function>"


def _trajectory(messages: list[Message], mode: str = "oec") -> Trajectory:
    return Trajectory(
        instance_id="textkit__slug-1",
        sample_index=3,
        mode=mode,
        seed=0,
        messages=messages,
        models={"student": "tiny", "expert": "scripted"},
        exit_status="submitted",
        patch="",
        switch_step=2,
        handover_turn=2,
        accepted=True,
    )


def oec_trajectory() -> Trajectory:
    return _trajectory(
        [
            Message("system", SYSTEM, "system", -1),
            Message("user", "Fix slugify: 'a b-' gives 'a-b-'.", "user", -1),
            Message("assistant", STUDENT_1, "student", 0),
            Message("user", "slug.py\ntests\n", "env", 0, "observation"),
            Message("assistant", STUDENT_2, "student", 1),
            Message("user", "def slugify(s):\n    return s\n", "env", 1, "observation"),
            Message("assistant", EXPERT_1, "expert", 2),
            Message("user", "The file textkit/slug.py has been edited.", "env", 2, "observation"),
            Message("assistant", EXPERT_2, "expert", 3),
        ]
    )


def supervised_text(example, tokenizer) -> list[str]:
    return [
        tokenizer.decode(example.input_ids[s.start : s.end].tolist(), skip_special_tokens=False)
        for s in example.spans
        if s.supervised
    ]


@pytest.mark.parametrize(
    ("mask", "expected"),
    [
        ("expert", [EXPERT_1, EXPERT_2]),
        ("assistant", [STUDENT_1, STUDENT_2, EXPERT_1, EXPERT_2]),
        ("student", [STUDENT_1, STUDENT_2]),
    ],
)
def test_supervised_tokens_are_exactly_the_selected_turns(tokenizer, mask, expected):
    example = render(oec_trajectory(), tokenizer, mask=mask)
    ids = example.input_ids.tolist()
    target = [t for t, keep in zip(ids, example.loss_mask.tolist(), strict=True) if keep]
    assert tokenizer.decode(target, skip_special_tokens=False) == "".join(c + END_OF_TURN for c in expected)
    assert supervised_text(example, tokenizer) == [c + END_OF_TURN for c in expected]
    assert example.num_supervised == len(target)
    assert not example.loss_mask[0]
    # The ids are exactly the tokenised ChatML text the student sees at inference.
    chatml = "".join(f"<|im_start|>{m.role}\n{m.content}<|im_end|>\n" for m in oec_trajectory().messages)
    assert ids == tokenizer(chatml, add_special_tokens=False)["input_ids"]
    assert (example.instance_id, example.sample_index, example.arm, example.mask) == (
        "textkit__slug-1",
        3,
        "oec",
        mask,
    )


def test_context_turns_are_rendered_but_not_supervised(tokenizer):
    example = render(oec_trajectory(), tokenizer, mask="expert")
    text = tokenizer.decode(example.input_ids.tolist(), skip_special_tokens=False)
    assert text.startswith(f"<|im_start|>system\n{SYSTEM}<|im_end|>\n")
    assert f"<|im_start|>assistant\n{STUDENT_1}<|im_end|>\n" in text
    assert [(s.message_index, s.author, s.supervised) for s in example.spans] == [
        (2, "student", False),
        (4, "student", False),
        (6, "expert", True),
        (8, "expert", True),
    ]
    # The assistant header is context; the first target is the first content token.
    first = example.spans[2]
    assert not example.loss_mask[first.start - 1]
    assert (
        tokenizer.decode(example.input_ids[first.start - 3 : first.start].tolist())
        == "<|im_start|>assistant\n"
    )


def test_no_supervised_turn_is_refused(tokenizer):
    on_policy = _trajectory([m for m in oec_trajectory().messages[:6]], mode="on_policy")
    with pytest.raises(RenderError, match=r"textkit__slug-1#3.*mask 'expert' selects none") as err:
        render(on_policy, tokenizer, mask="expert")
    assert err.value.reason == "no_supervised"
    bc = _trajectory([oec_trajectory().messages[i] for i in (0, 1, 6, 7, 8)], mode="bc")
    with pytest.raises(RenderError) as err:
        render(bc, tokenizer, mask="student")
    assert err.value.reason == "no_supervised"


def test_reply_that_merges_with_the_header_is_refused(tokenizer):
    messages = oec_trajectory().messages
    messages[6] = Message("assistant", "\n" + EXPERT_1, "expert", 2)
    with pytest.raises(RenderError, match="supervised message 6") as err:
        render(_trajectory(messages), tokenizer, mask="expert")
    assert err.value.reason == "span_mismatch"
    # The same reply as unsupervised context is fine.
    assert render(_trajectory(messages), tokenizer, mask="student").num_supervised > 0


def test_over_long_trajectory_is_cut_after_the_last_fitting_supervised_turn(tokenizer):
    full = render(oec_trajectory(), tokenizer, mask="expert")
    first, second = (s for s in full.spans if s.supervised)
    cut = render(oec_trajectory(), tokenizer, mask="expert", max_seq_len=second.end - 1)
    assert cut.num_tokens == first.end
    assert cut.input_ids.tolist() == full.input_ids[: first.end].tolist()
    assert supervised_text(cut, tokenizer) == [EXPERT_1 + END_OF_TURN]
    assert cut.dropped_turns == 1
    assert render(oec_trajectory(), tokenizer, mask="expert", max_seq_len=full.num_tokens).dropped_turns == 0
    with pytest.raises(RenderError, match="max_seq_len=100") as err:
        render(oec_trajectory(), tokenizer, mask="expert", max_seq_len=100)
    assert err.value.reason == "too_long"


def test_unknown_mask_is_rejected(tokenizer):
    with pytest.raises(ValueError, match="unknown mask policy 'experts'"):
        render(oec_trajectory(), tokenizer, mask="experts")


def test_show_cli_prints_json_and_highlighted_text(tmp_path: Path, tokenizer, capsys, monkeypatch):
    store_dir = tmp_path / "store"
    with TrajectoryStore.open(store_dir, config={}) as store:
        store.append(oec_trajectory())
    assert show.main([str(store_dir), "--index", "0", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    expected = render(oec_trajectory(), tokenizer, mask="expert")
    assert payload["input_ids"] == expected.input_ids.tolist()
    assert payload["loss_mask"] == expected.loss_mask.astype(int).tolist()

    monkeypatch.setenv("COLUMNS", "200")
    assert show.main([str(store_dir), "--index", "0", "--mask", "assistant"]) == 0
    out = capsys.readouterr().out
    assert "textkit__slug-1#3" in out and "4 of 4 assistant turns supervised" in out
    assert EXPERT_2 in out and "legend" in out

    assert show.main([str(store_dir), "--index", "5"]) == 2
    assert "index 5 is out of range" in capsys.readouterr().err
    assert show.main([str(tmp_path / "missing"), "--index", "0"]) == 2
    assert "does not exist" in capsys.readouterr().err
    bc = _trajectory([oec_trajectory().messages[i] for i in (0, 1, 6, 7, 8)], mode="bc")
    bc.sample_index = 4
    with TrajectoryStore.open(store_dir, config={}) as store:
        store.append(bc)
    assert show.main([str(store_dir), "--index", "1", "--mask", "student"]) == 1
    assert "refused (no_supervised)" in capsys.readouterr().err


def test_render_many_matches_render_and_returns_refusals_in_place(tokenizer):
    on_policy = _trajectory(oec_trajectory().messages[:6], mode="on_policy")
    results = render_many([oec_trajectory(), on_policy, oec_trajectory()], tokenizer, mask="expert")
    single = render(oec_trajectory(), tokenizer, mask="expert")
    assert isinstance(results[1], RenderError) and results[1].reason == "no_supervised"
    for result in (results[0], results[2]):
        assert result.input_ids.tolist() == single.input_ids.tolist()
        assert result.loss_mask.tolist() == single.loss_mask.tolist()
        assert result.spans == single.spans
