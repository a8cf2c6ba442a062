"""The start of ``fcgikit serve`` without the cyclic collector's automatic collections.

What a serving process makes before it serves (fcgikit's modules, classes and functions, then
the app's) lives as long as the process, and each automatic collection during the start walks
all of it made so far, again; the one the start would then owe walks it once more. So the
``fcgikit`` command pauses them from its first line (:mod:`fcgikit.__main__`), a single
serving process until its app is loaded (fcgikit/serve_command.py), everything else once it
knows what it runs (fcgikit/cli.py); :func:`resume_collections` freezes what was made
(``gc.freeze``, as the server freezes what it serves with: no collection walks it any more)
and sets the thresholds back. The price: cyclic garbage the start leaves (a few hundred
objects for Flask) is kept, not freed.

Only the command pauses; importing fcgikit (a ``.fcgi`` file's ``WSGIServer``) leaves the
collector as it is.
"""

from __future__ import annotations

import gc

#: the thresholds to set back, while paused
_paused_from: tuple[int, int, int] | None = None


def pause_collections() -> None:
    """No automatic collection until :func:`resume_collections`; explicit ones still run."""
    global _paused_from
    if _paused_from is None:
        _paused_from = gc.get_threshold()
        gc.set_threshold(0, *_paused_from[1:])


def resume_collections() -> None:
    """Freeze what was made while paused, and collect automatically again, at the thresholds
    of before (unless something set others meanwhile: an app that sets its own keeps them).
    Nothing to do when not paused."""
    global _paused_from
    if _paused_from is None:
        return
    thresholds, _paused_from = _paused_from, None
    gc.freeze()
    if gc.get_threshold() == (0, *thresholds[1:]):
        gc.set_threshold(*thresholds)
