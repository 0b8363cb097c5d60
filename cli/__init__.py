"""Headless command-line tool ``sr4k`` (upscale, convert, bench) over the cores."""
