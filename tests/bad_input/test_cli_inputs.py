"""What siamrec survives at its command line: outside text shown literally, every bad option or output path
refused in one line before any work, and the store (every point's vector and payload) left as it was."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

from tests.cli import assert_one_error_line, invoke, run_siamrec
from tests.stores import dump_store

MARKUP_NAMES = ("[bold]Loud :smile:", "[/]odd [red")


def test_markup_in_names_is_shown_literally(
    store_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from siamrec.cli import common

    monkeypatch.setattr(common.stdout, "width", 240)  # wide enough that no name wraps
    done = invoke("playlist", "list")
    assert done.returncode == 0, done.stderr
    for name in MARKUP_NAMES:
        assert name in done.stdout
    found = invoke("playlist", "list", "--name", "[BOLD]", "--limit", "1")  # a search for markup finds it as text
    assert found.returncode == 0 and MARKUP_NAMES[0] in found.stdout and MARKUP_NAMES[1] not in found.stdout
    found = invoke("playlist", "list", "--words", "ODD", "--json")  # by a word inside the name, all of them
    assert found.returncode == 0 and [p["name"] for p in json.loads(found.stdout)] == [MARKUP_NAMES[1]]
    for undecodable, names in ((b"od\xff", [MARKUP_NAMES[1]]), (b"\xff", [])):  # not UTF-8: a byte is no letter
        found = run_siamrec("playlist", "list", "--words", undecodable, "--json")
        assert found.returncode == 0 and "Traceback" not in found.stderr, found.stderr
        assert [p["name"] for p in json.loads(found.stdout)] == names
    for name in MARKUP_NAMES:
        done = invoke("playlist", "show", name)
        assert done.returncode == 0 and name in done.stdout, done.stderr
        done = invoke("recommend", "--playlist", name, "--include-warm", "-k", "3")
        assert done.returncode == 0 and name in done.stdout, done.stderr


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("bench", "--rng-seed", "-1"), "--rng-seed"),
        (("bench", "--seeds", "0"), "--seeds"),
        (("bench", "--seeds", "1000000000"), "--seeds"),
        (("bench", "--mask", "99999999/5"), "--mask"),
        (("bench", "--mask", "5/" + "9" * 5000), "--mask"),
        (("bench", "--mask", "15/100000", "--baseline", "none"), "--mask"),
        (("bench", "--plot", "scores.txt"), "--plot"),
        (("bench", "--compare-model", "no-such.onnx"), "--compare-model"),
        (("recommend", "--track", "x" * 5000 + ".ogg"), "neither an audio file"),
        (("info", "--qdrant-url", "ftp://localhost:6333"), "http"),
        (("info", "--qdrant-url", "localhost:6333"), "http"),
        (("info", "--qdrant-url", "http://bad host:6333"), "host"),
        (("info", "--qdrant-url", "http://localhost:99999"), "port"),
        (("info", "--qdrant-url", "http://localhost:port"), "port"),
        (("playlist", "list", "--limit", "0"), "--limit"),
        (("playlist", "list", "--limit", "9" * 5000), "--limit"),
        (("sync-playlists", "--m3u", "x.m3u", "--audio-url", "ftp://example.org/{id}.ogg"), "--audio-url"),
        (("sync-playlists", "--m3u", "x.m3u", "--audio-url", "http://example.org/{nope}.ogg"), "--audio-url"),
    ],
)
def test_bad_option_is_one_line_and_store_unchanged(
    store_home: Path, args: tuple[str, ...], fragment: str
) -> None:
    before = dump_store(store_home)
    done = invoke(*args)
    assert_one_error_line(done, fragment)
    assert dump_store(store_home) == before


@pytest.mark.parametrize("kind", ["missing folder", "a folder", "wrong suffix", "read-only folder"])
@pytest.mark.parametrize("option", ["--m3u", "--plot", "--png", "-o"])
def test_output_path_is_checked_before_any_work(
    store_home: Path, tmp_path: Path, option: str, kind: str
) -> None:
    suffix = {"--m3u": ".m3u", "-o": ".onnx"}.get(option, ".png")
    if kind == "read-only folder":
        if os.geteuid() == 0:
            pytest.skip("root writes anywhere")
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o555)
        target = folder / f"out{suffix}"
    else:
        target = {
            "missing folder": tmp_path / "no" / "such" / f"out{suffix}",
            "a folder": tmp_path,
            "wrong suffix": tmp_path / "out.txt",
        }[kind]
    checkpoint = tmp_path / "last.pt"
    checkpoint.write_bytes(b"not really")
    command = {
        "--m3u": ("recommend", "--playlist", MARKUP_NAMES[0], "--include-warm", "--m3u", str(target)),
        "--plot": ("bench", "--mask", "2/2", "--baseline", "mfcc", "--plot", str(target)),
        "--png": ("map", "--png", str(target)),
        "-o": ("export", str(checkpoint), "-o", str(target)),
    }[option]
    before = dump_store(store_home)
    cache = store_home / "cache" / "bench"
    done = invoke(*command)
    assert_one_error_line(done)
    assert dump_store(store_home) == before
    assert not cache.exists(), "the bench ran before its output path was checked"


def test_special_filesystem_write_is_one_line(store_home: Path) -> None:
    done = invoke("recommend", "--playlist", MARKUP_NAMES[0], "--include-warm", "--m3u", "/proc/siamrec.m3u"
    )
    assert_one_error_line(done)


def test_absurd_mask_allocates_nothing_big(store_home: Path) -> None:
    """100,000 seeds per playlist is clipped to the longest playlist, not a terabyte array."""
    done = invoke("bench", "--mask", "100000/1", "--seeds", "2", "--baseline", "none", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["splits"][0]["playlists_used"] == 2


def test_truncated_vector_in_the_bench_cache_is_recomputed(
    store_home: Path
) -> None:
    args = ("bench", "--mask", "2/2", "--seeds", "2", "--baseline", "mfcc", "--json")
    done = invoke(*args)
    assert done.returncode == 0, done.stderr
    cached = sorted((store_home / "cache" / "bench").rglob("*.npy"))
    assert cached
    cached[0].write_bytes(cached[0].read_bytes()[:40])
    again = invoke(*args)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["splits"] == json.loads(done.stdout)["splits"]
    assert np.load(cached[0]).ndim == 1


def test_scores_are_cosines_for_both_strategies(store_home: Path) -> None:
    """best-score shows the best cosine to a seed (its first reason), not Qdrant's sigmoid of it."""
    for strategy in ("mean", "best-score"):
        done = invoke("recommend", "--playlist", MARKUP_NAMES[0], "--include-warm", "--strategy", strategy, "--json"
        )
        assert done.returncode == 0, done.stderr
        results = json.loads(done.stdout)["results"]
        assert results and all(-1.0 <= r["score"] <= 1.0 for r in results)
        if strategy == "best-score":
            assert all(r["score"] == pytest.approx(r["because_of"][0]["similarity"], abs=1e-5) for r in results)


