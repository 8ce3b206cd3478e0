"""The ``env`` config: which sandbox runtime runs the agent's commands, and under which limits.

:data:`EnvConfig` is the choice of runtime by its ``runtime`` key: ``local`` processes
(:class:`SandboxConfig`), ``docker`` or ``podman`` containers (:class:`DockerConfig`,
:class:`PodmanConfig`), ``apptainer`` instances (:class:`ApptainerConfig`). A field of another
runtime is an error naming it (``env.memory_mb: belongs to runtime='docker'``).

Fields are validated when the dataclass is built (``oec.config.parse`` builds it from Hydra at
start-up), so a bad value fails before any sandbox exists, with an error naming its config key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from string import Formatter
from typing import Annotated, Literal

from oec.config import Above, AtLeast, NonEmpty


@dataclass(frozen=True)
class ResourceLimits:
    """``env.limits``: per-command limits (soft and hard), applied with ``ulimit``; null = inherit.

    The defaults only stop runaway commands (a memory leak, a file filling the disk, a fork bomb)
    and leave room for pytest, git and compiled extensions.
    """

    address_space_mb: Annotated[int, AtLeast(1)] | None = 16384
    """Virtual address space per process (``ulimit -v``). Virtual, not resident: threaded programs
    reserve far more than they touch, so keep this well above the memory a test suite needs."""

    file_size_mb: Annotated[int, AtLeast(1)] | None = 4096
    """Largest file a command may write (``ulimit -f``)."""

    processes: Annotated[int, AtLeast(1)] | None = 4096
    """Processes and threads of the sandbox: ``pids.max`` of its own pids cgroup where one can be
    made (as root), which binds root too and counts only this sandbox. Also ``ulimit -u``, which
    counts every process of the user and which Linux ignores for root."""


@dataclass(frozen=True)
class SandboxConfig:
    """``env=local``: one local sandbox per rollout, created fresh from the task's snapshot."""

    runtime: Literal["local"] = "local"
    """Which sandbox implementation runs commands: ``local`` processes (oec/env/local.py)."""

    timeout_s: Annotated[float, Above(0)] = 300.0
    """Per-command timeout in seconds (reference: 300); the whole process group is killed."""

    max_output_chars: Annotated[int, AtLeast(1)] = 70_000
    """Longest observation kept from one command (reference: 70k); the middle is cut out."""

    network: Literal["off", "on"] = "off"
    """``off`` runs commands in a fresh network namespace (loopback only) when the machine allows
    it, with one logged warning when it does not."""

    isolation: Literal["bwrap", "none"] = "bwrap"
    """``bwrap``: every command runs under bubblewrap (oec/env/bwrap.py), seeing only the system
    dirs, the task environment, this sandbox's directories and, read-only, the snapshot's objects;
    with its own PID namespace, so nothing it starts outlives it. ``none``: plain processes of the
    calling user, which can read any file that user can (debugging only). If bwrap cannot run,
    one warning says what is lost and commands run as with ``none``."""

    task_env: str | None = None
    """Python environment (a virtualenv) the task's commands get: its ``bin/`` is first on their
    PATH, so ``python`` and ``pytest`` are its own, never the project's (whose ``oec`` package holds
    every gold patch and hidden test). null = ``.task-env`` in the project checkout, made by
    ``make install`` with pytest only. If it is missing, one warning says so and commands get only
    the system's Python."""

    parent_dir: str | None = None
    """Directory under which each sandbox's temporary root is created; null = the system temp dir."""

    limits: ResourceLimits = field(default_factory=ResourceLimits)


@dataclass(frozen=True)
class ContainerConfig:
    """Fields shared by the container runtimes (oec/env/container.py): one container per rollout
    from the task's image (``task.metadata["image"]``), removed when the rollout ends."""

    timeout_s: Annotated[float, Above(0)] = 300.0
    """Per-command timeout in seconds; the command's process group is killed inside the container."""

    max_output_chars: Annotated[int, AtLeast(1)] = 70_000
    """Longest observation kept from one command; the middle is cut out."""

    network: Literal["off", "on"] = "off"
    """``off``: the container has no network at all (``--network none``); ``on``: the default bridge."""

    workdir: Annotated[str, NonEmpty()] = "/testbed"
    """The repository inside the image for tasks that do not name theirs (``metadata["workdir"]``,
    which rows tasks carry; SWE-bench, SWE-Gym and SWE-smith images use /testbed)."""

    setup: str = "if [ -f /opt/miniconda3/bin/activate ]; then . /opt/miniconda3/bin/activate testbed; fi"
    """Shell run before every command, to make the repository's environment active: the conda
    ``testbed`` environment of SWE-bench images where the image has one. Images that put their
    environment on PATH (``make images``) need nothing."""

    cpus: Annotated[float, Above(0)] | None = 2.0
    """CPUs the container may use (``--cpus``); null = no limit."""

    memory_mb: Annotated[int, AtLeast(16)] | None = 8192
    """Memory of the container, swap included (``--memory``, ``--memory-swap``): a process that
    allocates more is killed by the kernel, the container survives; null = no limit."""

    pids: Annotated[int, AtLeast(16)] | None = 4096
    """Processes and threads in the container (``--pids-limit``): a fork bomb hits it; null = none."""

    pull: bool = False
    """Pull an image that is not present locally; false makes a missing image an error naming it."""

    start_timeout_s: Annotated[float, Above(0)] = 120.0
    """How long one attempt to create and start a container may take."""

    start_attempts: Annotated[int, AtLeast(1)] = 3
    """Attempts to start a container before the rollout fails with an infrastructure error."""

    binary: str | None = None
    """The runtime's command line client; null = ``docker`` or ``podman`` found on PATH."""


