"""`freshtoken completion bash|zsh|fish`: click's shell completion script, to source."""

from __future__ import annotations

import click


@click.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the completion script for SHELL (what _FRESHTOKEN_COMPLETE=SHELL_source prints).

    \b
    Examples:
      eval "$(freshtoken completion bash)"                       # in ~/.bashrc
      eval "$(freshtoken completion zsh)"                        # in ~/.zshrc
      freshtoken completion fish > ~/.config/fish/completions/freshtoken.fish
    """
    from click.shell_completion import get_completion_class

    root = ctx.find_root()
    make = get_completion_class(shell)
    assert make is not None
    assert isinstance(root.command, click.Command)
    script = make(root.command, {}, "freshtoken", "_FRESHTOKEN_COMPLETE").source()
    click.echo(script)
