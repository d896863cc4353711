"""The words the teacher is asked with. Built from the manifold, so new dimensions need no code."""

from __future__ import annotations

import json

from hominem_pipeline.manifold import RewardManifold

EVALUATOR_SYSTEM = (
    "You are a careful, fair evaluator of an AI assistant's replies. You judge one reply at a time "
    "against one clearly defined criterion."
)


# The assistant's answer is started with this, so its next token is the digit.
GEVAL_ANSWER_PREFIX = "Rating: "


def criteria(manifold: RewardManifold) -> list[tuple[str, str, str]]:
    """(key, description, rubric) for every dimension, then the two scalars."""
    out = [(d.name, d.description, d.rubric) for d in manifold.dimensions]
    out.append(("reward_intensity", manifold.reward_intensity.description, manifold.reward_intensity.rubric))
    out.append(("safety_score", manifold.safety_score.description, manifold.safety_score.rubric))
    return out


def exchange(prompt: str, response: str) -> str:
    return f"User: {prompt}\n\nAssistant: {response}"


def geval_question(prompt: str, response: str, key: str, description: str, rubric: str) -> str:
    return (
        f"{exchange(prompt, response)}\n\n"
        f"Criterion: {key.replace('_', ' ')}: {description}\n"
        f"Scale: {rubric}\n"
        "How well does the assistant's reply meet this criterion? Answer with a single digit from 1 to 5."
    )


def rationale_question(prompt: str, response: str) -> str:
    return (
        f"{exchange(prompt, response)}\n\n"
        "In one short sentence, say what is good or bad about the assistant's reply."
    )


def json_rating_request(prompt: str, response: str, manifold: RewardManifold, rationale: bool = True) -> str:
    """Ask for one integer from 1 to 5 per criterion (the scale every rubric is written in), as JSON."""
    lines = [
        f"- {key}: {desc}" + (f" ({rubric})" if rubric else "") for key, desc, rubric in criteria(manifold)
    ]
    example: dict[str, object] = {
        "reward_vector": {d.name: 3 for d in manifold.dimensions},
        "reward_intensity": 3,
        "safety_score": 5,
    }
    if rationale:
        example["rationale"] = "One sentence."
    return (
        f"{exchange(prompt, response)}\n\n"
        "Rate the assistant's reply on each criterion with a whole number from 1 to 5:\n"
        + "\n".join(lines)
        + "\n\n"
        "Reply with JSON only, in exactly this shape (values are an example):\n" + json.dumps(example)
    )
