"""``python -m fcgikit`` and the ``fcgikit`` command (pyproject.toml)."""

from fcgikit.gc_pause import pause_collections


def run() -> int:
    """The command, from its first line without automatic cyclic collections while it starts
    (fcgikit/gc_pause.py): importing fcgikit's own modules is part of that start."""
    pause_collections()
    from fcgikit.cli import main

    return main()


if __name__ == "__main__":
    raise SystemExit(run())