@dataclass(frozen=True)
class DockerConfig(ContainerConfig):
    """``env=docker``: containers of the docker daemon."""

    runtime: Literal["docker"] = "docker"


@dataclass(frozen=True)
class PodmanConfig(ContainerConfig):
    """``env=podman``: containers of podman (same command line as docker)."""

    runtime: Literal["podman"] = "podman"


IMAGE_FIELDS = ("image", "image_file")
"""Fields of ``env.image``: the task's image name, and that name with ``/`` and ``:`` as ``_``."""


@dataclass(frozen=True)
class ApptainerConfig:
    """``env=apptainer``: one apptainer instance per rollout (oec/env/apptainer.py), for clusters
    without root or a container daemon. Never run against a real apptainer in this project's CI."""

    runtime: Literal["apptainer"] = "apptainer"

    image: Annotated[str, NonEmpty()] = "docker://{image}"
    """Where the task's image comes from: ``{image}`` is ``task.metadata["image"]``, ``{image_file}``
    the same with ``/`` and ``:`` as ``_``. A path (``/scratch/sif/{image_file}.sif``, or a
    ``--sandbox`` directory) must exist; a URI (``docker://{image}``) is pulled into apptainer's
    cache by its first start."""

    timeout_s: Annotated[float, Above(0)] = 300.0
    """Per-command timeout in seconds; the command's process group is killed inside the instance."""

    max_output_chars: Annotated[int, AtLeast(1)] = 70_000
    """Longest observation kept from one command; the middle is cut out."""

    network: Literal["off", "on"] = "off"
    """``off``: the instance gets its own network namespace with loopback only (``--net --network
    none``) when ``network_namespace`` allows; ``on``: the host's network."""

    network_namespace: bool = True
    """Whether this site lets users create network namespaces (``--net``); false with ``network:
    off`` logs one warning that commands keep the host's network."""

    workdir: Annotated[str, NonEmpty()] = "/testbed"
    """The repository inside the image for tasks that do not name theirs (``metadata["workdir"]``)."""

    setup: str = "if [ -f /opt/miniconda3/bin/activate ]; then . /opt/miniconda3/bin/activate testbed; fi"
    """Shell run before every command (the conda ``testbed`` environment of SWE-bench images)."""

    writable: Literal["overlay", "tmpfs"] = "overlay"
    """Where the rollout's writes go: ``overlay``, an ext3 image of its own (``apptainer overlay
    create``, ``--overlay``), removed at the end; ``tmpfs`` (``--writable-tmpfs``), in memory and
    capped by the site's ``sessiondir max size`` (64 MiB by default: too small for most repos)."""

    fakeroot: bool = True
    """Run as root of a user namespace (``--fakeroot``, also for ``overlay create``): images built by
    docker own ``/testbed`` as root, so without it commands can write neither the repository nor
    ``/oec``, and git refuses a repository of another owner. False only for images whose repository
    belongs to the calling user."""

    overlay_mb: Annotated[int, AtLeast(16)] = 4096
    """Size of the per-rollout overlay (sparse: only what is written takes disk space)."""

    overlay_dir: str | None = None
    """Directory for the overlays (a local disk, not a network filesystem); null = the system temp dir."""

    start_timeout_s: Annotated[float, Above(0)] = 600.0
    """How long one attempt to start an instance may take (a ``docker://`` image's first start
    converts it to SIF)."""

    start_attempts: Annotated[int, AtLeast(1)] = 3
    """Attempts to start an instance before the rollout fails with an infrastructure error."""

    binary: str | None = None
    """The client; null = ``apptainer`` on PATH, else ``singularity``."""

    def __post_init__(self) -> None:
        try:
            used = {name for _, name, _, _ in Formatter().parse(self.image) if name is not None}
        except ValueError as exc:
            raise ValueError(f"image: {self.image!r} is not a valid template: {exc}") from None
        if not used or used - set(IMAGE_FIELDS):
            raise ValueError(f"image: {self.image!r} must use {{image}} or {{image_file}} and no other field")


EnvConfig = SandboxConfig | DockerConfig | PodmanConfig | ApptainerConfig
"""The ``env`` config group: which runtime runs the agent's commands, chosen by ``runtime``."""
