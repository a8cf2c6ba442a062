"""``python -m fcgikit`` and the ``fcgikit`` command (pyproject.toml)."""

import sys

from fcgikit.gc_pause import pause_collections


def drop_repeated_path_entries() -> None:
    """``sys.path`` without its repeated entries, the first of each kept in its place.

    Every import of a top-level module (the standard library's, the app's and its
    framework's: a few hundred at a start) asks each entry before the one that has it, a
    ``stat`` of the directory each time; an entry that is there twice answers no twice,
    always the same, as the one finder ``sys.path_importer_cache`` keeps for both. ``python -m
    fcgikit`` run from the app's directory with that directory in ``PYTHONPATH`` too (as a
    deployment that names it for its app does) has it twice. What imports find is unchanged.
    """
    sys.path[:] = dict.fromkeys(sys.path)


def run() -> int:
    """The command, from its first line without automatic cyclic collections while it starts
    (fcgikit/gc_pause.py): importing fcgikit's own modules is part of that start; and without
    ``sys.path``'s repeated entries, which every import of it and of the app would ask again."""
    pause_collections()
    drop_repeated_path_entries()
    from fcgikit.cli import main

    return main()


if __name__ == "__main__":
    raise SystemExit(run())
