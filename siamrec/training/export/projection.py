"""`siamrec project`: ship a metric inside a model, fitted on a store's playlists (the training corpus's).

The store must have been embedded by the very model file given (no projection yet): `adapt`'s within-playlist
whitening is fitted on its playlists (`siamrec.adapt.fit_store`, shrinkage and projection chosen by
cross-validation on those playlists), turned into a `siamrec.projection.Projection` and written into a copy of
the model's ONNX metadata. Nothing else in the file changes; `siamrec.dim` becomes the projection's output size.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import onnx

from siamrec import constants as C
from siamrec.adapt import fit_store
from siamrec.embed import TrackEncoder, model_name_problem
from siamrec.errors import ConfigError
from siamrec.projection import Projection
from siamrec.store import Store

META_PROJECTION_FITTED_ON = "siamrec.projection_fitted_on"


@dataclass(frozen=True)
class ProjectionReport:
    output: Path
    name: str
    pooled_dim: int
    dim: int
    shrinkage: float
    projected: int
    chosen_by: str
    playlists: int
    tracks: int

    def as_dict(self) -> dict[str, object]:
        return {key: str(value) if isinstance(value, Path) else value for key, value in self.__dict__.items()}


def project_model(store: Store, model: Path, output: Path, fitted_on: str, shrinkage: float | None = None,
                  centroid_projection: bool | None = None, name: str | None = None) -> ProjectionReport:  # fmt: skip
    """Fit on `store`'s playlists and write `model` + the projection to `output` (replaced in one rename).

    The output is named `name` (default: the model's + "-projected"): its vectors differ from the model's, so a
    store must never hold both under one name."""
    info = TrackEncoder(model, device="cpu").info
    name = name or f"{info.name}-projected"
    problem = model_name_problem(name)
    if problem:
        raise ConfigError(f"--name {problem}")
    if name == info.name:
        raise ConfigError(f"--name {name} is MODEL's own name: the projected vectors differ, give it another")
    if info.projection is not None:
        raise ConfigError(f"{model.name} already ships a projection: give the model it was fitted from")
    stored = store.bind_stored_model()
    if stored != (info.name, info.dim):
        raise ConfigError(
            f"the store holds vectors of {stored[0]} ({stored[1]}-d), not of {info.name} ({info.dim}-d): "
            "embed the training playlists with this model first"
        )
    whitening = fit_store(store, shrinkage, centroid_projection).whitening
    projection = Projection.from_whitening(whitening)
    graph = onnx.load(str(model))
    metadata = {p.key: p.value for p in graph.metadata_props}
    metadata[C.META_PROJECTION] = projection.to_metadata()
    metadata[C.META_DIM] = str(projection.dim)
    metadata[C.META_NAME] = name
    metadata[META_PROJECTION_FITTED_ON] = (
        f"{fitted_on}: {whitening.playlists} playlists, {whitening.tracks} tracks, shrinkage {whitening.shrinkage:g} "
        f"({whitening.chosen_by})"
    )
    del graph.metadata_props[:]
    for key, value in metadata.items():
        graph.metadata_props.add(key=key, value=value)
    partial = output.with_name(f".{output.name}.partial")
    onnx.save(graph, str(partial))
    try:
        TrackEncoder(partial, device="cpu")  # the file must load and pass the encoder's own checks
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
    return ProjectionReport(output, name, projection.pooled_dim, projection.dim, whitening.shrinkage,
                            whitening.projected, whitening.chosen_by, whitening.playlists, whitening.tracks)
