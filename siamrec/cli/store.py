"""`siamrec store migrate`: move an old embedded store (qdrant-client local mode) into Qdrant Edge."""

from __future__ import annotations

import click

from siamrec.cli.common import Settings, json_option, print_json, stdout, store_options


@click.group("store")
def store_group() -> None:
    """Look after the embedded store."""


@store_group.command("migrate")
@store_options(model_option=False)
@json_option
def migrate_command(settings: Settings, as_json: bool) -> None:
    """Copy the old local-mode store into the embedded Qdrant Edge store; the old folder is kept as a backup.

    Opening the store does the same automatically; this command does it now and reports what it copied.
    """
    from siamrec.store.migrate import migrate

    report = migrate(settings)
    if as_json:
        print_json(report.as_dict())
    elif report.migrated:
        counts = ", ".join(f"{n} {collection}" for collection, n in report.points.items())
        stdout.print(f"migrated {counts} from {report.source} to {report.target}; the old folder is kept as a backup")
    else:
        stdout.print(f"nothing to migrate: {report.note}")
