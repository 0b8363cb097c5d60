"""``python -m sr4k.training.f16vae`` / ``accelerate launch -m sr4k.training.f16vae``."""

from .main import main

raise SystemExit(main())
