"""`honing generate`: text from a char_lm bundle, or a grid of images from a vae bundle (docs/generative.md).

A plain function that ``honing.cli`` registers on its app (:data:`COMMANDS`); torch is imported inside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from honing import cli_options as opts
from honing.cli_options import Quiet


def generate(
    bundle: Annotated[Path, typer.Argument(help="Bundle directory of a data.task: generation run (RUN/bundle).")],
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="char_lm: the text to continue (default: start of a line).")] = "",
    max_tokens: Annotated[int, typer.Option("--max-tokens", "-n", help="char_lm: characters to generate after the prompt.")] = 200,
    temperature: Annotated[float, typer.Option("--temperature", "-t", help="char_lm: divides the logits (< 1 surer, > 1 more varied); must be > 0.")] = 1.0,
    top_k: Annotated[int | None, typer.Option("--top-k", "-k", help="char_lm: sample among the k likeliest characters only (1 = greedy, deterministic).")] = None,
    samples: Annotated[int, typer.Option("--samples", help="vae: images to sample (decoder on z ~ N(0, I)).")] = 16,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="vae: the grid PNG to write (required); char_lm: also write the text there.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seeds the sampling (same seed, same output).")] = 0,
    quiet: Quiet = False,
) -> None:
    """Sample from a generative bundle: a char_lm continues `--prompt` (printed), a vae writes a grid PNG
    of `--samples` images to `-o`.

    Example: `honing generate runs/sst2-lm/bundle --prompt "the movie " --max-tokens 80 --temperature 0.8 --top-k 5`
    """
    from honing import api
    from honing.errors import HoningError

    loaded = api.load(bundle)
    if loaded.task != "generation":
        raise HoningError(f"{bundle} is a {loaded.task} bundle; `honing generate` needs a generative one",
                          "train one with data.task: generation (docs/generative.md)")
    if loaded.manifest.get("model_type") == "vae":
        if out is None:
            raise HoningError("--out: a vae writes its samples as a grid PNG", "add -o grid.png")
        loaded.generate(samples=samples, seed=seed, out=out)
        opts.console().print(f"wrote {samples} samples to [bold]{out}[/]")
        return
    text = loaded.generate(prompt, max_tokens, temperature=temperature, top_k=top_k, seed=seed)
    if out is not None:
        out.write_text(text, encoding="utf-8")
    typer.echo(text)


#: Registered after `honing predict` and friends.
COMMANDS = (generate,)
