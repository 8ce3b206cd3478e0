"""Trajectory interop: stores exported as datasets other trainers read, public trajectories imported."""
