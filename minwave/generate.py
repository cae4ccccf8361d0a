"""`python -m minwave.generate [options]` runs the command line (cli/generate.py); `minwave.generate(...)`
is the sampling function (sampling.py). This module keeps both working under the one name.

Why it is callable: importing a submodule binds it as an attribute of its package, so once anything has
run `import minwave.generate` (runpy does, and so may a tool or a test), the name `minwave.generate` is
this module, no longer the function that minwave/__init__.py exported. Calling this module therefore
calls sampling.generate with the same arguments, so `minwave.generate(model, n)` returns codes whatever
was imported before. Nothing else lives here.
"""

from __future__ import annotations

import sys
import types

from . import sampling


class _CallableModule(types.ModuleType):
    """A module that, called, is `sampling.generate` (see the module docstring for why)."""

    def __call__(self, *args, **kwargs):
        return sampling.generate(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

if __name__ == "__main__":
    from .cli.errors import exit_program
    from .cli.generate import main

    exit_program(main())
