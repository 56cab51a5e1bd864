"""compat's database as data only: matrices/ beside this file, read by compat via importlib.resources."""
