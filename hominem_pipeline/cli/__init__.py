"""`hominem`: the command-line face over the domain modules (no Dagster needed to run it).

Each command group lives in its own module here and is registered below.
"""

from __future__ import annotations

import click

from hominem_pipeline.cli import conversations as _conversations
from hominem_pipeline.cli import labels as _labels


@click.group()
@click.version_option(package_name="hominem")
def main() -> None:
    """hominem: continual learning for a local language model."""


main.add_command(_labels.labels)
main.add_command(_labels.summary)
main.add_command(_labels.manifold)
main.add_command(_conversations.extract_sft)
_conversations.register_import(main)  # `hominem import conversations`

if __name__ == "__main__":
    main()
