"""A code location for the backfill test: the real definitions, settings from the environment."""

from coin_platform.definitions import build_definitions
from coin_platform.settings import load_settings

defs = build_definitions(load_settings())
