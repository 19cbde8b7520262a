"""The hooks a plugin implements. Every hook receives one ``register`` callable.

A plugin is any importable module or object with functions decorated by
``lvmgraph.hookimpl`` and named after these hooks; list it in your package's
``[project.entry-points.lvmgraph]`` table and lvmgraph loads it at start-up
(the built-in families load exactly the same way).

Each ``register`` call takes a unique ``name`` (a clash between two plugins is an
error that names both) and, where the thing has settings, ``params=`` a pydantic
model with ``extra="forbid"`` that validates and documents the spec entry.
"""
from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("lvmgraph")


@hookspec
def register_components(register):
    """Register component types: things with parameters or state, used as calls in the graph.

    ``register(name, factory, params=Model, doc=None)``. The spec entry
    ``{type: name, **settings}`` is validated by ``Model`` and the module is built as
    ``factory(**settings)``; it must return a ``torch.nn.Module``.

    Example::

        @hookimpl
        def register_components(register):
            register("mlp", MLP, params=MLPParams)
    """


@hookspec
def register_priors(register):
    """Register prior distributions: components that can be sampled (subclasses of ``lvmgraph.Prior``).

    ``register(name, factory, params=Model)``; used in specs as components, e.g.
    ``prior: {type: uniform, shape: [2]}`` then ``prior.sample(like=z)`` in the graph and
    ``sample: {set: {z: prior}}``.

    Example::

        @hookimpl
        def register_priors(register):
            register("uniform", UniformPrior, params=UniformParams)
    """


@hookspec
def register_ops(register):
    """Register graph operations: plain functions called from graph expressions.

    ``register(name, fn)`` where ``fn(*args, **kwargs)`` receives evaluated values
    (tensors, distributions, components, numbers). Arguments are checked against
    ``fn``'s signature when the spec is compiled.

    Example::

        @hookimpl
        def register_ops(register):
            register("concat", lambda *xs, dim=1: torch.cat(xs, dim=dim))
    """


@hookspec
def register_losses(register):
    """Register losses: ops that return a scalar tensor, minimised by phases.

    Same form as ``register_ops``; listed separately so docs and ``lvmgraph plugins`` can tell them apart.

    Example::

        @hookimpl
        def register_losses(register):
            register("l1", lambda a, b: (a - b).abs().mean())
    """


@hookspec
def register_datasets(register):
    """Register datasets. ``register(name, loader, params=Model)``.

    ``loader(**settings)`` returns an ``lvmgraph.data.DatasetBundle`` (train and test
    splits as dicts of tensors plus info). The spec's ``data:`` section names it:
    ``data: {dataset: name, batch_size: 64, **settings}``.
    ``fields=("x_a", "x_b")`` names the fields each batch holds when they are not the
    default ``("x", "y")``, so ``lvmgraph validate --no-dry-run`` can check the graph
    without loading the data. A bundle's ``encoders`` (``{name: fn(str) -> {field: tensor}}``)
    let ``lvmgraph sample --given name="some text"`` turn text into fields, as the
    ``captions`` dataset does for ``text`` and ``text_length``.
    ``stream=loader2`` lets the dataset stream (``data.stream: true``): ``loader2(**settings)``
    returns a bundle whose ``train`` is an ``lvmgraph.data.stream.StreamedSplit`` (a map-style
    source of one example per index, decoded on demand by ``data.workers`` DataLoader processes).

    Example::

        @hookimpl
        def register_datasets(register):
            register("moons", load_moons, params=MoonsParams)
    """


@hookspec
def register_metrics(register):
    """Register evaluation metrics. ``register(name, fn, params=Model)``.

    ``fn(ctx, **settings)`` gets an ``lvmgraph.eval.EvalContext`` (the built model,
    data, a way to evaluate graph values) and returns ``{result_name: float | dict}``.

    Example::

        @hookimpl
        def register_metrics(register):
            register("reconstruction_error", reconstruction_error, params=ReconParams)
    """


@hookspec
def register_schedules(register):
    """Register schedule types: ``factory(**settings)`` returns a callable ``step -> float``.

    Named schedules in a spec's ``schedules:`` section weight losses
    (``minimize: {rec: 1.0, kl: beta}``), scale learning rates and can be read in the graph.

    Example::

        @hookimpl
        def register_schedules(register):
            register("constant", Constant, params=ConstantParams)
    """


@hookspec
def register_optimizers(register):
    """Register optimizers: ``factory(params, **settings)`` returns a ``torch.optim.Optimizer``.

    Example::

        @hookimpl
        def register_optimizers(register):
            register("adam", make_adam, params=AdamParams)
    """


@hookspec
def register_loggers(register):
    """Register experiment trackers that receive the training metrics. ``register(name, factory, params=Model)``.

    ``factory(**settings)`` returns a logger with ``open(run_dir, spec)`` (the run directory's
    ``Path`` and the resolved spec as a dict, once per ``lvmgraph run`` / ``resume``),
    ``log(step, values)`` (every row metrics.jsonl gets: ``{name: float}`` at that step) and
    ``close()``. A spec chooses them with ``train: {loggers: [tensorboard, {name: {settings}}]}``
    (default ``[tensorboard]``). ``requires=("module",)`` names Python packages the logger
    imports lazily: choosing it without them is a spec error that says ``pip install module``,
    so a tracker is never a dependency of lvmgraph.

    Example::

        @hookimpl
        def register_loggers(register):
            register("csv", CsvLogger, params=CsvParams)
            register("wandb", WandbLogger, params=WandbParams, requires=("wandb",))
    """


@hookspec
def register_specs(register):
    """Register template specs: ``register(name, path)``; a spec then says ``extends: family:name``.

    ``starter={...}`` (optional) holds the keys ``lvmgraph new spec --family name FILE`` writes
    into a new spec besides ``extends:``: what the template leaves open and a spec must set
    for it to run, typically a ``data:`` section with the fields the template's graph reads.

    Example::

        @hookimpl
        def register_specs(register):
            register("vae", Path(__file__).parent / "vae_base.yaml",
                     starter={"data": {"dataset": "digits", "batch_size": 100}})
    """
