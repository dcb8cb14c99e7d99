"""The extractor's compiled pixel loops (pixel_loop.c), where a C compiler was found at install.

Each loop has a NumPy reference beside its caller (the luma and chroma planes in extract.py, the
tilted views in windows.py) that gives bit-identical results, so an install without a compiler
computes the same features, slower.  ``engine`` arguments pick one: "compiled", "numpy" or
"auto" (the compiled loop where it was built).
"""

from __future__ import annotations

from types import ModuleType
from typing import Literal

__all__ = ["COMPILED", "Engine", "compiled_loops", "use_compiled"]

try:
    import neardup.features.pixel_loop as _pixel_loop  # the compiled module itself, not the package above it

    _loops: ModuleType | None = _pixel_loop
except ImportError:  # pragma: no cover - depends on the install
    _loops = None

#: whether the compiled pixel loops were built at install
COMPILED = _loops is not None
#: which loop computes: "compiled" (pixel_loop.c), "numpy" (the reference) or "auto" (compiled where built)
Engine = Literal["auto", "numpy", "compiled"]


def use_compiled(engine: Engine, *, built: bool, what: str) -> bool:
    """Whether ``engine`` runs a compiled loop (``what``, for the message) that was ``built`` or
    not at install; an unknown engine, or "compiled" where it was not built, is an error that
    says what to do.  Every compiled loop of the package is chosen through this."""
    if engine not in ("auto", "numpy", "compiled"):
        raise ValueError(f"engine must be 'auto', 'numpy' or 'compiled', not {engine!r}")
    if engine == "compiled" and not built:
        raise RuntimeError(f"neardup's {what} was not built: no C compiler was found at install; reinstall "
                           "neardup where one is, or use engine='numpy'")
    return engine != "numpy" and built


def compiled_loops(engine: Engine) -> ModuleType | None:
    """The compiled pixel loops if ``engine`` runs them, else None (:func:`use_compiled`)."""
    return _loops if use_compiled(engine, built=_loops is not None, what="compiled pixel loops (pixel_loop)") else None
