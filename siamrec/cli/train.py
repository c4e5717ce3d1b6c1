"""`siamrec train`: SimSiam pretraining on an audio folder, the FMA layout or a siamrec corpus."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from siamrec.cli.common import Settings, console, json_option, plural, print_json, quiet, root_option, store_options
from siamrec.errors import ConfigError, NotFoundError


def _load_tracks(
    data: str | None, fma: str | None, corpus: str | None, from_store: bool, settings: Settings
) -> tuple[Any, str]:
    """The one source the user named, and a description of it for the checkpoint and model card."""
    from siamrec.training.data import corpus_tracks, fma_tracks, folder_tracks, store_tracks

    given = [(kind, value) for kind, value in (("data", data), ("fma", fma), ("corpus", corpus)) if value]
    if len(given) + from_store != 1:
        raise ConfigError("name exactly one of --data DIR, --fma DIR, --corpus DIR or --from-store")
    if from_store:
        from siamrec.store import Store

        with Store.open(settings) as store:
            if store.stored_model() is None:
                raise NotFoundError(f"--from-store: the store in {settings.home} is empty (add tracks, sync playlists)")
            return store_tracks(store), f"store:{settings.home.resolve()}"
    kind, root = given[0]
    loader = {"data": folder_tracks, "fma": fma_tracks, "corpus": corpus_tracks}[kind]
    return loader(root), f"{kind}:{Path(root).expanduser().resolve()}"


def _decode(tracks: Any, cache: Path, workers: int) -> tuple[Any, list[Path]]:
    from siamrec.training.data import build_cache

    columns = (TextColumn("decoding", style="bold"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console, disable=quiet()) as bar:
        task = bar.add_task("decode", total=len(tracks.tracks))
        kept, files, skipped = build_cache(tracks, cache, workers, on_done=lambda n: bar.advance(task, n))
    for reason in skipped:
        console.print(Text.assemble(("skipped", "yellow"), " ", str(reason)), soft_wrap=True)
    return kept, files


@click.command("train")
@click.option("--data", type=click.Path(), help="Audio folder (recursive; first-level sub-folders = playlists).")
@click.option("--fma", type=click.Path(), help="FMA folder (fma_*/000/000002.mp3 + fma_metadata/tracks.csv).")
@click.option("--corpus", type=click.Path(), help="siamrec corpus (playlists.json + tracks.tsv).")
@click.option("--from-store", is_flag=True, help="Train on the audio and playlists already synced (--home).")
@click.option(
    "--val-corpus",
    type=click.Path(),
    help="Validate on this siamrec corpus instead of held-out playlists (its audio is never trained on).",
)
@click.option("--out", "out", required=True, type=click.Path(), help="Run folder: last.pt, log.csv.")
@click.option("--backbone", default="cnn", show_default=True, help="cnn|resnet18|…|resnet152|transformer.")
@click.option("--width", default=32, show_default=True, help="Width of the cnn / transformer backbones.")
@click.option("--augment", default="all", show_default=True, help="Comma list of effects,mix,spec (or all, none).")
@click.option(
    "--pairs",
    default="two-crops",
    show_default=True,
    help="same-crop, two-crops (two crops of one track) or playlist (crops of two different tracks of one "
    "playlist); a mix such as two-crops:0.5,playlist:0.5.",
)
@click.option(
    "--timbre/--no-timbre",
    default=True,
    show_default=True,
    help="Ship log-mel band statistics (mean, std) beside the learned embedding, each part at equal weight.",
)
@click.option(
    "--teacher",
    type=click.Path(),
    multiple=True,
    help="Distil this teacher (a musicnn ONNX file; repeat for several) into a head whose output ships as a third "
    "vector part.",
)
@click.option("--distill-weight", default=1.0, show_default=True, help="Weight of the distillation loss.")
@click.option("--epochs", type=int, help="Epochs (default 100; with --resume, extends the run).")
@click.option("--batch-size", default=64, show_default=True)
@click.option("--crops-per-track", default=4, show_default=True, help="Random crops of each track per epoch.")
@click.option("--optimizer", type=click.Choice(["sgd", "adam"]), default="sgd", show_default=True)
@click.option("--lr", "base_lr", type=float, help="Base lr (SGD: scaled by batch/256; default 0.05, Adam 1e-3).")
@click.option("--workers", default=2, show_default=True, help="DataLoader workers (waveform augmentation).")
@click.option(
    "--device", type=click.Choice(["auto", "cpu", "cuda"]), help="Where torch trains [default: auto, CUDA if seen]."
)
@click.option("--seed", default=0, show_default=True)
@click.option("--val-fraction", default=0.3, show_default=True, help="Fraction of playlists held out.")
@click.option("--val-every", default=1, show_default=True, help="Validate every N epochs.")
@click.option("--max-steps-per-epoch", type=int, help="Cap on steps per epoch.")
@click.option("--cache", type=click.Path(), help="Decoded-audio cache (default: the data folder's cache/decoded).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last.pt.")
@store_options(model_option=False, device_option=False)
@json_option
def train_command(**opts: Any) -> None:
    """Pretrain a SimSiam audio encoder; export it afterwards with `siamrec export RUN/last.pt`."""
    from siamrec.training.augment import parse_augment

    run = _prepare(opts)
    trainer, config = run["trainer"], run["config"]
    try:
        history = _fit(trainer, config.epochs)
    except KeyboardInterrupt:
        console.print(f"interrupted: {trainer.checkpoint_path} holds the weights so far; add --resume to go on")
        raise
    summary = {"checkpoint": str(trainer.checkpoint_path), "held_out_playlists": run["held"], "history": history}
    if opts["as_json"]:
        print_json(summary)
    else:
        last = history[-1] if history else {}
        console.print(
            f"checkpoint: {trainer.checkpoint_path}  ({plural(len(history), 'epoch')}, augment "
            f"{','.join(parse_augment(','.join(config.augment))) or 'none'})",
            highlight=False,
        )
        if "r_precision" in last:
            console.print(
                f"held-out R-precision {last['r_precision']:.3f}, reward {last['reward']:.2f} "
                f"(chance {last['reward_chance']:.2f})",
                highlight=False,
            )


def _prepare(opts: dict[str, Any]) -> dict[str, Any]:
    """Config (fresh, or the run's own when resuming), data, split, cache and a Trainer."""
    from siamrec.training.augment import parse_augment
    from siamrec.training.config import CHECKPOINT_NAME, TrainConfig
    from siamrec.training.data import split_by_playlist
    from siamrec.training.nets import ModelConfig, load_checkpoint
    from siamrec.training.trainer import Trainer

    out = Path(opts["out"]).expanduser()
    settings: Settings = opts["settings"]
    tracks, source = _load_tracks(opts["data"], opts["fma"], opts["corpus"], opts["from_store"], settings)
    if opts["resume"]:
        checkpoint_path = out / CHECKPOINT_NAME
        if not checkpoint_path.is_file():
            raise ConfigError(f"--resume: no checkpoint at {checkpoint_path}")
        checkpoint = load_checkpoint(str(checkpoint_path))
        config = TrainConfig.from_dict(checkpoint["train_config"])
        config.epochs = opts["epochs"] or config.epochs
        val_fraction, split_seed = checkpoint["val_fraction"], checkpoint["split_seed"]
    else:
        config = TrainConfig(
            model=ModelConfig(backbone=opts["backbone"], width=opts["width"]), augment=parse_augment(opts["augment"]),
            pairs=opts["pairs"], timbre=opts["timbre"], epochs=opts["epochs"] or 100,
            crops_per_track=opts["crops_per_track"],
            batch_size=opts["batch_size"], optimizer=opts["optimizer"], base_lr=opts["base_lr"],
            workers=opts["workers"], device=opts["device"] or root_option("device") or "auto", seed=opts["seed"],
            val_every=opts["val_every"],
            max_steps_per_epoch=opts["max_steps_per_epoch"],
            teachers=tuple(str(Path(path).expanduser().resolve()) for path in opts["teacher"]),
            distill_weight=opts["distill_weight"],
        )  # fmt: skip
        val_fraction, split_seed = opts["val_fraction"], opts["seed"]
    if opts["val_corpus"]:
        val_fraction = 0.0
    train_set, val_set, held = split_by_playlist(tracks, val_fraction, split_seed)
    if opts["val_corpus"]:
        val_set = _validation_corpus(opts["val_corpus"], train_set)
    cache = Path(opts["cache"]).expanduser() if opts["cache"] else settings.cache_dir / "decoded"
    train_set, train_files = _decode(train_set, cache, config.workers)
    val_set, val_files = _decode(val_set, cache, config.workers)
    trained_on = f"{source} minus held-out playlists {', '.join(held)}" if held else source
    extra = {"val_playlists": held, "val_fraction": val_fraction, "split_seed": split_seed, "source": source}
    trainer = Trainer(config, out, train_files, (val_set, val_files), trained_on, extra, train_set.playlists)
    if opts["resume"]:
        trainer.resume()
    console.print(
        f"{len(train_files)} training tracks, {len(val_files)} validation tracks ({len(val_set.playlists)} "
        f"playlists{', from --val-corpus' if opts['val_corpus'] else ' held out'}); "
        f"{config.model.backbone} on {trainer.device}, {trainer.steps_per_epoch()} steps/epoch",
        highlight=False,
    )
    return {"trainer": trainer, "config": config, "held": held}


def _validation_corpus(root: str, train_set: Any) -> Any:
    """A separate validation corpus; sharing audio files with the training set would make it meaningless."""
    from siamrec.training.data import corpus_tracks

    val_set = corpus_tracks(root)
    shared = {t.path.resolve() for t in val_set.tracks} & {t.path.resolve() for t in train_set.tracks}
    if shared:
        raise ConfigError(f"--val-corpus {root} shares {len(shared)} audio files with the training data")
    return val_set


def _fit(trainer: Any, epochs: int) -> list[dict[str, float]]:
    """Run with a progress bar showing loss and the collapse figure; warn when the figure nears 0."""
    from siamrec.training.config import COLLAPSE_WARNING

    if trainer.teacher is not None and trainer.state.teacher_targets is None:
        with Progress(TextColumn("teacher", style="bold"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, disable=quiet()) as bar:  # fmt: skip
            task = bar.add_task("teacher", total=len(trainer.train_signals))
            trainer.prepare_teacher(on_tracks=lambda n: bar.advance(task, n))
    columns = (TextColumn("[bold]epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("loss {task.fields[loss]:+.3f}  collapse {task.fields[collapse]:.2f}"),
               TextColumn("{task.fields[val]}"), TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=console, disable=quiet()) as bar:
        steps = trainer.steps_per_epoch()
        task = bar.add_task("train", total=epochs * steps, completed=trainer.state.step,
                            epoch=trainer.state.epoch + 1, loss=0.0, collapse=1.0, val="")  # fmt: skip

        def on_step(loss: float, collapse: float) -> None:
            bar.update(task, advance=1, loss=loss, collapse=collapse)

        def on_epoch(row: dict[str, float]) -> None:
            val = f"R-prec {row['r_precision']:.3f}" if "r_precision" in row else ""
            bar.update(task, epoch=min(int(row["epoch"]) + 1, epochs), val=val)
            if row["collapse"] < COLLAPSE_WARNING:
                console.print(
                    "warning:",
                    f"epoch {int(row['epoch'])}: collapse figure "
                    f"{row['collapse']:.2f} is falling toward 0 (representation collapsing)",
                )

        return trainer.fit(on_step, on_epoch)
