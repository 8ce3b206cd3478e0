"""Prompt templates of the agent: the student's system prompt, the expert's, and the task prompt.

Templates are ``str.format`` strings so configs can override them; ``{tool_docs}`` is replaced by
the tool documentation and ``{problem_statement}`` by the task's issue text. An expert that calls
tools natively (``anthropic``, or ``openai`` with ``action_format: native``) gets
``expert_system_native`` instead: its tools arrive as API tool definitions, so the prompt neither
documents them nor asks for the XML call format. The trajectory store
always keeps the STUDENT's system prompt as the first message (what the student sees at inference
and trains on); the expert's prompt is only shown to the expert while it acts.
"""

from __future__ import annotations

from dataclasses import dataclass

STUDENT_SYSTEM = """You are a software engineer working in a Linux shell on a Python repository.
Solve the issue the user reports by editing the repository's source code.

You act in turns. In each reply, first write a short thought, then call exactly ONE tool, in this format:

<function=TOOL_NAME>
<parameter=PARAM_NAME>
value
</parameter>
</function>

{tool_docs}"""

EXPERT_SYSTEM = """You are an expert software engineer taking over a debugging session in a Linux shell.
Someone may already have worked on the repository: check its state before you trust it, undo edits
that are wrong or unrelated, then fix the issue the user reports and submit.

Each reply is a short thought followed by exactly ONE tool call, in this format:

<function=TOOL_NAME>
<parameter=PARAM_NAME>
value
</parameter>
</function>

{tool_docs}"""

EXPERT_SYSTEM_NATIVE = """\
You are an expert software engineer taking over a debugging session in a Linux shell.
Someone may already have worked on the repository: check its state before you trust it, undo edits
that are wrong or unrelated, then fix the issue the user reports and submit.

Each reply is a short thought followed by exactly ONE call of the tools you are given."""

TASK_TEMPLATE = """<issue>
{problem_statement}
</issue>

The repository is checked out in the current directory. Find the cause of the issue, fix the source
code (do not modify the existing tests), check your fix, and then call submit."""

OBSERVATION_PREFIX = "OBSERVATION:\n"
FORMAT_ERROR_PREFIX = "FORMAT ERROR: "


@dataclass(frozen=True)
class Prompts:
    """The three templates of an agent run; fields are ``str.format`` templates (see module doc)."""

    student_system: str = STUDENT_SYSTEM
    expert_system: str = EXPERT_SYSTEM
    expert_system_native: str = EXPERT_SYSTEM_NATIVE
    task: str = TASK_TEMPLATE

    def render_student_system(self, tool_docs: str) -> str:
        return self.student_system.format(tool_docs=tool_docs)

    def render_expert_system(self, tool_docs: str, native_tools: bool = False) -> str:
        """The expert's prompt; ``native_tools``: it calls the tools natively (see module doc)."""
        if native_tools:
            return self.expert_system_native.format(tool_docs=tool_docs)
        return self.expert_system.format(tool_docs=tool_docs)

    def render_task(self, problem_statement: str) -> str:
        return self.task.format(problem_statement=problem_statement.strip())


def observation(text: str) -> str:
    return OBSERVATION_PREFIX + text


def format_error(reason: str) -> str:
    return (
        f"{FORMAT_ERROR_PREFIX}{reason}\n"
        "Reply with a short thought followed by exactly one <function=...> call, "
        "as described in the system prompt."
    )
