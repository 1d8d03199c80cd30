"""Declarative form fields for the installer screens.

A screen lists its fields; each field knows its widgets and its current value. Screens never
touch urwid state directly, which keeps them short and lets tests read values back the same way
the wizard does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import urwid


@dataclass
class Choice:
    """One of several options (radio buttons); ``options`` are ``(value, text)`` pairs."""

    label: str
    options: Sequence[tuple[Any, str]]
    selected: Any = None
    _buttons: list[urwid.RadioButton] = field(default_factory=list, repr=False)

    def widgets(self) -> list[urwid.Widget]:
        group: list[urwid.RadioButton] = []
        values = [value for value, _ in self.options]
        chosen = self.selected if self.selected in values else (values[0] if values else None)
        self._buttons = [
            urwid.RadioButton(group, text, state=value == chosen) for value, text in self.options
        ]
        return [urwid.Text(self.label), *self._buttons] if self.label else list(self._buttons)

    def value(self) -> Any:
        for (value, _), button in zip(self.options, self._buttons, strict=True):
            if button.get_state():
                return value
        return None

    def focused_value(self, widget: urwid.Widget) -> Any:
        for (value, _), button in zip(self.options, self._buttons, strict=True):
            if button is widget:
                return value
        return None


@dataclass
class Checks:
    """Any number of options (check boxes)."""

    label: str
    options: Sequence[tuple[Any, str]]
    selected: Sequence[Any] = ()
    _boxes: list[urwid.CheckBox] = field(default_factory=list, repr=False)

    def widgets(self) -> list[urwid.Widget]:
        self._boxes = [
            urwid.CheckBox(text, state=value in self.selected) for value, text in self.options
        ]
        return [urwid.Text(self.label), *self._boxes]

    def value(self) -> list[Any]:
        return [v for (v, _), box in zip(self.options, self._boxes, strict=True) if box.get_state()]

    def focused_value(self, widget: urwid.Widget) -> Any:
        for (value, _), box in zip(self.options, self._boxes, strict=True):
            if box is widget:
                return value
        return None


@dataclass
class Entry:
    """A line of text; ``secret`` masks it (passwords)."""

    label: str
    text: str = ""
    secret: bool = False
    _edit: urwid.Edit | None = field(default=None, repr=False)

    def widgets(self) -> list[urwid.Widget]:
        self._edit = urwid.Edit(f"{self.label}: ", self.text, mask="*" if self.secret else None)
        return [urwid.AttrMap(self._edit, "edit", "edit focus")]

    def value(self) -> str:
        return self._edit.edit_text if self._edit is not None else self.text

    def focused_value(self, widget: urwid.Widget) -> Any:
        return None


@dataclass
class Note:
    """Read-only text on a form (explanations, warnings, summaries)."""

    text: str
    style: str = "body"

    def widgets(self) -> list[urwid.Widget]:
        return [urwid.AttrMap(urwid.Text(self.text), self.style)]

    def value(self) -> None:
        return None

    def focused_value(self, widget: urwid.Widget) -> Any:
        return None


Field = Choice | Checks | Entry | Note
