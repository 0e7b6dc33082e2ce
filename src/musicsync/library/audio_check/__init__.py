"""The audio check of uploads, bounded in time and memory (see checker.py).

Kept empty of imports: the worker process (worker.py) imports this package, and
must stay small (mutagen, audio.py, caps.py and pictures.py only).
"""
