"""The one Dagster Definitions object of Odyssey (the code location `odyssey`), built from the
settings `load_settings` reads: odyssey.toml, or the file $ODYSSEY_SETTINGS names."""

from graph import build_definitions
from odyssey.settings import load_settings

defs = build_definitions(load_settings())
