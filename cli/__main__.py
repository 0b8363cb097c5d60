"""``python -m sr4k.cli``: the same as the ``sr4k`` command."""

from .main import main

raise SystemExit(main())
