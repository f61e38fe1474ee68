"""The palm detector behind ``--find-hand``: fetch (``python -m runtime.palm``), detect, search."""
