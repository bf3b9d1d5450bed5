"""``python -m node`` runs the ``kith`` command."""

from node.cli import main

main()
