"""``lvmgraph`` command line: a thin layer over ``lvmgraph.api``.

Exit codes: 0 ok, 1 failure during training or evaluation, 2 a spec or usage problem.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

EXIT_OK, EXIT_FAIL, EXIT_SPEC = 0, 1, 2
EXIT_STOPPED = 75  # EX_TEMPFAIL: stopped by SIGTERM/SIGINT after a checkpoint; `lvmgraph resume` continues


def _plugin_kind(text: str) -> str:
    """``plugins --kind``: a registered kind; the plural the listing prints is accepted too."""
    from .plugins.registry import HOOK_KINDS, did_you_mean
    kinds = list(HOOK_KINDS.values())
    singular = {"losses": "loss"}.get(text, text[:-1] if text.endswith("s") and text[:-1] in kinds else text)
    if singular in kinds:
        return singular
    match = did_you_mean(text, kinds)
    raise argparse.ArgumentTypeError(f"unknown kind {text!r}" + (f"; did you mean '{match}'?" if match else "")
                                     + f" (kinds: {', '.join(kinds)})")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lvmgraph", description="Train latent-variable generative models from YAML specs.")
    sub = p.add_subparsers(dest="command", required=True)

    def add_set(sp):
        sp.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a spec value, e.g. --set train.steps=100 (repeatable)")

    def add_nproc(sp):
        sp.add_argument("--nproc", type=int, default=1, metavar="N",
                        help="train in N local processes (torchrun --standalone --nproc-per-node=N; "
                             "data.batch_size is per process; see docs/DISTRIBUTED.md)")

    r = sub.add_parser("run", help="train a spec into a new run directory")
    r.add_argument("spec")
    r.add_argument("--out", help="run directory (default runs/<name>-<timestamp>)")
    r.add_argument("--device", choices=["auto", "cpu", "cuda"])
    r.add_argument("--no-eval", action="store_true", help="skip the evaluation at the end")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    add_nproc(r)
    add_set(r)

    rs = sub.add_parser("resume", help="continue a run from its newest checkpoint")
    rs.add_argument("run_dir")
    rs.add_argument("--device", choices=["auto", "cpu", "cuda"])
    rs.add_argument("--no-eval", action="store_true")
    rs.add_argument("--quiet", action="store_true")
    add_nproc(rs)
    add_set(rs)

    s = sub.add_parser(
        "sample", help="generate data from a run", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Generate as the spec's sample: section says (output, extra outputs, grid rows).",
        epilog="""--out:
  X.npz   array 'samples' (the main output) plus one array per extra output / grid row, by name
  X.png   a picture: the sample.grid rows (e.g. input, translation, reconstruction; one column per
          example) when the spec sets sample.grid, else the main output; extra image outputs
          beside it as X_<name>.png
  DIR     (no suffix) a folder with <name>.png and <name>.npz per output, and grid.png

--given NAME=VALUE fixes a graph value or data field (repeatable). VALUE is:
  a number            an index (a one-hot row where NAME holds one-hot rows) or a fill value
  an .npz/.npy file   the array named NAME, else 'samples', else the file's only array
  an image / a folder one image, or every image of a folder in name order; converted to the
                      data's channels and value range; the size must be NAME's (an image of the
                      data's size before pad_to is padded as the data is)
  a .txt file         one text per line, encoded by the dataset (see below)
  text                encoded by the dataset, e.g. --given text="a thick red sneaker"
An array of exactly one example's shape is repeated for all n samples (a folder of K patches is
one example of shape (K c p p)); a batch of m examples sets n = m unless -n is given.
Translate your own images:  lvmgraph sample RUN --given x_a=my_images/ --out translated.png

