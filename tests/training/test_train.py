"""Training on real (synthesised) audio: data sources, cache, loss, collapse monitor, resume, export, CLI."""

from __future__ import annotations

import csv
import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from siamrec import constants as C
from siamrec.errors import ConfigError
from siamrec.testing import chord, drums, noise, write_audio
from siamrec.training.config import TrainConfig
from siamrec.training.data import (
    build_cache,
    corpus_tracks,
    evaluation_windows,
    fma_tracks,
    folder_tracks,
    open_cached,
    random_crop,
    split_by_playlist,
)
from siamrec.training.nets import ModelConfig, load_checkpoint
from siamrec.training.trainer import Trainer, collapse_std, simsiam_loss
from siamrec.training.validation import track_vectors, window_embeddings
from tests.cli import assert_one_error_line, invoke

torch.set_num_threads(1)
SECONDS = 4.0


def _library(root: Path) -> Path:
    """Three "playlists" (sub-folders) of clearly different music, three tracks each, plus one broken file."""
    makers = {
        "chords": [lambda i: chord(SECONDS, 220.0 * 1.12**i), lambda i: chord(SECONDS, 300.0 + 40 * i, bright=True)],
        "drums": [lambda i: drums(SECONDS, 90.0 + 15 * i, seed=i)],
        "noise": [lambda i: noise(SECONDS, seed=i, level=0.05 + 0.05 * i)],
    }
    for folder, options in makers.items():
        for i in range(3):
            write_audio(root / folder / f"{folder}{i}.flac", options[i % len(options)](i))
    (root / "noise" / "broken.wav").write_bytes(b"RIFF not really audio")
    return root


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _library(tmp_path_factory.mktemp("library"))


@pytest.fixture(scope="module")
def cached(library: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], list[str]]:
    _, files, skipped = build_cache(folder_tracks(library), tmp_path_factory.mktemp("cache"))
    return files, skipped


def _config(**overrides: object) -> TrainConfig:
    base = dict(model=ModelConfig("cnn", 4, 32, 8), batch_size=6, crops_per_track=2, epochs=2, workers=0,
                device="cpu", augment=("effects", "spec"), optimizer="adam", base_lr=3e-3)  # fmt: skip
    return TrainConfig(**{**base, **overrides})  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- data
def test_folder_tracks_groups_by_sub_folder(library: Path) -> None:
    tracks = folder_tracks(library)
    assert len(tracks.tracks) == 10
    assert sorted(tracks.playlists) == ["chords", "drums", "noise"]
    assert len(tracks.playlists["noise"]) == 4


def test_cache_decodes_once_and_skips_bad_files(library: Path, cached: tuple[list[Path], list[str]]) -> None:
    files, skipped = cached
    assert len(files) == 9 and len(skipped) == 1 and "broken.wav" in skipped[0]
    signal = open_cached(files)[0]
    assert isinstance(signal, np.memmap) and signal.dtype == np.float16
    assert signal.shape[0] == pytest.approx(SECONDS * C.SAMPLE_RATE, abs=2)
    mtimes = [f.stat().st_mtime_ns for f in files]
    _, again, _ = build_cache(folder_tracks(library), files[0].parent)
    assert again == files and [f.stat().st_mtime_ns for f in again] == mtimes


def test_random_crop_and_short_signals() -> None:
    rng = np.random.default_rng(0)
    crop = random_crop(np.arange(100_000, dtype=np.float64), rng)
    assert crop.shape == (C.WINDOW_SAMPLES,) and crop.dtype == np.float32
    assert np.all(np.diff(crop) == 1)  # one contiguous span
    assert random_crop(np.ones(1000, dtype=np.float16), rng).shape == (C.WINDOW_SAMPLES,)


def test_split_holds_out_whole_playlists(library: Path) -> None:
    tracks = folder_tracks(library)
    train, val, held = split_by_playlist(tracks, 0.34, seed=0)
    assert len(held) == 1 and list(val.playlists) == held
    assert {t.path for t in train.tracks}.isdisjoint(t.path for t in val.tracks)
    assert len(train.tracks) + len(val.tracks) == len(tracks.tracks)
    with pytest.raises(ConfigError):
        split_by_playlist(tracks, 1.0, seed=0)


