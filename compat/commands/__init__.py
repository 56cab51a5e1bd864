"""Commands that live in modules of their own, loaded on demand by compat.cli."""
