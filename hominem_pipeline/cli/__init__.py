"""`hominem`: the command-line face over the domain modules (no Dagster needed to run it).

Each command group lives in its own module here and is registered below.
"""

from __future__ import annotations

import click

from hominem_pipeline.cli import adapters as _adapters
from hominem_pipeline.cli import compare as _compare
from hominem_pipeline.cli import conversations as _conversations
from hominem_pipeline.cli import health as _health
from hominem_pipeline.cli import imports as _imports
from hominem_pipeline.cli import labels as _labels
from hominem_pipeline.cli import reward as _reward
from hominem_pipeline.cli import serve as _serve
from hominem_pipeline.cli import sft as _sft
from hominem_pipeline.cli import simulate as _simulate
from hominem_pipeline.cli import train as _train
from hominem_pipeline.cli.errors import ErrorBoundary


@click.group(cls=ErrorBoundary)
@click.version_option(package_name="hominem")
@click.option("--debug", is_flag=True, help="Show the full traceback of a failure (also: HOMINEM_DEBUG=1)")
def main(debug: bool) -> None:
    """hominem: continual learning for a local language model."""


main.add_command(_labels.labels)
main.add_command(_labels.summary)
main.add_command(_labels.manifold)
main.add_command(_adapters.adapters)
main.add_command(_adapters.note_cmd)  # `hominem note VERSION TEXT`
main.add_command(_sft.sft)  # `hominem sft stats|introspection`
main.add_command(_compare.compare)
main.add_command(_train.train)
main.add_command(_reward.reward)
main.add_command(_imports.import_group)
main.add_command(_health.health)
main.add_command(_conversations.extract_sft)
_conversations.register_import(main)  # `hominem import conversations`
_serve.register(main)  # `hominem serve`, `hominem use`
main.add_command(_simulate.simulate)

if __name__ == "__main__":
    main()