def test_corpus_and_fma_layouts(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    write_audio(corpus / "audio/a/x.ogg", chord(2.0))
    write_audio(corpus / "audio/b/y.ogg", drums(2.0))
    playlists = [{"name": name, "pid": i, "tracks": [{"track_uri": f"local:track:{name}"}]}
                 for i, name in enumerate("ab")]  # fmt: skip
    (corpus / "playlists.json").write_text(json.dumps({"info": {}, "playlists": playlists}))
    (corpus / "tracks.tsv").write_text(
        "track_uri\tpath\tduration_ms\tplaylist\tpackage\tsource\n"
        "local:track:a\taudio/a/x.ogg\t2000\ta\tp\ts\nlocal:track:b\taudio/b/y.ogg\t2000\tb\tp\ts\n"
    )
    tracks = corpus_tracks(corpus)
    assert [t.path.name for t in tracks.tracks] == ["x.ogg", "y.ogg"] and tracks.playlists == {"a": [0], "b": [1]}

    fma = tmp_path / "fma"
    write_audio(fma / "fma_small/000/000002.wav", chord(2.0))
    (fma / "fma_small/000/000002.wav").rename(fma / "fma_small/000/000002.mp3")
    (fma / "fma_metadata").mkdir()
    (fma / "fma_metadata/tracks.csv").write_text(",track,track\n,genre_top,title\ntrack_id,,\n2,Hip-Hop,Food\n")
    tracks = fma_tracks(fma)
    assert tracks.tracks[0].uri == "fma:track:2" and tracks.playlists == {"Hip-Hop": [0]}
    with pytest.raises(ConfigError):
        corpus_tracks(tmp_path / "missing")


# ---------------------------------------------------------------------------------------------- training
def test_loss_decreases_on_real_audio(cached: tuple[list[Path], list[str]], tmp_path: Path) -> None:
    trainer = Trainer(_config(epochs=4, crops_per_track=4, base_lr=1e-2), tmp_path, cached[0])
    history = trainer.fit()
    losses = [row["loss"] for row in history]
    assert losses[-1] < losses[0] - 0.1, losses
    with open(tmp_path / "log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4] and all(float(r["collapse"]) > 0 for r in rows)


def test_collapse_monitor_detects_a_forced_collapse() -> None:
    torch.manual_seed(0)
    spread = torch.randn(64, 128)
    assert collapse_std(spread) == pytest.approx(1.0, abs=0.1)
    collapsed = torch.randn(1, 128).expand(64, -1) + 1e-4 * torch.randn(64, 128)
    assert collapse_std(collapsed) < 0.01
    # and the loss such a collapse reaches is the minimum, which is why the loss alone cannot reveal it
    assert float(simsiam_loss(collapsed, collapsed, collapsed, collapsed)) == pytest.approx(-1.0, abs=1e-4)


def test_collapse_monitor_sees_a_collapsed_network(cached: tuple[list[Path], list[str]], tmp_path: Path) -> None:
    trainer = Trainer(_config(epochs=1, augment=()), tmp_path, cached[0])
    with torch.no_grad():
        for layer in trainer.model.projector:
            if isinstance(layer, torch.nn.Linear):
                layer.weight.zero_()
        trainer.model.projector[-1].running_var.fill_(1.0)
    row = trainer.run_epoch()
    assert row["collapse"] < 0.05


def test_resume_matches_an_uninterrupted_run(cached: tuple[list[Path], list[str]], tmp_path: Path) -> None:
    config = _config(epochs=2, augment=("effects", "mix", "spec"), optimizer="sgd", base_lr=0.5)
    straight = Trainer(config, tmp_path / "straight", cached[0])
    straight.fit()
    first = Trainer(config, tmp_path / "split", cached[0])

    def interrupt(row: dict[str, float]) -> None:
        raise KeyboardInterrupt  # Ctrl-C right after the first epoch's checkpoint

    with pytest.raises(KeyboardInterrupt):
        first.fit(on_epoch=interrupt)
    resumed = Trainer(config, tmp_path / "split", cached[0])
    resumed.resume()
    resumed.fit()
    for key, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, msg=key)
    assert [r["loss"] for r in resumed.state.history] == [r["loss"] for r in straight.state.history]


def test_interrupt_leaves_a_usable_checkpoint(cached: tuple[list[Path], list[str]], tmp_path: Path) -> None:
    trainer = Trainer(_config(epochs=3), tmp_path, cached[0])

    def stop(loss: float, collapse: float) -> None:
        if trainer.state.step == 4:  # one step into the second epoch, `kill` (SIGTERM) takes Ctrl-C's path
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(KeyboardInterrupt):
        trainer.fit(on_step=stop)
    checkpoint = load_checkpoint(str(tmp_path / "last.pt"))
    assert checkpoint["epoch"] == 1 and checkpoint["step"] == 3  # 3 steps per epoch: epoch 2 re-runs
    torch.testing.assert_close(checkpoint["model"]["projector.0.weight"], trainer.model.projector[0].weight)


def test_trained_checkpoint_exports_with_parity(cached: tuple[list[Path], list[str]], tmp_path: Path) -> None:
    from siamrec.embed import TrackEncoder
    from siamrec.training.export.onnx_export import export_checkpoint

    trainer = Trainer(_config(epochs=1), tmp_path, cached[0], trained_on="test library")
    trainer.fit()
    assert trainer.state.stats is not None  # standardisation measured on the training tracks
    report = export_checkpoint(tmp_path / "last.pt", tmp_path / "model.onnx")
    # learned | timbre per window; the track vector pools them as mean and spread (the run measured its spread)
    assert report.max_abs_diff <= report.tolerance and report.dim == 2 * (64 + 2 * C.N_MELS)
    encoder = TrackEncoder(tmp_path / "model.onnx", device="cpu")
    assert encoder.info.pooling == "mean+std" and encoder.window_dim == 64 + 2 * C.N_MELS
    windows = np.stack([random_crop(s, np.random.default_rng(0)) for s in open_cached(cached[0][:3])])
    onnx_out = encoder.embed_windows(windows)
    model, stats = trainer.model.eval(), trainer.state.stats
    with torch.no_grad():
        raw = model.backbone(model.frontend(torch.from_numpy(windows)))
    expected = (raw - stats["mean"]) / stats["std"] / 8.0  # standardised on the training tracks, scaled 1/√64
    np.testing.assert_allclose(onnx_out[:, :64], expected.numpy(), atol=1e-3, rtol=1e-3)
    # the pooled track vectors of the ONNX path are the ones training validates with
    signals = open_cached(cached[0][:4])
    per_track = [evaluation_windows(s) for s in signals]
    embeddings, owner = window_embeddings(trainer.model, signals, torch.device("cpu"), C.WINDOWS_PER_TRACK)
    expected_tracks = track_vectors(embeddings, owner, stats, timbre=True, pooling="mean+std")
    np.testing.assert_allclose(encoder.track_vectors(per_track), expected_tracks, atol=1e-4)
    learned_only = export_checkpoint(tmp_path / "last.pt", tmp_path / "learned.onnx", timbre=False)
    assert learned_only.dim == 2 * 64
    plain = export_checkpoint(tmp_path / "last.pt", tmp_path / "mean.onnx", pooling="mean")
    assert plain.dim == 64 + 2 * C.N_MELS
    assert TrackEncoder(tmp_path / "mean.onnx", device="cpu").info.pooling == "mean"
    # `siamrec export --spread-weight`: stored in the file; out of range is one usage error, no file
    weighted = tmp_path / "weighted.onnx"
    invoke("export", str(tmp_path / "last.pt"), "-o", str(weighted), "--spread-weight", "0.5", check=True)
    assert TrackEncoder(weighted, device="cpu").info.spread_weight == 0.5
    refused = invoke("export", str(tmp_path / "last.pt"), "-o", str(tmp_path / "z.onnx"), "--spread-weight", "0")
    assert refused.returncode == 2 and not (tmp_path / "z.onnx").exists()
    assert_one_error_line(refused, "--spread-weight")


def test_distillation_learns_the_teacher_and_ships_as_a_third_part(
    cached: tuple[list[Path], list[str]], tmp_path: Path
) -> None:
    """`--teacher`: musicnn's track embeddings are computed once, the head's loss falls, the exported vector is
    [learned | timbre | distilled] with parity, and the distilled part is the head's standardised output."""
    from siamrec.bench.methods import MUSICNN_ONNX
    from siamrec.embed import TrackEncoder
    from siamrec.training.export.onnx_export import META_PARTS, export_checkpoint

    config = _config(epochs=4, crops_per_track=4, augment=("spec",), teachers=(str(MUSICNN_ONNX),), base_lr=1e-2)
    trainer = Trainer(config, tmp_path, cached[0])
    history = trainer.fit()
    targets = trainer.state.teacher_targets
    assert targets is not None and targets.shape == (9, 200)
    # z-scored over the windows, averaged per track: tracks of one kind agree more with each other than across
    unit = torch.nn.functional.normalize(targets, dim=1)
    similarity = unit @ unit.T
    assert float(similarity[0, 1]) > float(similarity[0, 8])  # chords vs chords, chords vs noise
    distill = [row["distill_loss"] for row in history]
    assert distill[-1] < distill[0] - 0.05, distill
    report = export_checkpoint(tmp_path / "last.pt", tmp_path / "model.onnx")
    assert report.dim == 2 * (64 + 2 * C.N_MELS + 200) and report.max_abs_diff <= report.tolerance
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "model.onnx")).metadata_props}
    assert meta[META_PARTS] == "learned:64,timbre:192,distilled:200"
    windows = np.stack([random_crop(s, np.random.default_rng(1)) for s in open_cached(cached[0][:3])])
    onnx_out = TrackEncoder(tmp_path / "model.onnx", device="cpu").embed_windows(windows)
    model, stats = trainer.model.eval(), trainer.state.stats
    with torch.no_grad():
        head = model.distiller(model.backbone(model.frontend(torch.from_numpy(windows))))
    expected = (head - stats["distilled_mean"]) / stats["distilled_std"] / 200**0.5
    np.testing.assert_allclose(onnx_out[:, -200:], expected.numpy(), atol=1e-3, rtol=1e-3)
    # a resumed run reuses the stored targets instead of running the teacher again
    resumed = Trainer(config, tmp_path, cached[0])
    resumed.resume()
    torch.testing.assert_close(resumed.state.teacher_targets, targets)


