"""``python -m etl_meta.cli`` runs the ``etl-meta`` command."""

from etl_meta.cli import main

main()
