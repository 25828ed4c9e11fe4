"""The Dagster code location, one sub-folder per domain (loaded by ``load_from_defs_folder``)."""
