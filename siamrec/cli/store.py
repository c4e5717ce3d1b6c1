"""`siamrec store`: look after the embedded store: back it up, restore a backup, migrate an old one."""

from __future__ import annotations

from pathlib import Path

import click

from siamrec.cli.common import Settings, json_option, output_file, print_json, stdout, store_options


@click.group("store")
def store_group() -> None:
    """Look after the embedded store: backup, restore, migrate."""


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


@store_group.command("backup")
@click.argument("path", required=False, type=click.Path(path_type=Path), callback=output_file("PATH"))
@click.option(
    "--service",
    metavar="URL",
    help="Ask the `siamrec serve` at URL (which holds the store) for the backup; its key from SIAMREC_API_KEY.",
)
@store_options(model_option=False)
@json_option
def backup_command(settings: Settings, path: Path | None, service: str | None, as_json: bool) -> None:
    """Write a consistent copy of the embedded store to PATH (default: a dated file under HOME/backups).

    The copy is taken under the store's lock, so it is refused while another process holds the store; a running
    `siamrec serve` makes it itself: pass its address with --service.
    """
    from siamrec.store.backup import backup, default_backup_path, fetch_backup

    if service is not None:
        report = fetch_backup(service, path or default_backup_path(settings))
    else:
        report = backup(settings, path)
    if as_json:
        print_json(report.as_dict())
        return
    counts = ", ".join(f"{n} {collection}" for collection, n in report.collections.items())
    stdout.print(f"backed up {counts or 'an empty store'} to {report.path} ({report.bytes:,} bytes)")


@store_group.command("restore")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Replace a store that holds data (it is kept as store.replaced-<time>).")
@store_options(model_option=False)
@json_option
def restore_command(settings: Settings, path: Path, force: bool, as_json: bool) -> None:
    """Replace the embedded store by the backup at PATH, all at once: the whole file is checked first, the store
    is rebuilt beside the current one and swapped in one step; nothing changes when anything fails."""
    from siamrec.store.backup import restore

    report = restore(settings, path, force)
    if as_json:
        print_json(report.as_dict())
        return
    counts = ", ".join(f"{n} {collection}" for collection, n in report.collections.items())
    kept = f"; the store it replaced is kept in {report.replaced}" if report.replaced else ""
    stdout.print(f"restored {counts or 'an empty store'} from {report.source} into {report.store}{kept}")
