"""The store's HTML viewer, rendered by headless Chromium and checked in the DOM it builds.

The page is built by its own script, so the checks read Chromium's ``--dump-dom`` (the DOM after the
script ran), with the page's state in the URL fragment: a filter there changes the list shown, and
``open=`` shows one trajectory. Each Chromium start takes seconds, so those tests are slow.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from oec.chat import load_tokenizer
from oec.store import TrajectoryStore, main
from oec.student import StudentModel
from oec.types import Label, Message, Trajectory, Verdict
from oec.viewer import write_view

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
HOSTILE = "</script><script>document.title='pwned'</script><b>bold</b> & <!-- x"
SUBMIT = "I am done.\n<function=submit>\n</function>"
LOOK = "Look.\n<function=bash>\n<parameter=command>ls</parameter>\n</function>"


def trajectory(instance: str, sample: int, mode: str, resolved: bool, handover: int | None) -> Trajectory:
    messages = [
        Message("system", "You are an agent.", "system", -1),
        Message("user", f"Fix {instance}.", "user", -1),
        Message("assistant", LOOK, "student", 0),
        Message("user", HOSTILE, "env", 0, kind="observation"),
    ]
    messages.append(Message("assistant", SUBMIT, "expert" if handover is not None else "student", 1))
    return Trajectory(
        instance_id=instance,
        sample_index=sample,
        mode=mode,
        seed=sample,
        messages=messages,
        models={"student": "tiny", "expert": "oracle"},
        exit_status="submitted",
        patch="",
        switch_step=handover,
        handover_turn=handover,
        verdict=Verdict(resolved=resolved),
        accepted=resolved,
    )


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("viewer")
    with TrajectoryStore.open(root / "store", {"seed": 0}) as store:
        store.append(trajectory("task-a", 0, "oec", True, 1))
        store.append(trajectory("task-b", 0, "on_policy", False, None))
        store.append(trajectory("task-b", 1, "oec", False, 1))
    out = root / "view.html"
    assert write_view(root / "store", out, load_tokenizer(), StudentModel("tiny", "tiny"), "expert") == 3
    return out


class Elements(HTMLParser):
    """Every element's classes and text, in document order (what the checks read)."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[dict] = []
        self.open: list[dict] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = {"tag": tag, "classes": set((dict(attrs).get("class") or "").split()), "text": ""}
        self.elements.append(element)
        if tag not in {"meta", "br", "img", "input", "link"}:
            self.open.append(element)

    def handle_endtag(self, tag: str) -> None:
        if self.open and self.open[-1]["tag"] == tag:
            self.open.pop()

    def handle_data(self, data: str) -> None:
        for element in self.open:
            element["text"] += data

    def with_class(self, name: str) -> list[dict]:
        return [e for e in self.elements if name in e["classes"]]


