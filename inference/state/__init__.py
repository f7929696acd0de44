"""The scorer's per-patient state: the dense table, its changelog format and its restore."""
