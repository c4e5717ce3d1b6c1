"""`siamrec project`: write a metric fitted on a store's playlists into a copy of the model (needs siamrec[train])."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from siamrec.cli.common import Settings, json_option, onnx_output_option, print_json, stdout, store_options
from siamrec.store import Store


@click.command("project")
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@onnx_output_option("The ONNX file to write: MODEL with the projection in its metadata.")
@click.option(
    "--shrinkage",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="As in `siamrec adapt` [default: chosen by cross-validation on the store's playlists].",
)
@click.option(
    "--centroid-projection/--no-centroid-projection",
    default=None,
    help="Keep only the directions the playlists' centroids differ along [default: chosen as --shrinkage is].",
)
@click.option("--name", help="The projected model's name [default: MODEL's name + '-projected']: its vectors differ.")
@click.option("--fitted-on", default="the store's playlists", show_default=True, help="Stored in the model.")
@store_options(model_option=False, device_option=False)
@json_option
def project(model: Path, output: Path, shrinkage: float | None, centroid_projection: bool | None, name: str | None,
            fitted_on: str, settings: Settings, as_json: bool) -> None:  # fmt: skip
    """Ship a metric inside MODEL: fit `adapt`'s whitening on the store's playlists and write it into a copy.

    Fit it on the playlists the model was trained on (the store must hold tracks embedded by MODEL itself):
    every user then gets that metric as the plain one, and `adapt` starts from it.
    """
    from siamrec.training.export.projection import project_model

    with Store.open(settings) as store:
        report = project_model(store, model, output, fitted_on, shrinkage, centroid_projection, name)
    if as_json:
        print_json(report.as_dict())
        return
    table = Table("what", "value", title=f"projection written to {output.name}")
    for key, value in report.as_dict().items():
        table.add_row(key, str(value))
    stdout.print(table)
