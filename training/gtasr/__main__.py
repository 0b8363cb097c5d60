"""``python -m sr4k.training.gtasr`` / ``accelerate launch -m sr4k.training.gtasr``."""

from .main import main

raise SystemExit(main())