def test_two_teachers_give_one_target_side_by_side(cached: tuple[list[Path], list[str]], tmp_path: Path) -> None:
    """`--teacher` twice (musicnn's MSD and MagnaTagATune models): the head's target is both teachers' z-scored
    track embeddings side by side, the head has their summed size, and a checkpoint of one `teacher` still reads."""
    from siamrec.bench.methods import MUSICNN_MTT_ONNX, MUSICNN_ONNX

    both = Trainer(_config(teachers=(str(MUSICNN_ONNX), str(MUSICNN_MTT_ONNX))), tmp_path / "both", cached[0])
    assert both.config.model.distill_dim == 400 and both.teacher is not None
    both.prepare_teacher()
    targets = both.state.teacher_targets
    assert targets is not None and targets.shape == (9, 400)
    alone = Trainer(_config(teachers=(str(MUSICNN_ONNX),)), tmp_path / "alone", cached[0])
    alone.prepare_teacher()
    torch.testing.assert_close(targets[:, :200], alone.state.teacher_targets)
    assert not torch.allclose(targets[:, 200:], targets[:, :200], atol=0.1)  # the second teacher hears otherwise
    old = {k: v for k, v in _config().to_dict().items() if k != "teachers"} | {"teacher": str(MUSICNN_ONNX)}
    assert TrainConfig.from_dict(old).teachers == (str(MUSICNN_ONNX),)


