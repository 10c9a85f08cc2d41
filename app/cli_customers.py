"""`threadline customers import FILE [--dry-run] [--json]` and `threadline customers export FILE`:
the command line over app.usecases.customer_csv."""
from __future__ import annotations

import json
import sys

import click

from app.usecases.customer_csv import export_csv, import_csv


def _app():
    from app import create_app
    from app.infra.config import ConfigError

    try:
        return create_app()
    except (ConfigError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def customers() -> None:
    """Customers: CSV import and export."""


@customers.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Check every row, write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def import_command(file, dry_run, as_json) -> None:
    """Import customers with their handles from a CSV file (UTF-8)."""
    app = _app()
    with open(file, encoding="utf-8-sig", newline="") as fh:
        text = fh.read()
    with app.app_context():
        from app.infra.state import db

        report = import_csv(db.session, text, dry_run=dry_run)
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        verb = "would import" if dry_run else "imported"
        click.echo(f"{verb}: {report['created']} created, {report['updated']} updated, "
                   f"{len({r['row'] for r in report['rejected']})} rejected "
                   f"of {report['rows']} rows")
        for item in report["rejected"]:
            click.echo(f"row {item['row']}: {item['field']}: {item['reason']}", err=True)
    if report["rejected"]:
        sys.exit(2)


@customers.command("export")
@click.argument("file", type=click.Path(dir_okay=False, writable=True))
def export_command(file) -> None:
    """Export customers with their handles to a CSV file ("-" for stdout)."""
    app = _app()
    with app.app_context():
        from app.infra.state import db

        body = export_csv(db.session)
    if file == "-":
        click.echo(body, nl=False)
    else:
        with open(file, "w", encoding="utf-8", newline="") as fh:
            fh.write(body)
        click.echo(f"exported {max(body.count(chr(10)) - 1, 0)} customers to {file}")


if __name__ == "__main__":  # `python -m app.cli_customers ...`
    customers()
