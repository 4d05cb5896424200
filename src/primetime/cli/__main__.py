"""``python -m primetime.cli`` (what ``torchrun -m primetime.cli`` runs)."""

from primetime.cli import app

app()