def test_validation_reports_every_figure_on_playlists_long_enough_to_mask() -> None:
    """Validation on 6 playlists of 8 tracks: the shipped pooling, mean pooling, the learned part and the
    adapted metric all get a figure, and playlists that share a direction score above chance."""
    from siamrec.training.validation import spread_stats, standardised, validation_metrics

    rng = np.random.default_rng(0)
    dim = 8
    centres = rng.standard_normal((6, dim + 2 * C.N_MELS))
    owner = np.repeat(np.arange(48), 3)  # 48 tracks, 3 windows each
    embeddings = torch.from_numpy(centres[owner // 8] + 0.3 * rng.standard_normal((len(owner), len(centres[0]))))
    stats = {
        "mean": torch.zeros(dim), "std": torch.ones(dim),
        "timbre_mean": torch.zeros(2 * C.N_MELS), "timbre_std": torch.ones(2 * C.N_MELS),
    }  # fmt: skip
    stats.update(spread_stats(standardised(embeddings.float(), stats, True), owner))
    playlists = {f"p{i}": list(range(8 * i, 8 * i + 8)) for i in range(6)}
    row = validation_metrics(embeddings.float(), owner, stats, playlists, timbre=True)
    for key in ("r_precision", "r_precision_mean_pooling", "r_precision_learned", "r_precision_adapted"):
        assert row[key] > 2 * row["r_precision_chance"], (key, row)


def test_teacher_that_is_not_musicnn_is_one_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "teacher.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ConfigError, match="--teacher"):
        Trainer(_config(teachers=(str(bad),)), tmp_path, [tmp_path / "a.npy", tmp_path / "b.npy"])


# ---------------------------------------------------------------------------------------------- CLI
def test_cli_trains_and_validates(library: Path, tmp_path: Path) -> None:
    args = ["train", "--data", str(library), "--out", str(tmp_path / "run"), "--cache", str(tmp_path / "cache"),
            "--width", "4", "--batch-size", "6", "--epochs", "1", "--crops-per-track", "2", "--workers", "1",
            "--device", "cpu", "--val-fraction", "0.34", "--augment", "effects,mix", "--json"]  # fmt: skip
    result = invoke(*args, check=True)
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    assert summary["held_out_playlists"] and len(summary["history"]) == 1
    assert (tmp_path / "run" / "last.pt").is_file()
    checkpoint = load_checkpoint(str(tmp_path / "run" / "last.pt"))
    assert checkpoint["val_playlists"] == summary["held_out_playlists"] and checkpoint["feature_stats"] is not None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--augment", "hue"], "unknown hue"),
        (["--backbone", "vgg"], "--backbone vgg"),
        (["--batch-size", "1"], "batch-size"),
        (["--resume"], "no checkpoint"),
        (["--corpus", "/nonexistent"], "exactly one of"),
    ],
)
def test_cli_bad_input_is_one_config_error(library: Path, tmp_path: Path, extra: list[str], message: str) -> None:
    args = ["train", "--data", str(library), "--out", str(tmp_path / "run"), "--cache", str(tmp_path / "c"), *extra]
    assert_one_error_line(invoke(*args), message)


