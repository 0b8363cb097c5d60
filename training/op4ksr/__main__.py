"""``python -m sr4k.training.op4ksr`` / ``accelerate launch -m sr4k.training.op4ksr``."""

from .main import main

raise SystemExit(main())
