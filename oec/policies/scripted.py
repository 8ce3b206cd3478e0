"""A scripted policy: fixed replies, in order (mini-swe-agent's ``DeterministicModel`` in spirit).

Tests and tools need a policy that says exactly what they choose, through the real loop, switch and
tools; this is the one such policy, so no test writes its own fake. :meth:`ScriptedPolicy.replaying`
replays one author's replies of a stored trajectory (e.g. to re-run a rollout against a changed
toolbox). It records every call it answers (the loop's ``turn`` and the messages it was shown) so a
test can check what a policy saw. It is not a config backend: no experiment collects with it.

Usage: no model runs, so token counts are the oracle's rough estimate, characters / 4 of the prompt
shown and of the reply.
"""

from __future__ import annotations

from collections.abc import Sequence

from oec.policies.base import Reply
from oec.types import Author, Message, Trajectory, Usage


class ScriptExhausted(RuntimeError):
    """The policy was asked for more replies than its script holds."""


class ScriptedPolicy:
    """Answers call after call with ``replies``, in order; a call past the end raises
    :class:`ScriptExhausted`."""

    def __init__(self, replies: Sequence[str], *, author: Author = "student", name: str = "scripted") -> None:
        self.replies = list(replies)
        self.author = author
        self.name = name
        self.calls: list[tuple[int, list[Message]]] = []
        """(turn, messages shown) of every call answered, in order."""

    @classmethod
    def replaying(cls, trajectory: Trajectory, author: Author) -> ScriptedPolicy:
        """The replies ``author`` wrote in ``trajectory``, under the model name the trajectory records."""
        replies = [m.content for m in trajectory.messages if m.author == author and m.role == "assistant"]
        if not replies:
            where = f"trajectory {trajectory.instance_id!r}#{trajectory.sample_index}"
            raise ValueError(f"{where}: no {author} replies to replay")
        return cls(replies, author=author, name=trajectory.models.get(author, "scripted"))

    def act(self, messages: Sequence[Message], turn: int) -> Reply:
        if len(self.calls) >= len(self.replies):
            raise ScriptExhausted(
                f"{self.name}: asked for reply {len(self.calls) + 1} (turn {turn}) "
                f"but the script holds {len(self.replies)}"
            )
        content = self.replies[len(self.calls)]
        self.calls.append((turn, list(messages)))
        prompt_chars = sum(len(m.content) for m in messages)
        return Reply(content, self.author, self.name, Usage(prompt_chars // 4, len(content) // 4))