def test_cli_missing_folder(tmp_path: Path) -> None:
    result = invoke("train", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "r"))
    assert_one_error_line(result, "no such folder")


# ---- playlist pairs --------------------------------------------------------------------------------------------
def test_parse_pairs_normalises_and_refuses_bad_input() -> None:
    from siamrec.training.data import parse_pairs

    assert parse_pairs("playlist") == {"playlist": 1.0}
    assert parse_pairs("two-crops:1,playlist:3") == {"two-crops": 0.25, "playlist": 0.75}
    for bad in ("playlists", "two-crops:x", "playlist:0", "playlist,playlist"):
        with pytest.raises(ConfigError):
            parse_pairs(bad)


def test_playlist_pairs_never_pair_a_track_with_itself_or_across_playlists() -> None:
    from siamrec.training.data import PairSampler, playlist_partners

    # Tracks 0-3 in "a", 3-5 in "b" (track 3 in both), 6 alone in "c", 7 in no playlist.
    playlists = {"a": [0, 1, 2, 3], "b": [3, 4, 5, 5], "c": [6]}
    same = {frozenset(m) for m in playlists.values()}
    sampler = PairSampler(8, {"playlist": 1.0}, playlist_partners(8, playlists))
    assert sorted(sampler.anchors.tolist()) == [0, 1, 2, 3, 4, 5]  # lone tracks cannot anchor a playlist pair
    rng = np.random.default_rng(0)
    seen = set()
    for index in range(600):
        first, second, kind = sampler.draw(index, rng)
        assert kind == "playlist" and first != second
        assert any({first, second} <= members for members in same)
        seen.add((first, second))
    assert (3, 0) in seen and (3, 4) in seen and (0, 3) in seen  # a track in two playlists pairs into both

    mixed = PairSampler(8, {"two-crops": 0.5, "playlist": 0.5}, playlist_partners(8, playlists))
    kinds = [mixed.draw(i, rng) for i in range(800)]
    assert len(mixed) == 8
    for first, second, kind in kinds:
        assert (kind == "two-crops") == (first == second)
        assert first not in (6, 7) or kind == "two-crops"  # no partner: two crops of the track itself
    share = np.mean([k == "playlist" for _, _, k in kinds])
    assert 0.35 < share < 0.55  # half the items, minus the lone tracks' fallbacks


def test_playlist_pairs_need_a_playlist_with_two_tracks() -> None:
    from siamrec.training.data import PairSampler, playlist_partners

    with pytest.raises(ConfigError):
        PairSampler(3, {"playlist": 1.0}, playlist_partners(3, {"a": [0], "b": [1]}))
