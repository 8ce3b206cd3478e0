#!/usr/bin/env bash
# Build the base image of every embedded task, without any registry: a minimal Debian made by
# debootstrap from the Debian mirror, with git, python3 and a virtualenv at /opt/testbed-env holding
# pytest at the project's version (its wheels downloaded by the host's pip, so the host's index and
# certificates apply; installed offline in the chroot), imported with `docker import` (or podman's).
# The root filesystem is cached as a tarball (OEC_IMAGE_CACHE, default ~/.cache/oec/images), so a
# rebuild only re-imports it.
#
# Usage: [PYTHON=python3] [CONTAINER_CLI=docker|podman] images/base.sh IMAGE PYTEST_VERSION
# (as root: debootstrap and chroot need it)
set -euo pipefail
image=$1
pytest_version=$2
suite=${DEBIAN_SUITE:-bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
cli=${CONTAINER_CLI:-docker}
cache=${OEC_IMAGE_CACHE:-$HOME/.cache/oec/images}
tarball=$cache/debian-$suite-pytest-$pytest_version.tar

if "$cli" image inspect "$image" >/dev/null 2>&1 \
  && [ "$("$cli" image inspect -f '{{index .Config.Labels "oec.rootfs"}}' "$image")" = "$(basename "$tarball")" ]; then
  echo "$image is up to date"
  exit 0
fi

if [ ! -f "$tarball" ]; then
  command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap
  mkdir -p "$cache"
  rootfs=$(mktemp -d "$cache/rootfs.XXXXXX")
  trap 'umount "$rootfs/proc" 2>/dev/null || true; rm -rf "$rootfs"' EXIT
  debootstrap --variant=minbase --include=python3,python3-venv,git,patch,ca-certificates,procps \
    "$suite" "$rootfs" "$mirror"
  "${PYTHON:-python3}" -m pip download --quiet --dest "$rootfs/wheels" "pytest==$pytest_version"
  mount -t proc proc "$rootfs/proc"
  chroot "$rootfs" python3 -m venv /opt/testbed-env
  chroot "$rootfs" /usr/bin/env -i /opt/testbed-env/bin/pip install --quiet --no-cache-dir --no-index \
    --find-links /wheels "pytest==$pytest_version"
  umount "$rootfs/proc"
  rm -rf "$rootfs/wheels" "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" --numeric-owner -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
fi

# The task's Python environment is active in every `docker exec` through the image's PATH, as the
# conda `testbed` environment is in SWE-bench images.
"$cli" import \
  --change 'ENV PATH=/opt/testbed-env/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'WORKDIR /testbed' \
  --change 'CMD ["sleep", "infinity"]' \
  --change "LABEL oec.rootfs=$(basename "$tarball")" \
  "$tarball" "$image"