--sweep NAME=V1,V2,... writes X.png with one row of the main output per value of NAME (each value
as --given reads it), all from the same inputs and noise, under a first row of the inputs when
sample.grid names them (its first row). One input to every domain (StarGAN):
  lvmgraph sample RUN --sweep c_trg=0,1,2,3,4,5 -n 8 --out every_domain.png""")
    s.add_argument("run_dir")
    s.add_argument("-n", "--n", dest="n", type=_count, default=None,
                   help="number of samples (default: the number of examples given, else 64)")
    s.add_argument("--out", required=True, help="X.npz, X.png or a folder (see below)")
    s.add_argument("--given", action="append", default=[], metavar="NAME=VALUE",
                   help="fix a graph value or data field (repeatable; see below)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--sweep", metavar="NAME=V1,V2,...",
                   help="one picture row per value of NAME, same inputs and noise (see below)")

    e = sub.add_parser("eval", help="evaluate a run and write RUN/eval.json")
    e.add_argument("run_dir")
    e.add_argument("--metrics", help="comma-separated metric names (default: the spec's eval.metrics)")
    e.add_argument("--n", type=_count, help="sample count for every metric that has an `n` setting")

    rp = sub.add_parser("report", help="(re)write RUN/report.html: curves, samples, pictures, graph, evaluation")
    rp.add_argument("run_dir")
    rp.add_argument("--device", choices=["auto", "cpu", "cuda"])

    ev = sub.add_parser("evaluator", help="train or inspect the evaluator network of an image dataset")
    ev_sub = ev.add_subparsers(dest="evaluator_command", required=True)
    evt = ev_sub.add_parser("train", help="train (or load from the cache) the evaluator CNN of a dataset")
    evt.add_argument("--dataset", required=True, help="a registered image dataset, e.g. fashion_mnist")
    evt.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")

    v = sub.add_parser("validate", help="check specs without training")
    v.add_argument("specs", nargs="+")
    v.add_argument("--no-dry-run", action="store_true", help="skip building modules and the tiny-batch dry run")
    add_set(v)

    g = sub.add_parser("graph", help="print a spec's graph as Mermaid, Graphviz dot or an SVG picture")
    g.add_argument("spec")
    g.add_argument("--format", choices=["mermaid", "dot", "svg"], default="mermaid")

    nw = sub.add_parser("new", help="write a starter plugin package or spec")
    nw_sub = nw.add_subparsers(dest="new_command", required=True)
    nwp = nw_sub.add_parser("plugin", help="a plugin package (pyproject entry point, a component, a spec, "
                                           "tests that pass as written)")
    nwp.add_argument("name", help="the Python package name, e.g. lvmgraph_blocks")
    nwp.add_argument("--dir", default=".", help="where to create the package folder (default: here)")
    nws = nw_sub.add_parser("spec", help="a spec that extends a family's registered template")
    nws.add_argument("--family", required=True, help="a family with a template (`lvmgraph plugins --kind spec`)")
    nws.add_argument("file", help="the new spec file (its name becomes the spec's name)")

    pl = sub.add_parser("plugins", help="list plugins and what they register")
    pl.add_argument("--kind", type=_plugin_kind, help="only this kind (component, prior, op, loss, dataset, metric, schedule, optimizer, spec, logger)")
    pl.add_argument("--detail", metavar="NAME", help="settings of one registered item or all items of one plugin")
    pl.add_argument("--json", action="store_true")

    d = sub.add_parser("docs", help="write the reference docs (docs/reference/*.md) from the code")
    d.add_argument("--out", default="docs/reference", help="folder of the pages (default docs/reference)")
    d.add_argument("--check", action="store_true", help="write nothing; exit 1 naming each page that is out of date")
    d.add_argument("--all-plugins", action="store_true",
                   help="document every installed plugin, not only those that ship with lvmgraph")
    return p


def _count(text: str) -> int:
    """A sample count: a whole number, 1 or more (argparse words the error)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n}: give 1 or more")
    return n


class OutError(ValueError):
    """``--out`` names something ``lvmgraph sample`` cannot write."""


