"""Interop with other agents' trajectory formats: importers that turn SWE-agent ``.traj`` files,
mini-swe-agent trajectory JSON, SWE-smith trajectory rows and OpenHands ``output.jsonl`` rows into our
:class:`oec.types.Trajectory`, stored with provenance.

A file reader (:mod:`oec.interop.sweagent`, :mod:`oec.interop.minisweagent`) turns one source file
into a :class:`oec.interop.convert.Source` (problem statement, typed actions, observations, outcome)
or raises :class:`oec.interop.convert.Skip` with a named reason; a row reader
(:mod:`oec.interop.swesmith`, :mod:`oec.interop.openhands`) yields a
:class:`oec.interop.convert.Row` holding a Source or a Skip for each row of a file.
:mod:`oec.interop.convert` makes the trajectory with the student's prompts and action renderer;
:mod:`oec.interop.cli` is the ``python -m oec.store import`` command.

The other direction, :mod:`oec.interop.export` (``python -m oec.store export``), writes a store as a
parquet dataset or JSONL that other trainers read: messages with per-message train flags, and
``input_ids`` + ``loss_mask`` rendered as our training renders them.
"""
