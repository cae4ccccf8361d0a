"""The command-line programs, thin: parse the options, call the package, print one line on error.

    python -m minwave.train [options]       train.py      (console script minwave-train)
    python -m minwave.generate [options]    generate.py   (console script minwave-generate)
    errors.py: what every program does with an error (one line on stderr, an exit status, no traceback)

`python -m minwave.train` and `python -m minwave.generate` run these through minwave/train.py and
minwave/generate.py, so the documented commands stay as they are while the names minwave.train (the
loop) and minwave.generate (the function) belong to the package. Nothing is imported here: the
training loop imports errors.py, and importing it must not load a program.
"""