def test_narrow_pipe_tables_do_not_wrap(store_home: Path) -> None:
    """At 80 columns through a pipe, each result stays on one line (cut with … rather than wrapped)."""
    env = {**os.environ, "COLUMNS": "80", "SIAMREC_HOME": str(store_home)}
    done = run_siamrec("recommend", "--playlist", MARKUP_NAMES[0], "--include-warm", "-k", "3", env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert sum(1 for line in lines if line.strip()[:1].isdigit()) == 3  # three results, three lines
    done = run_siamrec("bench", "--mask", "2/2", "--seeds", "2", "--baseline", "random", env=env)
    assert done.returncode == 0, done.stderr
    assert all(len(line) <= 80 for line in done.stdout.splitlines())
    assert "chance (exact)" in done.stdout
    # Column titles and figures never shrink; only a method name longer than the column may be cut.
    assert all(title in done.stdout for title in ("reward", "R-prec", "NDCG", "clicks", "HR@10", "MRR"))
    assert "…" not in done.stdout


def test_compact_bench_table_keeps_every_figure_whole_at_80_columns() -> None:
    """With the demo's method names (store models, adapted rows), the long names are cut, never the figures."""
    from rich.console import Console

    from siamrec.bench.measures import METRICS
    from siamrec.bench.run import BenchResult, SplitResult
    from siamrec.cli.bench import _compact_tables

    names = ["siamrec-default (store)", "siamrec-default (store), adapted", "musicnn, adapted", "random"]
    scores = {name: {m: (0.8766, 0.01) for m in METRICS} for name in names}
    split = SplitResult(15, 5, 4, 0, scores, {m: 0.25 for m in METRICS})
    result = BenchResult("mean", "masked", 10, 96, 4, [split], {}, [])
    console = Console(width=80, record=True, file=io.StringIO())
    for table in _compact_tables(result):
        console.print(table)
    out = console.export_text()
    assert all(len(line) <= 80 for line in out.splitlines())
    assert all(title in out for title in ("reward", "R-prec", "NDCG", "clicks", "HR@10", "MRR"))
    assert out.count("0.877") == 4 * 4  # R-precision, NDCG, HR@10 and MRR of every method, uncut
    assert "siamrec-default, adapted" in out


def test_help_texts_and_plurals() -> None:
    done = invoke("recommend", "--help")
    assert "How many results" in done.stdout and "cosine similarity" in done.stdout
    done = invoke("export", "--help")
    assert "ONNX file to write" in done.stdout
    done = invoke("bench", "--help")
    assert "--compare-model" in done.stdout and "--model " not in done.stdout


def test_bench_progress_advances_per_track(store_home: Path, tmp_path: Path) -> None:
    """Not stuck at 0 and then jumping by a batch: one step per decoded track, ending at the total."""
    from siamrec.bench.methods import embed_audio_methods, mfcc_method, read_library
    from siamrec.config import resolve_settings
    from siamrec.store import Store

    with Store.open(resolve_settings()) as store:
        records = read_library(store).records
    steps: list[int] = []
    embed_audio_methods(records, [mfcc_method()], tmp_path / "cache", steps.append)
    assert steps[0] == 0 and set(steps[1:]) == {1} and sum(steps) == len(records)


def test_tex_like_names_draw_literally(
    store_home: Path, tmp_path: Path, library_files: dict[str, Path]
) -> None:
    """matplotlib would parse `$…$` in a legend as TeX (and fail on bad TeX): names stay data."""
    m3u = tmp_path / "tex.m3u"
    m3u.write_text("#PLAYLIST:$\\frac{$ money\n" + "\n".join(str(f) for f in sorted(library_files.values())[:3]))
    done = invoke("sync-playlists", "--m3u", str(m3u))
    assert done.returncode == 0, done.stderr
    done = invoke("map", "--png", str(tmp_path / "map.png"), "--method", "pca")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "map.png").stat().st_size > 0


def test_missing_bench_extra_is_one_line(
    store_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A core install (make demo before it installed siamrec[bench]) gets one line, not a librosa traceback."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "librosa" else real(name, *a))
    done = invoke("bench", "--mask", "2/2")
    assert_one_error_line(done, "siamrec[bench]")
