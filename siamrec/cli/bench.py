"""`siamrec bench` (the masked-playlist protocol against chance and baselines) and `siamrec map`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich import box
from rich.table import Table
from rich.text import Text

from siamrec.bench.feedback import MAX_K, MAX_ROUNDS
from siamrec.bench.measures import LOWER_IS_BETTER, METRICS
from siamrec.bench.methods import BASELINES, audio_methods, read_library, require_bench_extra
from siamrec.bench.plots import PICTURE_SUFFIXES
from siamrec.bench.protocol import CANDIDATE_SETS, MAX_DRAWS, STRATEGIES, check_setting
from siamrec.bench.run import METRIC_CHOICES, BenchResult, SplitResult, parse_masks, run_bench
from siamrec.cli import stderr_line
from siamrec.cli.common import (
    NARROW,
    console,
    json_option,
    output_file,
    plural,
    print_failures,
    print_json,
    progress,
    quiet,
    stage,
    stage_line,
    stdout,
    store_options,
)
from siamrec.config import Settings
from siamrec.store import Store

F = TypeVar("F", bound=Callable[..., Any])
COLUMN_TITLES = {
    "reward": "reward/100",
    "r_precision": "R-prec",
    "ndcg": "NDCG",
    "clicks": "clicks",
    "hit_rate@10": "HR@10",
    "mrr": "MRR",
}


COMPACT_TITLES = {"reward": "reward"}
COMPACT_METHOD_WIDTH = 24  # "siamrec-default, adapted"


def _cell(value: tuple[float, float], metric: str) -> str:
    digits = {"reward": 1, "clicks": 2}.get(metric, 3)
    return f"{value[0]:.{digits}f} ± {value[1]:.{digits}f}"


def _best(split: SplitResult, metric: str) -> str:
    pick = min if metric in LOWER_IS_BETTER else max
    return pick(split.methods, key=lambda name: split.methods[name][metric][0])


def _table(result: BenchResult) -> Table:
    """Methods × metrics per split (mean ± std over the draws), the exact chance level on its own row."""
    table = Table(
        title=f"siamrec bench: {result.seeds} random splits, strategy {result.strategy}, "
        f"candidates {result.candidates}, {result.n_tracks} tracks",
        caption="best per split in bold; reward per 100 playlists (paper Eq. 3); clicks: lower is better",
    )
    table.add_column("mask (seeds/masked)", no_wrap=True)
    table.add_column("playlists used", no_wrap=True)
    table.add_column("method", no_wrap=True)
    for metric in METRICS:
        table.add_column(COLUMN_TITLES.get(metric, metric), justify="right", no_wrap=True)
    for split in result.splits:
        best = {metric: _best(split, metric) for metric in METRICS}
        used = f"{split.playlists_used} ({split.playlists_skipped} too short)"
        for index, (name, scores) in enumerate(split.methods.items()):
            cells = [Text(_cell(scores[m], m), style="bold" if best[m] == name else "") for m in METRICS]
            table.add_row(split.label if index == 0 else "", used if index == 0 else "", name, *cells)
        table.add_row("", "", Text("chance (exact)", style="italic"), *_chance_cells(split), end_section=True)
    return table


def _chance_cells(split: SplitResult) -> list[str]:
    return [_cell((split.chance[m], 0.0), m).split(" ±")[0] for m in METRICS]


def _compact_tables(result: BenchResult) -> list[Table]:
    """Narrow terminals and pipes: one table per split, means only (--json has the std), nothing wraps."""
    tables = []
    for split in result.splits:
        best = {metric: _best(split, metric) for metric in METRICS}
        table = Table(
            title=f"mask {split.label}: {split.playlists_used} playlists ({split.playlists_skipped} too short), "
            f"{result.n_tracks} tracks, mean of {result.seeds} splits; reward per 100 playlists",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
        )
        table.add_column("method", overflow="ellipsis", no_wrap=True, max_width=COMPACT_METHOD_WIDTH)
        for metric in METRICS:
            title = COMPACT_TITLES.get(metric) or COLUMN_TITLES.get(metric, metric)
            # The figures never shrink: a long method name is what gets cut.
            table.add_column(title, justify="right", no_wrap=True, min_width=max(len(title), 5))
        for name, scores in split.methods.items():
            cells = [Text(_cell(scores[m], m).split(" ±")[0], style="bold" if best[m] == name else "") for m in METRICS]
            table.add_row(name.replace(" (store)", ""), *cells)
        table.add_row(Text("chance (exact)", style="italic"), *_chance_cells(split))
        tables.append(table)
    return tables


def _feedback_tables(result: BenchResult) -> list[Table]:
    """bench --feedback: per split, each method round by round, with and without feedback (fits 80 columns)."""
    tables = []
    for split in result.splits:
        if not split.feedback:  # no --feedback: no table (an empty one printed its title and headers)
            continue
        table = Table(
            title=f"feedback, mask {split.label}: the listener answers the first {result.feedback_k} each round; "
            "R-precision and reward over the masked songs not found yet, with / without feedback",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
            collapse_padding=True,
        )
        table.add_column("method", overflow="ellipsis", no_wrap=True, max_width=COMPACT_METHOD_WIDTH)
        table.add_column("round", justify="right", no_wrap=True, min_width=5)
        for listener in ("", "\nno fb"):
            for title in ("found", "R-prec", "reward"):  # the figures never shrink: a long method name is cut
                table.add_column(title + listener, justify="right", no_wrap=True, min_width=len(title))
        for name, figures in split.feedback.items():
            for r in range(result.feedback_rounds + 1):
                # round 0: no answer yet, both listeners see the same first ranking
                without = _round_cells(figures, "no_feedback", r) if r else ["", "", ""]
                table.add_row(
                    name.replace(" (store)", "") if r == 0 else "",
                    str(r),
                    *_round_cells(figures, "feedback", r),
                    *without,
                    end_section=r == result.feedback_rounds,
                )
        tables.append(table)
    return tables


def _round_cells(figures: dict[str, list[tuple[float, float]]], listener: str, r: int) -> list[str]:
    """found, R-precision and reward of one listener after round r (means over the draws)."""
    found, precision, reward = (figures[f"{listener}:{name}"][r][0] for name in ("found", "r_precision", "reward"))
    return [f"{100 * found:.0f}%", f"{precision:.3f}", f"{reward:.1f}"]


def _report_skipped(result: BenchResult) -> None:
    """Tracks left out (they fail the run), then notes (not with -q: errors only)."""
    print_failures(result.skipped_tracks.items())
    for note in [] if quiet() else result.notes:
        stderr_line(f"note: {note}")


@click.command("bench")
@click.option(
    "--mask",
    default="10/5",
    show_default=True,
    help="SEEDS/MASKED: per playlist, MASKED songs are hidden and up to SEEDS of the others are the query "
    "(15/5 = keep up to 15 seeds, mask 5). Several comma-separated, or `all` for the paper's 10/10, 13/7, 15/5, "
    "18/2. Playlists shorter than MASKED + 1 are skipped and counted.",
)
@click.option(
    "--seeds",
    type=click.IntRange(1, MAX_DRAWS),
    default=10,
    show_default=True,
    help="Random splits; every figure is mean ± std over them.",
)
@click.option(
    "--strategy",
    type=click.Choice(STRATEGIES),
    default="mean",
    show_default=True,
    help="mean: cosine to the seeds' mean. best-score: best cosine to any seed (Qdrant's BEST_SCORE "
    "recommend strategy with positive examples only).",
)
@click.option(
    "--candidates",
    type=click.Choice(CANDIDATE_SETS),
    default="masked",
    show_default=True,
    help="masked: all masked songs of all playlists (the paper). library: every track in the store.",
)
@click.option(
    "--baseline",
    "baselines",
    default="random,mfcc",
    show_default=True,
    help=f"Comma-separated baselines scored on the same splits ({', '.join(BASELINES)}), or none.",
)
@click.option(
    "--musicnn",
    "musicnn_path",
    envvar="SIAMREC_MUSICNN",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="ONNX file of the musicnn baseline (default: the one shipped with siamrec; or SIAMREC_MUSICNN).",
)
@click.option(
    "--compare-model",
    "model_paths",
    multiple=True,
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Another siamrec ONNX model to score beside the store's (repeatable); tracks are embedded from their "
    "audio and cached (the store's own vectors are always scored).",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(path_type=Path),
    callback=output_file("--plot", PICTURE_SUFFIXES),
    help="Also draw the metrics to this picture (.png, .svg or .pdf).",
)
@click.option(
    "--rng-seed",
    type=click.IntRange(0, 2**63 - 1),
    default=0,
    show_default=True,
    help="Seed of the random splits (same seed, same splits).",
)
@click.option(
    "--metric",
    type=click.Choice(METRIC_CHOICES),
    default="both",
    show_default=True,
    help="plain: cosine on the vectors. adapted: cosine after a within-playlist whitening fitted on each "
    "split's seed tracks only (never the masked songs). both: every method both ways, same splits.",
)
@click.option(
    "--feedback",
    "feedback_rounds",
    type=click.IntRange(1, MAX_ROUNDS),
    metavar="ROUNDS",
    help="Also simulate a listener for ROUNDS rounds: each round they answer the first --feedback-k "
    "recommendations of every playlist (the masked songs among them accepted, the others rejected) and the "
    "next ranking learns from it; beside it, the same listener without feedback (the first ranking, paged on). "
    "Each round is scored on the masked songs that listener has not found yet (R-precision with R = the songs "
    "left; playlists with none left drop out), and `found` is the share of masked songs accepted so far.",
)
@click.option(
    "--feedback-k",
    type=click.IntRange(1, MAX_K),
    metavar="K",
    default=10,
    show_default=True,
    help="Recommendations the simulated listener answers per round (with --feedback).",
)
@store_options(model_option=False)
@json_option
def bench(
    mask: str,
    seeds: int,
    strategy: str,
    candidates: str,
    baselines: str,
    musicnn_path: Path | None,
    model_paths: tuple[Path, ...],
    metric: str,
    plot_path: Path | None,
    rng_seed: int,
    feedback_rounds: int | None,
    feedback_k: int,
    settings: Settings,
    as_json: bool,
) -> None:
    """Score the store's vectors on the paper's masked-playlist protocol, beside chance and baselines."""
    masks = parse_masks(mask)
    for max_seeds, n_masked in masks:
        check_setting(n_masked, max_seeds, seeds, candidates)
    chosen = [] if baselines.strip().lower() == "none" else [b.strip() for b in baselines.split(",") if b.strip()]
    methods = audio_methods(chosen, musicnn_path, list(model_paths), settings.device)
    if plot_path is not None:
        require_bench_extra(("matplotlib",), "--plot")
    feedback = (feedback_rounds, feedback_k) if feedback_rounds else None
    with Store.open(settings) as store:
        library = read_library(store)
    cache = settings.cache_dir / "bench"
    scoring = f"bench: scoring {plural(seeds, 'random split')} of {plural(len(masks), 'mask')}"
    if methods:
        with progress(transient=True) as bar:
            total = len(library.records)
            stage_line(f"bench: embedding the audio of {plural(total, 'track')} ({', '.join(m.name for m in methods)})")
            task, done = bar.add_task("embedding audio", total=total), 0

            def advance(n: int) -> None:
                nonlocal done
                bar.advance(task, n)
                done += n
                if n and done == total:  # the figures come next, without a bar
                    stage_line(scoring)

            result = run_bench(library, masks, methods, cache, chosen, seeds, strategy, candidates, rng_seed,
                               on_progress=advance, metric=metric, feedback=feedback)  # fmt: skip
    else:
        with stage(scoring):
            result = run_bench(library, masks, methods, cache, chosen, seeds, strategy, candidates, rng_seed,
                               metric=metric, feedback=feedback)  # fmt: skip
    if plot_path is not None:
        from siamrec.bench.plots import plot_bench

        with stage(f"bench: drawing {plot_path}"):
            plot_bench(result, plot_path)
    if as_json:
        print_json(result.as_dict() | ({"plot": str(plot_path)} if plot_path else {}))
    else:
        if stdout.width < NARROW:
            for table in _compact_tables(result):
                stdout.print(table)
        else:
            stdout.print(_table(result))
        for table in _feedback_tables(result):
            stdout.print(table)
        if plot_path is not None:
            console.print(f"plot written to {plot_path}")
    _report_skipped(result)
    if result.skipped_tracks:
        sys.exit(1)


@click.command("map")
@click.option(
    "--png",
    "png_path",
    required=True,
    type=click.Path(path_type=Path),
    callback=output_file("--png", PICTURE_SUFFIXES),
    help="Picture to write (.png, .svg or .pdf).",
)
@click.option(
    "--method",
    type=click.Choice(["tsne", "pca"]),
    default="tsne",
    show_default=True,
    help="tsne: t-SNE on cosine distances (neighbourhoods, like the paper's figures); pca: fast, linear.",
)
@click.option("--rng-seed", default=0, show_default=True, help="Seed of t-SNE.")
@store_options
@json_option
def map_command(png_path: Path, method: str, rng_seed: int, settings: Settings, as_json: bool) -> None:
    """Draw a 2-D map of the library's track vectors, coloured by playlist."""
    require_bench_extra(("matplotlib", "sklearn"), "map")
    from siamrec.bench.plots import embed_2d, playlist_labels, plot_map

    with Store.open(settings) as store:
        library = read_library(store, need_playlists=False)
    with stage(f"map: {method} of {plural(len(library.records), 'track')}"):
        coords = embed_2d(library.vectors, method, rng_seed)
    labels, names = playlist_labels(len(library.records), library.playlists, library.playlist_names)
    title = f"{library.model[0]}: {len(library.records)} tracks ({method})"
    plot_map(coords, labels, names, png_path, title)
    if as_json:
        print_json({"path": str(png_path), "method": method, "tracks": len(library.records), "playlists": names})
    else:
        stdout.print(f"map of {len(library.records)} tracks written to {png_path}")