SAMPLE_SUFFIXES = (".npz", ".png")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(argv)
    if getattr(args, "nproc", 1) < 1:
        print(f"error: --nproc {args.nproc}: give the number of processes, 1 or more", file=sys.stderr)
        return EXIT_SPEC
    if getattr(args, "nproc", 1) > 1 and "WORLD_SIZE" not in os.environ:  # (not yet under torchrun)
        from .train.distributed import launch, without_nproc
        return launch(args.nproc, without_nproc(argv))
    from .spec.errors import SpecError
    from .train.checkpoint import CheckpointError
    from .train.rundir import RunDirError
    from .eval.inception import InceptionUnavailable
    from .eval.given import GivenError
    from .eval.runner import ResultNameClash, UnknownMetric, UnknownValue
    from .train.trainer import TrainingStopped
    from .api import UnknownDataset
    from .scaffold import ScaffoldError
    try:
        return _COMMANDS[args.command](args)
    except SpecError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_SPEC
    except (RunDirError, CheckpointError, FileNotFoundError, UnknownMetric, UnknownValue,
            InceptionUnavailable, GivenError, ResultNameClash, UnknownDataset, ScaffoldError, OutError) as exc:  # the message says how to fix it: a traceback adds nothing
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_SPEC
    except BrokenPipeError:  # `lvmgraph plugins --json | head`
        sys.stderr.close()
        return EXIT_OK
    except TrainingStopped as exc:
        print(f"{exc}; continue with `lvmgraph resume RUN`", file=sys.stderr)
        return EXIT_STOPPED
    except KeyboardInterrupt:
        print("interrupted; the newest checkpoint is intact — continue with `lvmgraph resume RUN`", file=sys.stderr)
        return 130
    finally:
        if args.command in ("run", "resume"):
            from .train.distributed import shutdown
            shutdown()


def _print_warnings(exp) -> None:
    for w in exp.warnings:
        print(w.render(with_file=True), file=sys.stderr)


def cmd_run(args) -> int:
    from . import api
    run = api.train(args.spec, out=args.out, overrides=args.overrides, progress=not args.quiet and None,
                    evaluate=not args.no_eval, device=args.device)
    _report(run)
    return EXIT_OK


def cmd_resume(args) -> int:
    from . import api
    run = api.resume(args.run_dir, overrides=args.overrides, progress=not args.quiet and None,
                     evaluate=not args.no_eval, device=args.device)
    _report(run)
    return EXIT_OK


def _report(run) -> None:
    from .train import distributed
    if not distributed.launched_main():  # (under torchrun, rank 0 reports)
        return
    rows = run.read_metrics()
    last = rows[-1] if rows else {}
    print(f"run directory: {run.path}")
    if last:
        print("last losses: " + ", ".join(f"{k}={v:.4g}" for k, v in last.items() if k != "step")
              + f" (step {last.get('step')})")
    if run.eval_file.exists():
        from .eval.runner import format_table
        print(format_table(json.loads(run.eval_file.read_text())["results"]))


def cmd_sample(args) -> int:
    from . import api
    suffix = Path(args.out).suffix
    if suffix and suffix not in SAMPLE_SUFFIXES:  # checked before loading anything: the run may be slow to open
        raise OutError(f"--out {args.out}: write X.npz, X.png or a folder name without a suffix")
    run = api.open_run(args.run_dir)
    exp = run.experiment
    spec = exp.spec.sample
    if spec is None:
        print(f"error: {run.run.spec_file} has no sample: section, so it cannot generate", file=sys.stderr)
        return EXIT_SPEC
    given = api.parse_given(args.given, args.n, exp.device, experiment=exp)
    if args.sweep:
        return _sample_sweep(args, run, given)
    n = args.n or (next(iter(given.values())).shape[0] if given else 64)
    samples = run.sample(n, given=given, seed=args.seed, outputs="all")
    written = _write_samples(Path(args.out), samples, spec, exp.data.info)
    main = samples[spec.output]
    print(f"wrote {n} samples of shape {tuple(main.shape[1:])} to {', '.join(map(str, written))} "
          f"(checkpoint step {run.step})")
    return EXIT_OK


