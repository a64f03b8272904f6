"""The ``glitchnet`` command: simulate, train, evaluate, predict, similar, scan."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .architectures import ARCHITECTURE_NAMES, DEFAULT_ARCH
from .classes import CLASS_SET_CHOICES, CLASS_SETS, DEFAULT_CLASS_SET, DURATIONS_S
from .config import (
    ALL_VIEWS,
    AUGMENTATION_MODES,
    DURATION_VIEWS,
    LR_SCALING,
    SIMILAR_K,
    SIMILAR_MAX_K,
    SPLITS,
    TrainConfig,
)
from .distributed import BACKENDS
from .errors import GlitchNetError, first_line, one_line

EXIT_BAD_INPUT, EXIT_FAILED = 2, 1
"""Exit statuses: bad input (a bad setting, a missing or unreadable input file), and a failed run (a full disk)."""
EPILOG = (f"Errors are one line on stderr; exit status {EXIT_BAD_INPUT} for bad input (predict: any input file "
          f"that could not be read, after the others are answered), {EXIT_FAILED} for a failed run.")


class _Parser(argparse.ArgumentParser):
    """argparse with the one-line error promise: the usage text stays in ``--help``, which ends with the exit
    statuses (every command's)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("epilog", EPILOG)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _dumps(obj) -> str:
    """JSON that is always valid: NaN and infinities (JSON has none) become null."""
    def clean(x):
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        return x

    return json.dumps(clean(obj), allow_nan=False)


def _tqdm():
    from tqdm.auto import tqdm

    return tqdm


def _feeds(bar) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback that drives a tqdm bar."""
    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    return progress


def cmd_train(args: argparse.Namespace) -> int:
    from . import distributed

    return distributed.run(lambda world: _train(args, world), device=args.device, backend=args.backend)


def _train(args: argparse.Namespace, world) -> int:
    from . import distributed
    from .simulate import DEFAULT_VERSION, data_home
    from .train import Prepared, TrainConfig, prepare_run, train

    data = args.data or str(data_home() / DEFAULT_VERSION)
    config = TrainConfig(data=data, out=args.out, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                         weight_decay=args.weight_decay, label_smoothing=args.label_smoothing, view=args.view,
                         augment=args.augment, seed=args.seed, arch=args.arch, width=args.width, device=args.device,
                         workers=args.workers, cache_dir=args.cache_dir, resume=args.resume, init=args.init,
                         compile=args.compile, precise_bn=args.precise_bn, overwrite=args.overwrite,
                         lr_scaling=args.lr_scaling, classes=args.classes)
    tqdm = _tqdm()
    bars: dict[str, object] = {}

    def show(event) -> None:
        if event.kind == "cache":
            bar = bars.get(event.message)
            if bar is None:
                bar = bars[event.message] = tqdm(total=event.steps, desc=event.message, unit="img", leave=False)
            bar.n = event.step
            bar.refresh()
        elif event.kind == "batch":
            bar = bars.get(f"epoch{event.epoch}")
            if bar is None:
                bar = bars[f"epoch{event.epoch}"] = tqdm(total=event.steps, desc=f"epoch {event.epoch}/{event.epochs}",
                                                         unit="batch", leave=False)
            bar.n = event.step
            bar.set_postfix(loss=f"{event.loss:.3f}", acc=f"{event.accuracy:.3f}", ips=f"{event.images_per_s:.0f}")
        elif event.kind == "epoch":
            tqdm.write(f"epoch {event.epoch}/{event.epochs}  loss {event.loss:.4f}  acc {event.accuracy:.4f}  "
                       f"val_loss {event.val_loss:.4f}  val_acc {event.val_accuracy:.4f}  "
                       f"{event.images_per_s:.1f} img/s")
        elif event.kind in ("start", "scan", "done", "stopped") and event.message:
            tqdm.write(event.message)

    if not world.is_main:  # rank 0 alone reports
        show = lambda event: None  # noqa: E731
    with distributed.all_ranks_ok():  # settings and outputs fail now, before the default dataset or any scan
        prepared = prepare_run(config, show) if world.is_main else Prepared()
    if not args.data:
        distributed.main_first(_default_data)
    try:
        train(config, progress=show, prepared=prepared)
    finally:  # cleared before any error line is printed
        for bar in bars.values():
            bar.close()
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_checkpoint, top_confusions

    if args.figures:
        return _evaluate_figures(args)
    if not args.data:
        raise ValueError("give --data DIR (a dataset) or --figures DIR (labelled figures, e.g. the golden set)")
    _check_cache_dir(args.cache_dir)
    tqdm = _tqdm()
    with tqdm(desc=f"evaluating {args.split}", unit="img", disable=args.json, delay=1.0) as bar:
        result = evaluate_checkpoint(args.model, args.data, view=args.view, split=args.split,
                                     cache_dir=args.cache_dir, fallback_split=None, progress=_feeds(bar))
    metrics = dict(result.metrics, split=args.split, data=str(args.data), model=str(args.model))
    if args.json:
        print(_dumps(metrics))
        return 0
    if result.note:
        print(result.note)
    print(f"{args.split}: {metrics['n']} images  accuracy {metrics['accuracy']:.4f}  "
          f"macro-F1 {metrics['macro_f1']:.4f}")
    print(f"{'class':<22}{'precision':>10}{'recall':>10}{'f1':>8}{'n':>7}")
    for name, m in metrics["per_class"].items():
        if m["support"]:
            print(f"{name:<22}{m['precision']:>10.3f}{m['recall']:>10.3f}{m['f1']:>8.3f}{m['support']:>7}")
    for true, pred, count in top_confusions(metrics):
        print(f"confused: {true} -> {pred} ({count})")
    return 0


def _evaluate_figures(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_labelled_folder, top_confusions
    from .inference import Predictor

    result = evaluate_labelled_folder(Predictor(args.model), args.figures)
    if args.json:
        print(_dumps(result))
        return 0
    img, glitch = result["per_image"], result["per_glitch"]
    print(f"per image : {img['n']} images   accuracy {img['accuracy']:.4f}  macro-F1 {img['macro_f1']:.4f}")
    print(f"per glitch: {glitch['n']} glitches accuracy {glitch['accuracy']:.4f}  macro-F1 {glitch['macro_f1']:.4f} "
          "(views fused)")
    print(f"{'class':<22}{'recall/img':>11}{'recall/glitch':>14}{'n':>4}")
    for name, m in glitch["per_class"].items():
        if m["support"]:
            print(f"{name:<22}{img['per_class'][name]['recall']:>11.3f}{m['recall']:>14.3f}{m['support']:>4}")
    for true, pred, count in top_confusions(glitch, k=8):
        print(f"confused: {true} -> {pred} ({count})")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    import numpy as np

    from .checkpoint import load_checkpoint, save_checkpoint
    from .data import load_split, scan_dataset
    from .errors import TrainingError
    from .evaluate import expected_calibration_error, fit_temperature, predict_logits, softmax
    from .files import check_output_file, clean_stale_temps

    ckpt = load_checkpoint(args.model)
    check_output_file(args.model, "checkpoint")  # it is rewritten in place: fail now if it cannot be
    clean_stale_temps(args.model)  # a killed calibration's half-written checkpoint
    _check_cache_dir(args.cache_dir)
    scan = scan_dataset(args.data, view=ckpt.scan_view)
    images, labels, _ = load_split(scan, "validation", args.cache_dir, workers=2)
    if len(labels) < 10:
        raise ValueError(f"the validation split of {args.data} is too small to fit a temperature ({len(labels)})")
    logits = predict_logits(ckpt.build_model(), images)
    before = expected_calibration_error(softmax(logits), labels)
    temperature = fit_temperature(logits, labels)
    if not np.isfinite(temperature) or temperature <= 0:
        raise TrainingError(f"no usable temperature could be fitted ({temperature}); {args.model} is unchanged")
    after = expected_calibration_error(softmax(logits, temperature), labels)
    ckpt.temperature = temperature
    ckpt.metrics["calibration"] = {"split": "validation", "n": int(len(labels)), "temperature": temperature,
                                   "ece_before": before, "ece_after": after}
    save_checkpoint(ckpt, args.model)
    print(f"temperature {temperature:.3f}: expected calibration error {before:.4f} -> {after:.4f} "
          f"on {len(labels)} validation images; written into {args.model}")
    return 0


def _check_cache_dir(cache_dir: str | None) -> None:
    """The decoded-image cache must be writable: say so before the dataset scan, not after it."""
    from .data import default_cache_dir
    from .files import check_writable_folder

    check_writable_folder(cache_dir or default_cache_dir(), "cache folder")


def cmd_predict(args: argparse.Namespace) -> int:
    from . import distributed
    from .bulk import expand_inputs
    from .inference import Predictor

    if args.out:
        return distributed.run(lambda world: _predict_to_file(args, world), device=args.device, backend=args.backend)
    if args.resume or args.overwrite:
        raise ValueError("--resume and --overwrite apply to an --out file")
    if distributed.read_env().distributed:
        raise ValueError("under torchrun, give --out FILE (.csv or .parquet): the ranks write one merged file")
    predictor = Predictor(args.model)
    predictor.model.to(distributed.device_for(distributed.read_env(), args.device))
    if args.by_glitch:
        return _predict_glitches(predictor, list(expand_inputs(args.files)), args)
    failed = 0
    for pred in predictor.predict_stream(expand_inputs(args.files), batch_size=args.batch_size):
        failed += pred.error is not None
        if args.json:
            print(_dumps(pred.to_json()), flush=True)
        elif pred.error:
            print(f"{pred.name}: error: {pred.error}", flush=True)
        else:
            flag = "  (low confidence)" if pred.low_confidence else ""
            views = f"  ({pred.views} views fused)" if pred.views > 1 else ""
            print(f"{pred.name}: {pred.label} {pred.confidence:.3f}{views}{flag}", flush=True)
    return 0 if not failed else EXIT_BAD_INPUT


def _predict_to_file(args: argparse.Namespace, world) -> int:
    from . import distributed
    from .bulk import expand_inputs, predict_to_file
    from .inference import Predictor

    with distributed.all_ranks_ok():
        predictor = Predictor(args.model)
        predictor.model.to(world.device)
    files = list(expand_inputs(args.files))
    tqdm = _tqdm()
    desc = f"classifying (rank 0 of {world.world_size})" if world.distributed else "classifying"
    with tqdm(desc=desc, unit="img", disable=not world.is_main, delay=1.0) as bar:
        result = predict_to_file(predictor, files, args.out, resume=args.resume, overwrite=args.overwrite,
                                 batch_size=args.batch_size, decode_threads=args.decode_threads,
                                 progress=_feeds(bar))
    if world.is_main:
        print(f"wrote {result.out}: {result.rows} rows; {result.predicted} file(s) classified on "
              f"{world.world_size} rank(s), {result.skipped} already there; {result.errors} unreadable in all "
              "(their error column says why)")
    return 0  # unreadable files are rows with their reason, not a failed run (torchrun would report one)


def _predict_glitches(predictor, paths: list[str], args: argparse.Namespace) -> int:
    """``predict --by-glitch``: files grouped into glitches and each glitch's views fused, as the app does; glitches
    go through the model a batch of about ``--batch-size`` files at a time."""
    from .glitches import glitch_chunks

    failed = 0
    for chunk in glitch_chunks(paths, args.batch_size):
        files = [(paths[i], paths[i]) for i in chunk]
        for glitch in predictor.classify_files(files, explain=False):
            verdict, errors = glitch.verdict, {v.name: v.error for v in glitch.errors}
            failed += bool(errors)
            if args.json:
                body = {"error": verdict.error} if verdict.error else {
                    k: v for k, v in verdict.to_json().items() if k != "path"}
                print(_dumps({"glitch": glitch.key, "files": glitch.files, "views": len(glitch.readable),
                                  **body, **({"errors": errors} if errors else {})}), flush=True)
            elif verdict.error:
                print(f"{glitch.key}: error: {next(iter(errors.values()), verdict.error)}", flush=True)
            else:
                flag = "  (low confidence)" if verdict.low_confidence else ""
                print(f"{glitch.key} ({len(glitch.readable)} views): {verdict.label} {verdict.confidence:.3f}{flag}",
                      flush=True)
    return 0 if not failed else EXIT_BAD_INPUT


def cmd_similar(args: argparse.Namespace) -> int:
    """``similar``: the dataset's glitches nearest each query (image files, a dataset glitch's id or GPS time)."""
    from .bulk import expand_inputs
    from .data import scan_dataset
    from .glitches import group_views
    from .inference import Predictor
    from .similar import (
        SimilarityError,
        build_index,
        check_k,
        event_times,
        find_glitches,
        glitch_table,
        glitch_vector,
    )

    k = check_k(args.k)
    _check_cache_dir(args.cache_dir)
    files = [q for q in args.queries if Path(q).exists()]
    scan = scan_dataset(args.data, view="all")
    _, _, table = glitch_table(scan.manifest)
    times = event_times(table, scan.metadata)
    named: list[tuple[str, str]] = []  # (the query as given, a dataset glitch key)
    for text in (q for q in args.queries if not Path(q).exists()):
        keys = find_glitches(table, times, text)
        if not keys:
            raise SimilarityError(f"{text!r} is neither a file nor a glitch id or GPS time of {scan.root.name}")
        named += [(text, key) for key in keys]
    predictor = Predictor(args.model)  # a bad checkpoint fails before the long work
    tqdm = _tqdm()
    bars: dict[str, object] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=total, desc=f"{stage} {scan.root.name}", unit="img", leave=False,
                                     disable=args.json, delay=1.0)
        bar.total = total
        bar.update(done - bar.n)

    try:
        index = build_index(scan, predictor.checkpoint, predictor.model, image_cache_dir=args.cache_dir,
                            batch_size=args.batch_size, workers=args.workers or 0, progress=progress)
    finally:
        for bar in bars.values():
            bar.close()
    queries = []  # (query name, files, views, vector or error, excluded key)
    for glitch in group_views([v for f in expand_inputs(files) for v in Predictor.decode(f, f)]):
        if glitch.readable:
            vector = glitch_vector(predictor.model, glitch)
            queries.append((glitch.key, glitch.files, len(glitch.readable), vector, None))
        else:
            queries.append((glitch.key, glitch.files, 0, glitch.errors[0].error, None))
    for text, key in named:
        row = index.row_of(key)
        queries.append((text if text == key else f"{text} ({key})", list(index.glitches["paths"][row]),
                        int(index.glitches["views"][row]), index.glitch_vectors[row], key))
    failed = 0
    for name, query_files, n_views, vector, exclude in queries:
        if isinstance(vector, str):
            failed += 1
            print(_dumps({"query": name, "files": query_files, "error": vector}) if args.json
                  else f"{name}: error: {vector}", flush=True)
            continue
        found = index.search(vector, k, exclude=exclude)
        rows = [{"rank": int(r.rank), "glitch": r.glitch, "label": r.label, "ifo": r.ifo,
                 "gravityspy_id": r.gravityspy_id, "similarity": round(float(r.similarity), 6), "path": r.path,
                 "paths": list(r.paths)} for r in found.itertuples()]
        if args.json:
            print(_dumps({"query": name, "files": query_files, "views": n_views, "dataset": index.dataset,
                          "neighbours": rows}), flush=True)
            continue
        print(f"{name} ({n_views} view{'s' if n_views != 1 else ''}): the {len(rows)} most similar glitches in "
              f"{index.dataset}", flush=True)
        for r in rows:
            print(f"  {r['rank']:3d}  {r['similarity']:.3f}  {r['label']:<22} {r['ifo'] or '-':<3} {r['path']}",
                  flush=True)
    return 0 if not failed else EXIT_BAD_INPUT


def cmd_simulate(args: argparse.Namespace) -> int:
    from .files import check_writable_folder
    from .simulate import class_counts, simulate_dataset

    counts = class_counts(args.glitches, args.per_class, args.balanced, args.classes)  # bad input fails first
    check_writable_folder(args.out, "dataset folder")
    noise = None
    if args.real_noise:
        from .simulate.noise import SEGMENT_S
        from .simulate.realnoise import real_noise
        from .strain import read_strain

        strain, _, rate, _ = read_strain(args.real_noise)
        noise = real_noise(strain, rate, Path(args.real_noise).name, seed=args.seed)
        print(f"background: {len(noise.starts)} glitch-free {SEGMENT_S:g} s blocks of {Path(args.real_noise).name} "
              f"({noise.excluded_s:.0f} s left out around its own glitches)")
    tqdm = _tqdm()
    with tqdm(desc="simulating glitches", unit="glitch", total=sum(counts.values())) as bar:  # no "0glitch" line
        out = simulate_dataset(args.out, n_glitches=args.glitches, per_class=args.per_class, seed=args.seed,
                               balanced=args.balanced, workers=args.workers, progress=_feeds(bar),
                               classes=args.classes, noise=noise)
    print(f"wrote {out}")
    return 0


def cmd_scan(args: argparse.Namespace) -> int:
    from .files import check_writable_folder
    from .strain import scan

    out = check_writable_folder(args.out, "output folder")
    views = scan(args.strain, args.gps, out_dir=out)
    for dur in sorted(views):
        print(f"{dur:g} s view written to {out}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .checkpoint import CheckpointError
    from .export import export
    from .shipped import default_model_path

    model = Path(args.model) if args.model else default_model_path()
    if not model.is_file():
        raise CheckpointError(f"no checkpoint at {model}")
    out = export(model, args.out)
    print(f"wrote {out} and {out.name}.json (ONNX Runtime serving engine; checked against torch)")
    return 0


def _default_data() -> Path:
    from .simulate import default_dataset

    tqdm = _tqdm()
    with tqdm(desc="making the default simulated dataset", unit="glitch") as bar:
        return default_dataset(progress=_feeds(bar))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="glitchnet", description="Classify Gravity Spy glitch spectrograms.", epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("train", help="train GlitchNet on a dataset folder",
                       description="Train GlitchNet. Started by torchrun (torchrun --nproc-per-node N -m glitchnet "
                                   "train ...), it trains with DistributedDataParallel over N processes on one machine "
                                   "or many; only rank 0 writes checkpoints and progress.")
    p.add_argument("--data", help="dataset root (Kaggle or class-folder layout); default: the simulated default")
    p.add_argument("--out", default=TrainConfig.out,
                   help="checkpoint path (best on validation); an existing one needs --overwrite or --resume")
    p.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size, help="images per process and step")
    p.add_argument("--lr", type=float, default=TrainConfig.lr,
                   help="learning rate for one process's batch of --batch-size images; under torchrun with N "
                        "processes the global batch is N x --batch-size and the rate follows it (--lr-scaling)")
    p.add_argument("--lr-scaling", choices=LR_SCALING, default=TrainConfig.lr_scaling,
                   help="with N processes train at N x --lr (linear, the default: Goyal et al. 2017), sqrt(N) x "
                        "--lr (sqrt) or --lr (none); one process always trains at --lr")
    p.add_argument("--weight-decay", type=float, default=TrainConfig.weight_decay)
    p.add_argument("--label-smoothing", type=float, default=TrainConfig.label_smoothing)
    p.add_argument("--view", default=TrainConfig.view,
                   help=f"{', '.join(DURATION_VIEWS)} or {ALL_VIEWS} (each view a sample)")
    p.add_argument("--augment", choices=AUGMENTATION_MODES, default=TrainConfig.augment,
                   help="class-specific physics-aware policies (default), a generic baseline, or none")
    p.add_argument("--seed", type=int, default=TrainConfig.seed)
    p.add_argument("--arch", choices=ARCHITECTURE_NAMES, default=DEFAULT_ARCH,
                   help="glitchnet: the seed's exact network (default); glitchnet-freq: adds a log-frequency "
                        "coordinate channel (starts from a glitchnet --init exactly)")
    p.add_argument("--classes", choices=CLASS_SET_CHOICES, default=TrainConfig.classes,
                   help="the class set: gravityspy-o1o2 (Gravity Spy's 22 O1/O2 classes), gravityspy-o3 (its 23 O3 "
                        "classes), auto (the set that covers the class folders, else the folders; the default) or "
                        "folders (the dataset's own class folders)")
    p.add_argument("--width", type=int, default=TrainConfig.width, help="channels of the stem and residual blocks")
    p.add_argument("--device", default=TrainConfig.device,
                   help="auto, cpu, cuda (under torchrun: this node's GPU number LOCAL_RANK)")
    p.add_argument("--workers", type=int, default=TrainConfig.workers, help="data loader workers (-1: automatic)")
    p.add_argument("--cache-dir", help="decoded-image cache folder (default ~/.cache/glitchnet/tensors)")
    p.add_argument("--resume", action="store_true",
                   help="continue from <out>.last.pt (refused if the settings changed)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint at --out")
    p.add_argument("--init", help="start from this checkpoint's weights (fine-tune) with a fresh optimizer")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--precise-bn", type=int, default=TrainConfig.precise_bn, metavar="N",
                   help="recompute BatchNorm statistics over N training images before each validation (0: off)")
    p.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="torch.distributed backend under torchrun: auto is nccl on GPUs, gloo on CPUs")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="score a checkpoint on a dataset split, or on a folder of labelled figures")
    p.add_argument("--data", help="dataset root")
    p.add_argument("--figures", help="folder of <Class>/<image> figures, each one glitch (GIF frames = its views)")
    p.add_argument("--model", required=True)
    p.add_argument("--split", default="test", choices=SPLITS)
    p.add_argument("--view", help="override the checkpoint's view")
    p.add_argument("--cache-dir")
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("calibrate", help="fit the confidence temperature on the validation split")
    p.add_argument("--data", required=True)
    p.add_argument("--model", required=True, help="checkpoint, updated in place (atomically)")
    p.add_argument("--cache-dir")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("predict", help="classify image files or folders")
    p.add_argument("files", nargs="+", help="images (PNG/JPG/GIF, crops or full figures) or folders")
    p.add_argument("--model", help="checkpoint (default: the shipped models/glitchnet.pt)")
    p.add_argument("--json", action="store_true", help="one JSON object per input, one per line")
    p.add_argument("--batch-size", type=_positive, default=32)
    p.add_argument("--by-glitch", action="store_true",
                   help="one answer per glitch: a GIF's frames and same-id Gravity Spy files fused, as in the app")
    p.add_argument("--out", help="write one results table here (.csv or .parquet, the app's CSV columns: a row per "
                                 "view and a combined row per glitch) instead of printing; under torchrun the ranks "
                                 "share the glitches and rank 0 merges their parts")
    p.add_argument("--resume", action="store_true",
                   help="keep --out's rows (and a killed run's parts); classify only the rest")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--decode-threads", type=_positive, default=2, metavar="N",
                   help="with --out: threads decoding images while the model runs (about one core each; on a GPU "
                        "give each rank the cores it has, e.g. 8)")
    p.add_argument("--device", default="cpu",
                   help="cpu (the default: the app's numbers exactly), cuda (under torchrun: this node's GPU number "
                        "LOCAL_RANK; bfloat16) or auto")
    p.add_argument("--backend", choices=BACKENDS, default="auto", help="torch.distributed backend under torchrun")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("similar", help="the glitches of a dataset most similar to images, a glitch id or a GPS time",
                       description="Embed every glitch of a dataset with a checkpoint (cached per checkpoint and "
                                   "dataset) and print the glitches most similar to each query. Image files of one "
                                   "glitch (same {ifo}_{id}, or a GIF's frames) are one query.")
    p.add_argument("queries", nargs="+", metavar="FILE_OR_GLITCH_ID",
                   help="image files or folders, a glitch id of the dataset (H1_<id> or the Gravity Spy id), or a "
                        "GPS time of the dataset (its metadata CSV's event_time, or a GPS-time id)")
    p.add_argument("--data", required=True, help="dataset root")
    p.add_argument("--model", help="checkpoint (default: the shipped models/glitchnet.pt)")
    p.add_argument("-k", type=int, default=SIMILAR_K, help=f"similar glitches per query, 1 to {SIMILAR_MAX_K}")
    p.add_argument("--json", action="store_true", help="one JSON object per query, one per line")
    p.add_argument("--batch-size", type=_positive, default=64, help="images per forward pass when indexing")
    p.add_argument("--workers", type=_positive, help="processes decoding the dataset's images (default: one)")
    p.add_argument("--cache-dir", help="decoded-image cache folder (default ~/.cache/glitchnet/tensors); the "
                                       "index is kept in its embeddings/ folder")
    p.set_defaults(func=cmd_similar)

    p = sub.add_parser("export", help="export a checkpoint to ONNX for the torch-free serving engine",
                       description="Write M.onnx (logits, Grad-CAM maps and embedding) and M.onnx.json (classes, "
                                   "temperature, description) beside the checkpoint, checked against torch. A hosted "
                                   "app (GLITCHNET_HOSTED=1) serves with them, without importing torch.")
    p.add_argument("--model", help="checkpoint (default: the shipped models/glitchnet.pt)")
    p.add_argument("--out", help="the .onnx file to write (default: beside the checkpoint, M.onnx)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("simulate", help="write a simulated Gravity Spy dataset (Kaggle layout)")
    p.add_argument("--out", required=True,
                   help="dataset folder to write (made if missing; rerun with the same arguments to resume)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--glitches", type=int, help="total number of glitches (class proportions as Gravity Spy)")
    group.add_argument("--per-class", type=int, help="glitches per class")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--balanced", action="store_true", help="even class proportions")
    p.add_argument("--classes", choices=tuple(CLASS_SETS), default=DEFAULT_CLASS_SET,
                   help="the class set to simulate: gravityspy-o1o2 (22 classes, the default) or gravityspy-o3 (23)")
    p.add_argument("--real-noise", metavar="STRAIN_FILE",
                   help="draw each glitch's background from the glitch-free stretches of this real strain file "
                        "(GWOSC HDF5; needs the strain extra) instead of coloured Gaussian noise")
    p.add_argument("--workers", type=_positive, help="processes (default: all cores)")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("scan", help="make the four Gravity Spy views of a GPS time from a GWOSC strain file")
    p.add_argument("--strain", required=True, help="GWOSC HDF5 strain file")
    p.add_argument("--gps", type=float, required=True, help="GPS time of the glitch, s")
    p.add_argument("--out", default=".", help="folder for the PNGs")
    p.set_defaults(func=cmd_scan, durations=DURATIONS_S)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed in one line
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("glitchnet: interrupted; finished work is kept (rerun to resume)", file=sys.stderr)
        return 130
    except (GlitchNetError, ValueError, FileNotFoundError, PermissionError) as exc:  # bad input
        plain = isinstance(exc, ValueError) and not isinstance(exc, GlitchNetError)  # a bad value says it all
        print(f"glitchnet: error: {first_line(str(exc)) if plain and str(exc) else one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:  # a failed run (a full disk, a broken install): one line, never a traceback
        print(f"glitchnet: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
