"""``python -m fcgikit`` is the ``fcgikit`` command."""

from fcgikit.cli import main

raise SystemExit(main())
