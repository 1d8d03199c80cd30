"""``xcp-provision answerfile``: validate answer files, render templates, hash root passwords.

Exit codes follow the usual convention so scripts can rely on them: 0 valid, 1 invalid (every
problem on stderr), 2 usage error (click's own).
"""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

import click

from answerfiles.errors import AnswerFileError
from answerfiles.parse import parse_answerfile
from answerfiles.password import hash_password
from answerfiles.render import render_template


@click.group()
def answerfile() -> None:
    """XCP-ng 8.3 answer files: validate, render from templates, hash root passwords."""


@answerfile.command()
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, allow_dash=True))
def validate(files: tuple[str, ...]) -> None:
    """Check each FILE ("-" reads stdin); every problem goes to stderr with its line."""
    invalid = 0
    for name in files:
        data = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
        source = "<stdin>" if name == "-" else name
        try:
            parsed = parse_answerfile(data, source)
        except AnswerFileError as exc:
            invalid += 1
            for problem in exc.problems:
                click.echo(str(problem), err=True)
            continue
        for warning in parsed.warnings:
            click.echo(str(warning), err=True)
        click.echo(f"{source}: valid, mode {parsed.answers.mode}")
    if invalid:
        raise SystemExit(1)


@answerfile.command()
@click.argument("template")
@click.option("--var", "pairs", multiple=True, metavar="NAME=VALUE",
              help="A template variable; repeatable; wins over --vars.")
@click.option("--vars", "vars_file", type=click.Path(exists=True, dir_okay=False),
              help="A JSON or TOML file of template variables.")
def render(template: str, pairs: tuple[str, ...], vars_file: str | None) -> None:
    """Print the answer file TEMPLATE gives, after validating it.

    TEMPLATE is a bundled template name or a path to a .xml.j2 file.
    """
    variables: dict[str, object] = _read_vars(Path(vars_file)) if vars_file else {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="--var")
        variables[name.strip()] = value
    host = str(variables.get("hostname", ""))
    try:
        click.echo(render_template(template, variables, host=host), nl=False)
    except AnswerFileError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from None


def _read_vars(path: Path) -> dict[str, object]:
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        kind = "TOML" if path.suffix == ".toml" else "JSON"
        raise click.BadParameter(f"{path} is not valid {kind}: {exc}",
                                 param_hint="--vars") from None
    if not isinstance(data, dict):
        raise click.BadParameter(f"{path} must hold a table of NAME: value", param_hint="--vars")
    return data


@answerfile.command("hash-password")
def hash_password_command() -> None:
    """Print a SHA-512 crypt hash for <root-password type="hash">.

    The password is read from the terminal (asked twice) or, when stdin is not a terminal, from
    its first line; never from the command line, where other users could see it.
    """
    if sys.stdin.isatty():
        plain = click.prompt("Root password", hide_input=True, confirmation_prompt=True,
                             err=True)
    else:
        plain = sys.stdin.readline().rstrip("\r\n")
    if not plain:
        click.echo("error: the password is empty: give one on the terminal or on stdin",
                   err=True)
        raise SystemExit(1)
    click.echo(hash_password(plain))
