"""Interop with other agents' trajectory formats: importers that turn SWE-agent ``.traj`` files and
mini-swe-agent trajectory JSON into our :class:`oec.types.Trajectory`, stored with provenance.

Each reader (:mod:`oec.interop.sweagent`, :mod:`oec.interop.minisweagent`) turns one source file into
a :class:`oec.interop.convert.Source` (problem statement, typed actions, observations, outcome) or
raises :class:`oec.interop.convert.Skip` with a named reason; :mod:`oec.interop.convert` makes the
trajectory with the student's prompts and action renderer; :mod:`oec.interop.cli` is the
``python -m oec.store import`` command.
"""