def dom(page: Path, fragment: str) -> Elements:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (make chromium installs it as root on Debian)")
    flags = ["--headless", "--disable-gpu", "--no-first-run", f"--user-data-dir={page.parent / 'profile'}"]
    if os.geteuid() == 0:
        flags.append("--no-sandbox")
    result = subprocess.run(
        [CHROMIUM, *flags, "--dump-dom", f"{page.as_uri()}#{fragment}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    parsed = Elements()
    parsed.feed(result.stdout)
    return parsed


@pytest.mark.slow
def test_open_trajectory_shows_authors_handover_supervision_and_escaped_text(page: Path) -> None:
    shown = dom(page, "open=0")
    messages = shown.with_class("msg")
    authors = [next(c for c in m["classes"] if c.startswith("author-")) for m in messages]
    assert authors == ["author-system", "author-user", "author-student", "author-env", "author-expert"]
    (handover,) = shown.with_class("handover")
    assert "turn 1" in handover["text"]
    # The marker sits right before the expert's first message.
    assert shown.elements.index(handover) < shown.elements.index(messages[4])
    assert shown.elements.index(handover) > shown.elements.index(messages[3])
    # Mask expert: the expert's reply and its end-of-turn token are supervised, nothing else.
    first = shown.elements.index(messages[0])
    supervised = [s for s in shown.with_class("supervised") if shown.elements.index(s) > first]
    assert [s["text"] for s in supervised] == [SUBMIT, "<|im_end|>"]
    assert all(shown.elements.index(s) > shown.elements.index(messages[4]) for s in supervised)
    # The hostile observation is text: no script ran (the title is ours), no <b> element was made.
    assert messages[3]["text"].endswith(HOSTILE)
    assert not [e for e in shown.elements if e["tag"] == "b"]
    (title,) = [e for e in shown.elements if e["tag"] == "title"]
    assert title["text"].startswith("OEC trajectories")
    assert "submitted" in shown.with_class("meta-exit")[0]["text"]
    assert "resolved" in shown.with_class("meta-verdict")[0]["text"]


@pytest.mark.slow
def test_filters_change_the_list(page: Path) -> None:
    assert len(dom(page, "").with_class("traj-row")) == 3
    oec_rows = dom(page, "mode=oec").with_class("traj-row")
    assert [r["text"].split("oec")[0] for r in oec_rows] == ["task-a0", "task-b1"]
    unresolved = dom(page, "task=task-b&resolved=no").with_class("traj-row")
    assert len(unresolved) == 2
    assert len(dom(page, "accepted=yes").with_class("traj-row")) == 1


@pytest.mark.slow
def test_refused_trajectory_says_why(page: Path) -> None:
    shown = dom(page, "open=1")
    first = shown.elements.index(shown.with_class("msg")[0])
    assert not [s for s in shown.with_class("supervised") if shown.elements.index(s) > first]
    assert not shown.with_class("handover")
    assert "refused: no_supervised" in shown.with_class("meta-training")[0]["text"]


def page_data(page: Path) -> dict:
    text = page.read_text()
    start = text.index('id="oec-data">') + len('id="oec-data">')
    return json.loads(text[start : text.index("</script>", start)])


def test_command_line_writes_the_page(tmp_path: Path, page: Path) -> None:
    out = tmp_path / "again.html"
    store = str(page.parent / "store")
    # Mask assistant supervises both replies; max_seq_len 60 cuts the conversation after the student's.
    assert main(["view", store, "--out", str(out), "--mask", "assistant", "model.max_seq_len=60"]) == 0
    text = out.read_text()
    assert "<script>document.title" not in text and "\\u003c/script\\u003e" in text
    first = page_data(out)["trajectories"][0]
    assert first["truncated"] and first["supervised"] == 20
    assert [(m["a"], m.get("s"), m.get("x")) for m in first["messages"]] == [
        ("system", None, None),
        ("user", None, None),
        ("student", 20, None),
        ("env", None, True),
        ("expert", None, True),
    ]
    assert first["messages"][3]["c"] == HOSTILE
    assert main(["view", str(tmp_path / "missing"), "--out", str(out)]) == 2


@pytest.fixture(scope="module")
def relabelled_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DAgger trajectory (each student reply labelled) and an intervene-and-return one."""
    opening = [Message("system", "You are an agent.", "system", -1), Message("user", "Fix it.", "user", -1)]
    observation = Message("user", "OBSERVATION:\nREADME", "env", 0, kind="observation")
    dagger = Trajectory(
        instance_id="task-d",
        sample_index=0,
        mode="dagger",
        seed=0,
        messages=[
            *opening,
            Message("assistant", LOOK, "student", 0, label=Label(SUBMIT)),
            observation,
            Message("assistant", SUBMIT, "student", 1, label=Label(LOOK)),
        ],
        models={"student": "tiny", "expert": "oracle"},
        exit_status="submitted",
        patch="",
        verdict=Verdict(resolved=False),
    )
    returned = Trajectory(
        instance_id="task-i",
        sample_index=0,
        mode="oec",
        seed=0,
        messages=[
            *opening,
            Message("assistant", LOOK, "student", 0),
            observation,
            Message("assistant", LOOK, "expert", 1),
            dataclasses.replace(observation, turn=1),
            Message("assistant", SUBMIT, "student", 2),
        ],
        models={"student": "tiny", "expert": "oracle"},
        exit_status="submitted",
        patch="",
        switch_step=1,
        handover_turn=1,
        return_turn=2,
        verdict=Verdict(resolved=False),
    )
    root = tmp_path_factory.mktemp("relabelled")
    with TrajectoryStore.open(root / "store", {"seed": 0}) as store:
        store.append(dagger)
        store.append(returned)
    out = root / "view.html"
    assert write_view(root / "store", out, load_tokenizer(), StudentModel("tiny", "tiny"), "expert") == 2
    return out


@pytest.mark.slow
def test_dagger_labels_show_under_the_student_replies_with_their_own_supervision(
    relabelled_page: Path,
) -> None:
    tokenizer = load_tokenizer()
    counts = [len(tokenizer.encode(text + "<|im_end|>")) for text in (SUBMIT, LOOK)]
    shown = dom(relabelled_page, "open=0")
    heads = [e["text"] for e in shown.with_class("head") if e["text"].startswith("expert label")]
    assert heads == [f"expert label (not executed) · {n} supervised tokens" for n in counts]
    first = shown.elements.index(shown.with_class("msg")[0])
    supervised = [s["text"] for s in shown.with_class("supervised") if shown.elements.index(s) > first]
    assert supervised == [SUBMIT, "<|im_end|>", LOOK, "<|im_end|>"]
    training = shown.with_class("meta-training")[0]["text"]
    assert f"{sum(counts)} of" in training and "in 2 examples" in training


@pytest.mark.slow
def test_the_hand_back_is_marked_before_the_students_next_turn(relabelled_page: Path) -> None:
    shown = dom(relabelled_page, "open=1")
    messages = shown.with_class("msg")
    (handback,) = shown.with_class("handback")
    assert "turn 2" in handback["text"]
    assert (
        shown.elements.index(messages[5]) < shown.elements.index(handback) < shown.elements.index(messages[6])
    )
    assert shown.with_class("meta-return")[0]["text"] == "2"