def _sample_sweep(args, run, given: dict) -> int:
    """``sample --sweep NAME=V1,...``: the main output once per value, as rows of one picture."""
    from . import api
    from .eval.images import save_comparison_grid
    from .experiment import grid_rows
    exp, spec = run.experiment, run.experiment.spec.sample
    name, _, listed = args.sweep.partition("=")
    values = [v.strip() for v in listed.split(",") if v.strip()]
    if not name or not values:
        print(f"error: --sweep {args.sweep!r}: write NAME=V1,V2,... e.g. --sweep c_trg=0,1,2", file=sys.stderr)
        return EXIT_SPEC
    if Path(args.out).suffix != ".png":
        print(f"error: --sweep writes one picture: give --out X.png, not {args.out}", file=sys.stderr)
        return EXIT_SPEC
    n = args.n or (next(iter(given.values())).shape[0] if given else 8)
    # each value as --given reads it, so "c_trg=3" is a class index as it is there, and a caption
    # brings its companion fields (text_length) along
    from .eval.given import GivenError
    try:
        parsed = [api.parse_given([f"{name}={v}"], n, exp.device, experiment=exp) for v in values]
    except GivenError as exc:  # parse_given words it for --given; name the option the user wrote
        raise GivenError(str(exc).replace("--given", "--sweep", 1)) from None
    rows = run.sweep(name, parsed, n, given=given, seed=args.seed, labels=[f"{name}={v}" for v in values])
    value_range = tuple(exp.data.info.get("value_range", (0, 1)))
    path = save_comparison_grid(grid_rows(rows, list(rows)), Path(args.out), value_range=value_range,
                                min_tile=32)
    print(f"wrote {path}: rows {', '.join(rows)}, {n} examples each (checkpoint step {run.step})")
    return EXIT_OK


def _is_images(t) -> bool:
    return t.dim() == 4 and t.shape[1] in (1, 3)


def _write_samples(out: Path, samples: dict, spec, info: dict) -> list[Path]:
    """Write the outputs of ``lvmgraph sample`` as --out says (npz, png or a folder); returns the paths."""
    import numpy as np
    from .eval.images import save_comparison_grid, save_image_grid
    from .experiment import grid_rows
    value_range = tuple(info.get("value_range", (0, 1)))
    outputs = spec.outputs
    written: list[Path] = []

    def picture(name: str, path: Path) -> None:
        if _is_images(samples[name]):
            written.append(save_image_grid(samples[name], path, value_range=value_range, min_tile=32))

    def comparison(path: Path) -> None:
        rows = grid_rows(samples, spec.grid)
        written.append(save_comparison_grid(rows, path, value_range=value_range, min_tile=32))

    if out.suffix == ".npz":
        out.parent.mkdir(parents=True, exist_ok=True)
        arrays = {"samples": samples[spec.output].numpy(),
                  **{name: v.numpy() for name, v in samples.items() if name != spec.output}}
        np.savez_compressed(out, **arrays)
        written.append(out)
    elif out.suffix == ".png":
        if spec.grid:
            comparison(out)
        else:
            picture(spec.output, out)
            if not written:
                raise OutError(f"'{spec.output}' has shape {tuple(samples[spec.output].shape)}, not images; "
                               f"write an .npz instead")
        shown = set(spec.grid or [spec.output])
        for name in outputs:
            if name not in shown:
                picture(name, out.with_name(f"{out.stem}_{name}.png"))
    else:  # a folder (cmd_sample refused any other suffix)
        out.mkdir(parents=True, exist_ok=True)
        for name in outputs:
            np.savez_compressed(out / f"{name}.npz", samples=samples[name].numpy())
            written.append(out / f"{name}.npz")
            picture(name, out / f"{name}.png")
        if spec.grid:
            comparison(out / "grid.png")
    return written


def cmd_eval(args) -> int:
    from . import api
    from .eval.runner import format_table
    run = api.open_run(args.run_dir)
    names = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    results = run.evaluate(names, n=args.n)
    print(format_table(results))
    print(f"wrote {run.run.eval_file}")
    return EXIT_OK


def cmd_report(args) -> int:
    from . import api
    print(f"wrote {api.report(args.run_dir, device=args.device)}")
    return EXIT_OK


def cmd_evaluator(args) -> int:
    from . import api
    print(json.dumps(api.evaluator(args.dataset, device=args.device).describe(), indent=2, default=str))
    return EXIT_OK


def cmd_validate(args) -> int:
    from . import api
    from .spec.errors import SpecError
    failed = 0
    for path in args.specs:
        try:
            if args.no_dry_run:
                api.compile_spec(path, args.overrides)
                print(f"{path}: ok (structure only)")
                continue
            exp = api.validate(path, args.overrides)
            _print_warnings(exp)
            print(f"{path}: ok")
        except SpecError as exc:
            print(exc.render(), file=sys.stderr)
            failed += 1
    return EXIT_SPEC if failed else EXIT_OK


