"""`hominem reward ...`: train the reward model outside Dagster, check it against the teacher, probe it."""

from __future__ import annotations

import json
from typing import Any

import click

from hominem_pipeline.settings import Settings


def _settings() -> Settings:
    return Settings()


def _fmt(v: float | None, spec: str = "+.3f") -> str:
    return "  n/a " if v is None else format(v, spec)


def _load(version: str | None) -> Any:
    from hominem_pipeline.reward_model.model import RewardModel
    from hominem_pipeline.reward_model.registry import resolve_version

    try:
        folder, how = resolve_version(_settings().artifacts_dir, version)
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from exc
    model = RewardModel.load(folder)
    if how == "latest":
        click.echo(
            f"note: no accepted (`current`) reward model; using the latest, {model.version}, "
            "which did not beat the trivial baseline on validation",
            err=True,
        )
    return model


@click.group()
def reward() -> None:
    """The reward model: train, compare with the teacher, probe candidates."""


@reward.command("train")
@click.option(
    "--samples",
    "samples_file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Labels JSONL (default: data/labeled/reward_samples.jsonl)",
)
@click.option("--json", "as_json", is_flag=True, help="Print the full metrics as JSON")
def train(samples_file: str | None, as_json: bool) -> None:
    """Train on the teacher's labels and imported preferences; publish a version under artifacts/."""
    from hominem_pipeline.reward_model.evaluate import describe_verdict
    from hominem_pipeline.reward_model.pipeline import train_and_publish
    from hominem_pipeline.reward_model.train import TrainingError

    try:
        run = train_and_publish(_settings(), samples_file, log_fn=lambda m: click.echo(m, err=True))
    except (FileNotFoundError, TrainingError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    metrics = run.result.metrics
    if as_json:
        click.echo(json.dumps(metrics, indent=2))
    else:
        click.echo(f"{'head':22s} {'n':>3s} {'MAE':>7s} {'baseline':>8s} {'pearson':>8s} {'spearman':>8s}")
        for head, m in metrics["validation"]["heads"].items():
            click.echo(
                f"{head:22s} {m['n']:3d} {m['mae']:7.4f} {m['baseline_mae']:8.4f} "
                f"{_fmt(m['pearson']):>8s} {_fmt(m['spearman']):>8s}"
            )
        s = metrics["validation"]["summary"]
        if s["mae_mean"] is not None:
            click.echo(f"{'mean':22s}     {s['mae_mean']:7.4f} {s['baseline_mae_mean']:8.4f}")
        p = metrics["pairs"]
        if p.get("n"):
            lo, hi = p["accuracy_ci95"]
            click.echo(
                f"validation pairs: {p['n']}, accuracy {p['accuracy']:.3f} (95% CI {lo:.3f}-{hi:.3f}; "
                f"constant 0.500, longer-wins {p['longer_wins_accuracy']:.3f}), calibration error "
                f"{_fmt(p.get('ece'), '.3f')}"
            )
            click.echo(f"  {'source':34s} {'n':>5s} {'accuracy':>8s} {'95% CI':>13s} {'longer-wins':>11s}")
            for source, m in p["by_source"].items():
                ci = f"{m['accuracy_ci95'][0]:.3f}-{m['accuracy_ci95'][1]:.3f}"
                click.echo(
                    f"  {source[:34]:34s} {m['n']:5d} {m['accuracy']:8.3f} {ci:>13s} {m['longer_wins_accuracy']:11.3f}"
                )
        click.echo("length bias (pearson with response length), model / teacher:")
        for head, lb in metrics["length_bias"].items():
            click.echo(f"  {head:22s} {_fmt(lb['model'])} / {_fmt(lb['teacher'])}")
    click.echo(f"verdict: {describe_verdict(metrics['verdict'])}")
    verdict = "accepted as current" if run.published.accepted else "NOT accepted: the verdict did not pass"
    click.echo(f"version {run.published.version} at {run.published.path} ({verdict})")


@reward.command("test-inference")
@click.option("--version", default=None, help="Version folder name or path (default: current, else latest)")
@click.option(
    "--samples",
    "samples_file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Labels JSONL (default: the file the model was trained on)",
)
@click.option("-n", "count", default=3, show_default=True, help="How many validation samples to show")
def test_inference(version: str | None, samples_file: str | None, count: int) -> None:
    """Print predicted vs teacher labels for a few validation samples."""
    from hominem_pipeline.reward_model.probe import validation_samples

    model = _load(version)
    try:
        samples = validation_samples(model, samples_file)
    except (FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    if not samples:
        raise click.ClickException("the model's split has no validation samples")
    shown = samples[:count]
    outputs = model.score_batch([(s.prompt, s.response) for s in shown])
    click.echo(f"reward model {model.version}: {len(shown)} of {len(samples)} validation samples")
    for s, o in zip(shown, outputs, strict=True):
        click.echo(f"--- {s.label_id or ''}")
        click.echo(f"prompt:   {s.prompt[:200]}")
        click.echo(f"response: {s.response[:300]}")
        click.echo(f"  {'':22s} {'predicted':>9s} {'teacher':>8s} {'error':>7s}")
        values = {
            **o.reward_vector,
            "reward_intensity": o.reward_intensity,
            "safety_score": o.safety_score,
            "scalar_preference": o.scalar_preference,
        }
        for name, pred in values.items():
            teacher = s.targets.get(name)
            err = None if teacher is None else pred - teacher
            click.echo(f"  {name:22s} {pred:+9.3f} {_fmt(teacher, '+8.3f'):>8s} {_fmt(err, '+7.3f'):>7s}")


@reward.command("probe")
@click.option("--prompt", required=True, help="The user's message")
@click.option("--response", "responses", multiple=True, required=True, help="A candidate reply (repeatable)")
@click.option("--version", default=None, help="Version folder name or path (default: current, else latest)")
@click.option(
    "--threshold", default=0.05, show_default=True, help="Spread above which a difference is highlighted"
)
def probe(prompt: str, responses: tuple[str, ...], version: str | None, threshold: float) -> None:
    """Score candidates: each dimension, intensity and safety, the gate's weights for the prompt, P(A over B),
    and which dimensions differ and by how much."""
    from hominem_pipeline.reward_model.probe import check_candidates, differences

    check_candidates(prompt, responses)
    model = _load(version)
    outputs = model.score_batch([(prompt, r) for r in responses])
    labels = [chr(ord("A") + i) if i < 26 else str(i) for i in range(len(responses))]
    click.echo(f"reward model {model.version}")
    for lab, r, o in zip(labels, responses, outputs, strict=True):
        click.echo(f"[{lab}] {r[:200]}")
        click.echo("    " + ", ".join(f"{k}={v:+.3f}" for k, v in o.reward_vector.items()))
        click.echo(
            f"    reward_intensity={o.reward_intensity:.3f} safety_score={o.safety_score:.3f} "
            f"scalar_preference={o.scalar_preference:+.3f}"
        )
    gate = outputs[0].gate
    click.echo(
        "gate (weight of each dimension in scalar_preference for this prompt): "
        + ", ".join(f"{d}={w:.2f}" for d, w in sorted(gate.items(), key=lambda kv: -kv[1]) if w >= 0.005)
    )
    if len(outputs) >= 2:
        click.echo(
            f"P(A preferred over B) = {model.preference_probability(prompt, responses[0], responses[1]):.3f} "
            f"(temperature {model.params.temperature:.3f}, calibrated on held-out pairs)"
        )
    diffs = differences(outputs)
    if not diffs:
        return
    click.echo("differences between candidates (largest spread first; * = spread above the threshold):")
    for d in diffs:
        mark = "*" if d.spread > threshold else " "
        vals = " ".join(f"{lab}={v:+.3f}" for lab, v in zip(labels, d.values, strict=True))
        click.echo(
            f" {mark} {d.name:22s} spread {d.spread:.3f}  highest {labels[d.highest]}, lowest {labels[d.lowest]}  ({vals})"
        )
