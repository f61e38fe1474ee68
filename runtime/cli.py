"""Argparse conventions shared by every command."""

from __future__ import annotations


def flag(name: str) -> tuple[str, ...]:
    """Option strings for a multi-word flag: the documented ``--kebab-case`` spelling and the
    ``--snake_case`` alias, so ``--batch-size 16`` and ``--batch_size 16`` both work."""
    kebab = "--" + name.replace("_", "-")
    snake = "--" + name.replace("-", "_")
    return (kebab,) if kebab == snake else (kebab, snake)
