"""Per-host answer files from Jinja2 templates, validated before anyone sees them.

Templates may come from operators, and values (host names, tokens) from hosts' requests, so the
environment is sandboxed, every value is XML-escaped (a value cannot add or close elements), a
missing variable is an error that names it, and the output must parse and validate: a host is
never handed an answer file that would fail halfway through an install.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from jinja2 import FileSystemLoader, StrictUndefined, TemplateError, TemplateNotFound
from jinja2.exceptions import TemplateSyntaxError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from answerfiles.errors import AnswerFileError, Problem
from answerfiles.parse import parse_answerfile

TEMPLATES = Path(__file__).parent / "templates"
_SUFFIX = ".xml.j2"


class RenderError(AnswerFileError):
    """A template that could not produce a valid answer file for a host."""

    def __init__(self, template: str, host: str, problems: list[Problem]) -> None:
        super().__init__(problems)
        self.template = template
        self.host = host
        lines = "\n".join(str(p) for p in self.problems)
        self.args = (f"template {template!r} for host {host or '(none)'!r} gives no valid "
                     f"answer file:\n{lines}",)


def list_templates() -> list[str]:
    """Names of the bundled templates (partials, named ``_*``, excluded)."""
    return list(_bundled())


@dataclass(frozen=True)
class _Listing:
    mtime_ns: int
    names: tuple[str, ...]


_listing: _Listing | None = None


def _bundled() -> tuple[str, ...]:
    """The bundled names, listed again only when the folder changed: every render checks its
    template name against them, and a glob per answer file was a tenth of the render's time."""
    global _listing  # noqa: PLW0603 - one listing per process, replaced whole (no lock needed)
    mtime = TEMPLATES.stat().st_mtime_ns
    listing = _listing
    if listing is None or listing.mtime_ns != mtime:
        names = sorted(p.name.removesuffix(_SUFFIX) for p in TEMPLATES.glob(f"*{_SUFFIX}")
                       if not p.name.startswith("_"))
        listing = _listing = _Listing(mtime, tuple(names))
    return listing.names


def render_template(template: str, variables: Mapping[str, object], *, host: str = "") -> str:
    """The validated answer file ``template`` (bundled name or path) gives with ``variables``."""
    directory, name = _locate(template)

    def fail(message: str, line: int = 0, path: str = "template") -> RenderError:
        return RenderError(template, host, [Problem(template, line, path, message)])

    try:
        text = _environment(directory).get_template(name).render(dict(variables))
    except TemplateNotFound as exc:
        raise fail(f"template {exc.name!r} not found") from None
    except TemplateSyntaxError as exc:
        raise fail(f"syntax error: {exc.message}", exc.lineno or 0) from None
    except UndefinedError as exc:
        raise fail(f"{exc.message}: give this variable a value") from None
    except SecurityError as exc:
        raise fail(f"refused by the sandbox: {exc}") from None
    except TemplateError as exc:
        raise fail(str(exc)) from None
    try:
        parse_answerfile(text, source=f"{name} rendered for {host or 'no host'}")
    except AnswerFileError as exc:
        raise RenderError(template, host, list(exc.problems)) from None
    return text


@lru_cache(maxsize=64)
def _environment(directory: Path) -> SandboxedEnvironment:
    """One environment per template folder: Jinja caches compiled templates in it and reloads a
    file when it changes, so a server rendering for every host compiles each template once."""
    return SandboxedEnvironment(loader=FileSystemLoader(directory), undefined=StrictUndefined,
                                autoescape=True, keep_trailing_newline=True)


def _locate(template: str) -> tuple[Path, str]:
    """A bundled name, or a path to a template file (its folder serves its includes)."""
    if "/" not in template and not template.endswith(".j2"):
        if template not in _bundled():
            raise RenderError(template, "", [Problem(
                template, 0, "template",
                f"no bundled template named {template!r}: allowed "
                f"{', '.join(_bundled())}, or a path to a .xml.j2 file")])
        return TEMPLATES, template + _SUFFIX
    path = Path(template)
    if not path.is_file():
        raise RenderError(template, "", [Problem(template, 0, "template",
                                                 "no such template file")])
    return path.parent, path.name