def cmd_graph(args) -> int:
    from . import api
    from .graph.render import to_dot, to_mermaid
    loaded, graph = api.compile_spec(args.spec)
    from .graph.svg import to_svg
    render = {"mermaid": to_mermaid, "dot": to_dot, "svg": to_svg}[args.format]
    print(render(graph, loaded.spec.phases), end="")
    return EXIT_OK


def cmd_new(args) -> int:
    from .scaffold import new_plugin, new_spec
    if args.new_command == "spec":
        path = new_spec(args.family, args.file)
        print(f"wrote {path}\ncheck it: lvmgraph validate {path}\nrun it:   lvmgraph run {path}")
        return EXIT_OK
    written = new_plugin(args.name, args.dir)
    root = Path(args.dir) / args.name
    print(f"wrote the plugin package {root}:")
    for path in written:
        print(f"  {path}")
    spec = next(p for p in written if p.suffix == ".yaml")
    print(f"next:\n  cd {root} && pip install -e . && python -m pytest\n"
          f"  lvmgraph run {spec.relative_to(root)}")
    return EXIT_OK


def cmd_plugins(args) -> int:
    from .plugins import build_registry, make_plugin_manager
    from .plugins.describe import describe_entry
    from .plugins.manager import plugin_listing
    pm = make_plugin_manager()
    registry = build_registry(pm)
    if args.detail:
        entries = [e for e in registry.entries() if e.name == args.detail or e.plugin == args.detail]
        if args.kind:
            entries = [e for e in entries if e.kind == args.kind]
        if not entries:
            from .plugins.registry import did_you_mean
            names = {e.name for e in registry.entries()} | {e.plugin for e in registry.entries()}
            match = did_you_mean(args.detail, names)
            print(f"nothing registered as '{args.detail}'" + (f"; did you mean '{match}'?" if match else ""),
                  file=sys.stderr)
            return EXIT_SPEC
        out = [describe_entry(e) for e in entries]
        if args.json:
            print(json.dumps(out, indent=2, default=str))
        else:
            for d in out:
                print(f"{d['kind']} {d['name']}  (plugin {d['plugin']})")
                if d["doc"]:
                    print("  " + d["doc"].replace("\n", "\n  "))
                for name, f in d["settings"].items():
                    default = ("from the data" if f.get("from_data") else
                               "required" if f["required"] else f"default {f['default']!r}")
                    print(f"    {name}: {f['type']} ({default}) {f['description']}")
                print()
        return EXIT_OK
    rows = plugin_listing(pm, registry)
    if args.kind:
        rows = [dict(r, registers={k: v for k, v in r["registers"].items() if k == args.kind}) for r in rows]
        rows = [r for r in rows if r["registers"]]
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    for r in rows:
        print(f"{r['name']}  ({r['package'] or 'local'} {r['version'] or ''})".rstrip())
        for kind, names in r["registers"].items():
            label = {"loss": "losses"}.get(kind, kind + "s")
            print(f"  {label + ':':<12} {', '.join(names)}")
    return EXIT_OK


def cmd_docs(args) -> int:
    from .reference import generate, stale, write
    pages = generate(all_plugins=args.all_plugins)
    if not args.check:
        write(pages, args.out)
        print(f"wrote {len(pages)} pages to {args.out}")
        return EXIT_OK
    problems = stale(pages, args.out)
    for path, why in problems:
        print(f"{path}: {why}", file=sys.stderr)
    if problems:
        flag = " --all-plugins" if args.all_plugins else ""
        print(f"regenerate with: lvmgraph docs --out {args.out}{flag}", file=sys.stderr)
        return EXIT_FAIL
    print(f"{args.out}: {len(pages)} pages up to date")
    return EXIT_OK


_COMMANDS = {"run": cmd_run, "resume": cmd_resume, "sample": cmd_sample, "eval": cmd_eval,
             "evaluator": cmd_evaluator, "validate": cmd_validate, "graph": cmd_graph, "plugins": cmd_plugins,
             "report": cmd_report, "docs": cmd_docs, "new": cmd_new}

if __name__ == "__main__":
    sys.exit(main())
