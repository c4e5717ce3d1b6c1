"""Pictures of a bench (metrics per method with error bars and the chance line) and of a library (a 2-D map).

matplotlib runs on its Agg backend: files only, no display needed, safe on servers and in tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from siamrec.bench.measures import METRICS
from siamrec.bench.run import BenchResult
from siamrec.errors import ConfigError
from siamrec.paths import check_output_file, write_error

MAP_METHODS = ("tsne", "pca")
PICTURE_SUFFIXES = (".pdf", ".png", ".svg")
MAP_COLOURS = [i for i in range(20) if i not in (14, 15)]  # tab20 without its greys (grey = no playlist)
MAP_MARKERS = ("o", "^", "s")
MAP_MAX_PLAYLISTS = len(MAP_COLOURS) * len(MAP_MARKERS)  # colour × marker pairs; smaller playlists are grey
METRIC_TITLES = {
    "reward": "reward per 100 playlists",
    "r_precision": "R-precision",
    "ndcg": "NDCG",
    "clicks": "clicks (lower is better)",
    "mrr": "MRR",
}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["text.parse_math"] = False  # playlist and model names are data: "$" is not TeX
    import matplotlib.pyplot as plt

    return plt


def _save(figure: Any, path: Path) -> Path:
    """Write the figure (the CLI checked the path before the work; this re-check costs nothing)."""
    path = check_output_file(Path(path), "picture", PICTURE_SUFFIXES)
    try:
        figure.savefig(path, dpi=120, bbox_inches="tight")
    except OSError as exc:
        raise write_error(path, exc) from exc
    finally:
        _pyplot().close(figure)
    return path


def plot_bench(result: BenchResult, path: Path) -> Path:
    """Per split, a 2 × 3 grid of metrics: bars = mean over draws, error bars = std, dashed line = exact chance."""
    plt = _pyplot()
    columns = 3
    rows_per_split = -(-len(METRICS) // columns)
    rows = rows_per_split * len(result.splits)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.4 * rows), squeeze=False)
    for index, split in enumerate(result.splits):
        names = list(split.methods)
        colours = plt.get_cmap("tab10")(np.arange(len(names)) % 10)
        panels = axes[index * rows_per_split : (index + 1) * rows_per_split].ravel()
        for axis, metric in zip(panels, METRICS, strict=False):
            means = [split.methods[m][metric][0] for m in names]
            stds = [split.methods[m][metric][1] for m in names]
            axis.bar(np.arange(len(names)), means, yerr=stds, color=colours, capsize=3)
            axis.axhline(split.chance[metric], color="black", linestyle="--", linewidth=1, label="chance (exact)")
            axis.set_xticks(np.arange(len(names)), names, rotation=20, ha="right", fontsize=8)
            axis.set_title(f"{METRIC_TITLES.get(metric, metric.replace('_', ' '))} · mask {split.label}", fontsize=9)
        for axis in panels[len(METRICS) :]:
            axis.set_visible(False)
        panels[0].legend(fontsize=8)
    figure.suptitle(
        f"{result.n_tracks} tracks, {result.seeds} random splits (mean ± std), strategy {result.strategy}, "
        f"candidates {result.candidates}",
        fontsize=10,
    )
    figure.tight_layout()
    return _save(figure, path)


def embed_2d(vectors: np.ndarray, method: str = "tsne", seed: int = 0) -> np.ndarray:
    """`[N, D]` → `[N, 2]` by t-SNE on cosine distances (what the store ranks by) or by PCA."""
    if method not in MAP_METHODS:
        raise ConfigError(f"unknown map method {method!r}: choose {' or '.join(MAP_METHODS)}")
    vectors = np.asarray(vectors, dtype=np.float32)
    if len(vectors) < 3:
        raise ConfigError(f"a map needs at least 3 tracks with vectors; the store has {len(vectors)}")
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(vectors)
    from sklearn.manifold import TSNE

    perplexity = float(min(30, (len(vectors) - 1) / 3))
    tsne = TSNE(n_components=2, metric="cosine", init="pca", perplexity=perplexity, random_state=seed)
    return tsne.fit_transform(vectors)


def playlist_labels(n_tracks: int, playlists: list[np.ndarray], names: list[str]) -> tuple[np.ndarray, list[str]]:
    """Colour index per track (−1 = none): the largest playlists first, a track takes its largest playlist."""
    order = np.argsort([-len(p) for p in playlists], kind="stable")[:MAP_MAX_PLAYLISTS]
    labels = np.full(n_tracks, -1, dtype=np.int64)
    for colour in range(len(order) - 1, -1, -1):  # larger playlists painted last, so they win
        labels[playlists[order[colour]]] = colour
    return labels, [names[i] for i in order]


def plot_map(coords: np.ndarray, labels: np.ndarray, names: list[str], path: Path, title: str) -> Path:
    """Scatter of the tracks coloured by playlist, legend outside the axes."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(10, 7))
    other = labels < 0
    if other.any():
        axis.scatter(*coords[other].T, s=10, c="0.6", marker="x", linewidths=0.8, label="other / no playlist")
    palette = plt.get_cmap("tab20")
    for index, name in enumerate(names):
        chosen = labels == index
        colour = palette(MAP_COLOURS[index % len(MAP_COLOURS)])
        marker = MAP_MARKERS[index // len(MAP_COLOURS) % len(MAP_MARKERS)]
        axis.scatter(*coords[chosen].T, s=16, color=colour, marker=marker, label=name)
    axis.set_title(title)
    axis.set_xticks([])
    axis.set_yticks([])
    axis.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=1.5)
    return _save(figure, path)
