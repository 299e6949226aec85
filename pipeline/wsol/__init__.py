"""WSOL training methods, the third axis of the leaderboard (backbone × training method × map method).

`catalog` is the torch-free registry (params validation, `camloc wsol-methods`, the report); the other
modules are the torch mechanisms used by train@B and cams@B. Importing this package loads no torch.
"""
