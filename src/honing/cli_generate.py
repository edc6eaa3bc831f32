"""`honing generate`: text from a char_lm bundle, or a grid of images from a vae bundle (docs/generative.md).

A plain function that ``honing.cli`` registers on its app (:data:`COMMANDS`); torch is imported inside it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from honing import cli_options as opts
from honing.cli_options import Quiet


def generate(
    ctx: typer.Context,
    bundle: Annotated[Path, typer.Argument(help="Bundle directory of a data.task: generation run (RUN/bundle).")],
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="char_lm: the text to continue (default: start of a line).")] = "",
    max_tokens: Annotated[int, typer.Option("--max-tokens", "-n", help="char_lm: characters to generate after the prompt.")] = 200,
    temperature: Annotated[float, typer.Option("--temperature", "-t", help="char_lm: divides the logits (< 1 surer, > 1 more varied); a finite number > 0.")] = 1.0,
    top_k: Annotated[int | None, typer.Option("--top-k", "-k", help="char_lm: sample among the k likeliest characters only (1 = greedy, deterministic).")] = None,
    samples: Annotated[int, typer.Option("--samples", help="vae: images to sample (decoder on z ~ N(0, I)).")] = 16,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="vae: the grid PNG to write (required); char_lm: also write the text there.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seeds the sampling (same seed, same output).")] = 0,
    quiet: Quiet = False,
) -> None:
    """Sample from a generative bundle: a char_lm continues `--prompt` (printed), a vae writes a grid PNG
    of `--samples` images to `-o`. An option of the other kind is refused; missing folders of `-o` are created.

    Example: `honing generate runs/sst2-lm/bundle --prompt "the movie " --max-tokens 80 --temperature 0.8 --top-k 5`
    """
    from honing import api
    from honing.errors import HoningError, with_article
    from honing.tracking import write_text

    if not (math.isfinite(temperature) and temperature > 0):
        raise HoningError(f"--temperature must be a finite number > 0 (got {temperature})",
                          "use e.g. 0.8; --top-k 1 is greedy")
    if out is not None and out.is_dir():
        raise HoningError(f"--out {out}: is a folder", "give a file name to write (a .png for a vae)")
    loaded = api.load(bundle)
    if loaded.task != "generation":
        raise HoningError(f"{bundle} is {with_article(loaded.task)} bundle; `honing generate` needs a generative one",
                          "train one with data.task: generation (docs/generative.md)")
    kind = loaded.manifest.get("model_type")
    _refuse_options_of_others(ctx, kind)
    if kind == "vae":
        if out is None:
            raise HoningError("--out: a vae writes its samples as a grid PNG", "add -o grid.png")
        loaded.generate(samples=samples, seed=seed, out=out)
        opts.console().print(f"wrote {samples} samples to [bold]{out}[/]")
        return
    text = loaded.generate(prompt, max_tokens, temperature=temperature, top_k=top_k, seed=seed)
    if out is not None:
        write_text(out, text)
    typer.echo(text)


#: The options (parameter names) that only one kind of generative model takes.
OPTIONS_OF = {"char_lm": ("prompt", "max_tokens", "temperature", "top_k"), "vae": ("samples",)}


def _refuse_options_of_others(ctx: typer.Context, kind: str) -> None:
    """An option given for another kind of model (--prompt to a vae, --samples to a char_lm) is an error,
    not silently ignored."""
    from honing.errors import HoningError

    for other, names in OPTIONS_OF.items():
        given = [n for n in names if other != kind and ctx.get_parameter_source(n).name == "COMMANDLINE"]
        if given:
            takes = ", ".join(f"--{n.replace('_', '-')}" for n in OPTIONS_OF.get(kind, ()))
            raise HoningError(f"--{given[0].replace('_', '-')}: applies to a {other} bundle, and this is a {kind}",
                              f"drop it; a {kind} takes {takes + ', ' if takes else ''}-o and --seed")


#: Registered after `honing predict` and friends.
COMMANDS = (generate,)
