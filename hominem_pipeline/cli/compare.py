"""`hominem compare --prompt P`: the base model's output next to base+LoRA's, with a word diff and the
reward model's scores for each."""

from __future__ import annotations

import json
import shutil
import textwrap

import click

from hominem_pipeline.adapters import CURRENT, AdapterRegistryError
from hominem_pipeline.cli.adapters import registry_for
from hominem_pipeline.evaluation.compare import Comparison, Scored, compare_prompt
from hominem_pipeline.reward_model import current_with_note
from hominem_pipeline.settings import Settings


def _side_by_side(left: str, right: str, width: int) -> list[str]:
    col = max(20, (width - 3) // 2)
    a = textwrap.wrap(left, col) or [""]
    b = textwrap.wrap(right, col) or [""]
    a += [""] * (len(b) - len(a))
    b += [""] * (len(a) - len(b))
    return [f"{x:<{col}} | {y}" for x, y in zip(a, b, strict=True)]


def _score_lines(label: str, s: Scored) -> list[str]:
    if s.reward_vector is None:
        return []
    vec = ", ".join(f"{k}={v:+.2f}" for k, v in s.reward_vector.items())
    return [
        f"{label}: {vec}",
        f"{' ' * len(label)}  intensity={s.reward_intensity:.2f} safety={s.safety_score:.2f}",
    ]


@click.command()
@click.option("--prompt", "-p", required=True, help="The prompt to answer")
@click.option(
    "--adapter", "ref", default=CURRENT, show_default=True, help="Adapter version, prefix or pointer"
)
@click.option(
    "--model", "model_name", default=None, help="Model folder under artifacts/lora/ (default: the student)"
)
@click.option("--max-new-tokens", default=64, show_default=True, type=click.IntRange(1, 2048))
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON")
def compare(prompt: str, ref: str, model_name: str | None, max_new_tokens: int, as_json: bool) -> None:
    """Base output vs LoRA output for one prompt (greedy), side by side, with a word diff and reward scores."""
    registry = registry_for(model_name)
    reward_model, note = current_with_note(Settings().artifacts_dir)
    try:
        result: Comparison = compare_prompt(
            registry,
            ref,
            prompt,
            max_new_tokens=max_new_tokens,
            reward_model=reward_model,
            reward_model_note=note,
        )
    except AdapterRegistryError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(result.model_dump_json(indent=2))
        return
    width = min(shutil.get_terminal_size((120, 20)).columns, 160)
    click.echo(f"prompt: {prompt}")
    click.echo(f"adapter: {result.adapter_version} ({ref})")
    click.echo("")
    for line in _side_by_side("BASE", f"BASE + LoRA {result.adapter_version}", width):
        click.echo(line)
    click.echo("-" * width)
    for line in _side_by_side(result.base.output, result.lora.output, width):
        click.echo(line)
    click.echo("")
    click.echo("diff ([-base only-] {+LoRA only+}):")
    click.echo(textwrap.fill(result.diff, width) if result.diff else "(both empty)")
    click.echo("")
    if result.reward_model is None:
        click.echo(f"reward scores: not shown: {note}")
        return
    click.echo(f"reward scores ({note}):")
    for line in _score_lines("base", result.base) + _score_lines("lora", result.lora):
        click.echo(line)
    deltas = {k: result.lora.reward_vector[k] - v for k, v in (result.base.reward_vector or {}).items()}
    click.echo("change:  " + json.dumps({k: round(v, 3) for k, v in deltas.items()}))
