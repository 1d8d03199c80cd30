"""The interactive installer: screens in order, then the same backend as unattended installs.

The wizard is a widget plus a little state (the current screen and the way back); urwid's main
loop only feeds it keys. The install runs in a worker thread and reaches the screen through
``post``, so the interface never blocks and the tests can drive the wizard without a terminal.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import urwid

from answerfiles.model import AnswerFile
from answerfiles.write import write_answerfile
from installer.modes import find_installation, has_backup_marker
from installer.tui.draft import Draft
from installer.tui.form import Field, Note
from installer.tui.screens import Context, Screen, existing_installations, question_screens

if TYPE_CHECKING:
    from installer.progress import BuildDone

OnEvent = Callable[[str, int, str], None]
Backend = Callable[[AnswerFile, Context, OnEvent], None]

COLOUR = [
    ("body", "light gray", "dark blue"),
    ("header", "black", "light gray"),
    ("footer", "black", "light gray"),
    ("focus", "black", "light cyan"),
    ("edit", "black", "light gray"),
    ("edit focus", "black", "light cyan"),
    ("error", "light red,bold", "dark blue"),
    ("warning", "yellow,bold", "dark blue"),
    ("bar", "light gray", "dark blue"),
    ("bar done", "black", "light cyan"),
    ("overlay", "black", "light gray"),
]
# Serial consoles often show no colour: keep only what reverse video can express.
PLAIN = [
    ("header", "standout", ""),
    ("footer", "standout", ""),
    ("focus", "standout", ""),
    ("edit focus", "standout", ""),
    ("bar done", "standout", ""),
    ("overlay", "", ""),
]
KEYS = "F1 help  F5 disk details  F12 next  Esc back  F10 quit"
PLAIN_TERMS = ("dumb", "vt100", "vt102", "vt220", "ansi")


class Wizard(urwid.WidgetWrap):
    """Question screens, then progress, then the outcome; one top-level widget."""

    def __init__(self, ctx: Context, backend: Backend, *,
                 screens: list[Screen] | None = None,
                 post: Callable[[Callable[[], None]], None] | None = None) -> None:
        self.ctx = ctx
        self.backend = backend
        self.screens = screens if screens is not None else question_screens()
        self.post = post or (lambda fn: fn())
        self.index = 0
        self.history: list[int] = []
        self.fields: dict[str, Field] = {}
        self.error = urwid.Text("")
        self.overlay_open = False
        self.phase = "questions"
        self.exit_code: int | None = None
        self._frame = urwid.WidgetPlaceholder(urwid.SolidFill(" "))
        super().__init__(self._frame)
        self._show(self._next_shown(0))

    @property
    def screen(self) -> Screen:
        return self.screens[self.index]

    def selectable(self) -> bool:
        """Always: urwid's loop hands keys only to a selectable top widget, and the wizard must
        hear Esc, F10 and the rest whatever it shows, the text of an overlay included."""
        return True

    def text(self, size: tuple[int, int] = (80, 24)) -> str:
        """What a person would read on the terminal (used by tests and logs)."""
        canvas = self.render(size, focus=True)
        return "\n".join(line.decode("utf-8", "replace") for line in canvas.text)

    def _next_shown(self, start: int) -> int:
        i = start
        while i < len(self.screens) and not self.screens[i].shown(self.ctx):
            i += 1
        return i

    def _show(self, index: int) -> None:
        if index >= len(self.screens):
            self._start_install()
            return
        self.index = index
        screen = self.screen
        self.fields = dict(screen.fields(self.ctx))
        rows: list[urwid.Widget] = []
        if screen.help:
            rows += [urwid.Text(screen.help), urwid.Divider()]
        for field in self.fields.values():
            rows += [_focusable(w) for w in field.widgets()]
            rows.append(urwid.Divider())
        self.error.set_text("")
        rows.append(urwid.AttrMap(self.error, "error"))
        buttons = urwid.Columns([
            urwid.AttrMap(urwid.Button("Back", lambda _b: self.back()), None, "focus"),
            urwid.AttrMap(urwid.Button("Next", lambda _b: self.next()), None, "focus"),
        ], dividechars=4)
        rows.append(urwid.Padding(buttons, width=24))
        body = urwid.ListBox(urwid.SimpleFocusListWalker(rows))
        self._set_frame(screen.title, urwid.Padding(body, left=2, right=2), KEYS)
        first = next((i for i, w in enumerate(rows) if w.selectable()), None)
        if first is not None:
            body.set_focus(first)

    def _set_frame(self, title: str, body: urwid.Widget, keys: str) -> None:
        frame = urwid.Frame(
            urwid.AttrMap(body, "body"),
            header=urwid.AttrMap(urwid.Text(f" {title}"), "header"),
            footer=urwid.AttrMap(urwid.Text(f" {keys}"), "footer"),
        )
        self._frame.original_widget = frame
        self.overlay_open = False

    def values(self) -> dict[str, Any]:
        return {k: f.value() for k, f in self.fields.items() if not isinstance(f, Note)}

    def next(self) -> None:
        if self.phase != "questions":
            return
        errors = self.screen.submit(self.ctx, self.values())
        if errors:
            self.error.set_text("\n".join(errors))
            return
        self.history.append(self.index)
        self._show(self._next_shown(self.index + 1))

    def back(self) -> None:
        if self.phase == "questions" and self.history:
            self._show(self.history.pop())

    def _overlay(self, title: str, text: str) -> None:
        box = urwid.LineBox(urwid.Filler(urwid.Text(text), valign="top"), title=title)
        top = urwid.Overlay(urwid.AttrMap(box, "overlay"), self._frame.original_widget,
                            "center", ("relative", 90), "middle", ("relative", 70))
        self._frame.original_widget = top
        self.overlay_open = True

    def _close_overlay(self) -> None:
        self._frame.original_widget = self._frame.original_widget.bottom_w
        self.overlay_open = False

    def _focused_value(self) -> Any:
        frame = self._frame.original_widget
        widget = frame.focus if isinstance(frame, urwid.Frame) else None
        focus = widget.original_widget if isinstance(widget, urwid.AttrMap) else widget
        body = focus.original_widget if isinstance(focus, urwid.Padding) else focus
        if not isinstance(body, urwid.ListBox) or body.focus is None:
            return None
        chosen = body.focus
        chosen = chosen.original_widget if isinstance(chosen, urwid.AttrMap) else chosen
        for field in self.fields.values():
            value = field.focused_value(chosen)
            if value is not None:
                return value
        return None

    def keypress(self, size: tuple[int, int], key: str) -> str | None:
        if self.overlay_open:
            if key in ("esc", "enter", "f1", "f5"):
                self._close_overlay()
            return None
        if self.phase == "done":
            if key in ("enter", "f12", "esc", "q"):
                raise urwid.ExitMainLoop
            return None
        if self.phase == "installing":
            return None
        if key == "f12":
            self.next()
        elif key == "esc":
            self.back()
        elif key == "f10":
            self.exit_code = 2  # nothing was written: the install never started
            raise urwid.ExitMainLoop
        elif key == "f1":
            self._overlay("Help", self.screen.help or "No help for this screen.")
        elif key == "f5":
            detail = self.screen.detail(self.ctx, self._focused_value())
            if detail:
                self._overlay("Disk details", detail)
        else:
            return super().keypress(size, key)
        return None

    # The install: a worker thread runs the backend; every screen update goes through post().

    def _start_install(self) -> None:
        answers = self.ctx.draft.to_answers()
        if self.ctx.saved_answerfile:
            try:
                Path(self.ctx.saved_answerfile).write_text(write_answerfile(answers))
            except OSError as exc:
                self.phase = "questions"
                self._show(self.index)
                self.error.set_text(f"could not save the answer file: {exc}")
                return
        self.phase = "installing"
        self.bar = urwid.ProgressBar("bar", "bar done", 0, 100)
        self.step = urwid.Text("Starting")
        self.log = urwid.Text("")
        body = urwid.Filler(urwid.Pile([self.step, urwid.Divider(), self.bar, urwid.Divider(),
                                        self.log]), valign="top")
        self._set_frame("Installing", urwid.Padding(body, left=2, right=2),
                        "Installing: do not power off")
        threading.Thread(target=self._work, args=(answers,), daemon=True,
                         name="install").start()

    def _work(self, answers: AnswerFile) -> None:
        try:
            self.backend(answers, self.ctx, lambda s, p, m: self.post(
                lambda: self.progress(s, p, m)))
        except Exception as exc:  # any failure must reach the screen, not kill the thread
            message = str(exc) or exc.__class__.__name__
            code = getattr(exc, "exit_code", 1)
            self.post(lambda: self.finish(False, message, code))
        else:
            self.post(lambda: self.finish(True, "", 0))

    def progress(self, step: str, percent: int, message: str) -> None:
        self.bar.set_completion(max(0, min(100, percent)))
        self.step.set_text(step)
        if message:
            lines = [*self.log.text.splitlines(), message][-8:]
            self.log.set_text("\n".join(lines))

    def finish(self, ok: bool, reason: str, code: int) -> None:
        self.phase = "done"
        self.exit_code = code
        if ok:
            target = self.ctx.target_image or self.ctx.draft.primary_disk
            text = (f"Installation complete on {target}.\n\n"
                    "Remove any installation media, then reboot: the host starts Xen and its "
                    "control domain. If an answer file named a provisioning server, the host "
                    "registers itself there on first boot.")
            if self.ctx.saved_answerfile:
                text += f"\n\nYour answers were saved to {self.ctx.saved_answerfile}."
            title = "Installation complete"
        else:
            text = (f"The installation failed: {reason}\n\nThe log is in "
                    "/var/log/installer on the logs partition when it could be written.")
            title = "Installation failed"
        body = urwid.Filler(urwid.Text(text), valign="top")
        self._set_frame(title, urwid.Padding(body, left=2, right=2), "Enter: leave the installer")


def _focusable(widget: urwid.Widget) -> urwid.Widget:
    return urwid.AttrMap(widget, None, "focus") if widget.selectable() else widget


def plain_wanted(term: str | None = None) -> bool:
    term = os.environ.get("TERM", "") if term is None else term
    return term in PLAIN_TERMS or term.startswith("vt")


class _Poster:
    """Hands callables from the install thread to urwid's loop through a pipe it watches."""

    def __init__(self, loop: urwid.MainLoop) -> None:
        self.queue: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self.fd = loop.watch_pipe(self._drain)

    def __call__(self, fn: Callable[[], None]) -> None:
        self.queue.put(fn)
        os.write(self.fd, b"!")

    def _drain(self, _data: bytes) -> bool:
        while not self.queue.empty():
            self.queue.get()()
        return True


LEAVE_SIGNALS = frozenset({signal.SIGHUP, signal.SIGTERM})


class _Leaving:
    """SIGHUP and SIGTERM as a request to leave, never as an exception.

    An exception raised from a signal handler lands wherever the main thread is at that moment,
    the detach of the loop device included, which it would cut short and leave attached for
    good; and a hang-up rarely comes alone. So the handler only notes the first signal and wakes
    the wizard's loop, which stops; the cleanup then runs whole, whatever else arrives.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self.wake: Callable[[], None] | None = None

    def __call__(self, signum: int, _frame: object) -> None:
        if self.signum is None:
            self.signum = signum
        if self.wake is not None:
            self.wake()

    @property
    def code(self) -> int | None:
        return None if self.signum is None else 128 + self.signum


def run_wizard(ctx: Context, backend: Backend, *, plain: bool | None = None,
               leaving: _Leaving | None = None) -> int:
    """Run the wizard on this terminal; the exit code follows ``xcp-install``'s contract."""
    plain = plain_wanted() if plain is None else plain
    leaving = leaving or _Leaving()
    wizard = Wizard(ctx, backend)
    loop = urwid.MainLoop(wizard, PLAIN if plain else COLOUR, handle_mouse=False)
    if plain:
        loop.screen.set_terminal_properties(colors=1)
    wizard.post = _Poster(loop)

    def stop() -> None:
        if wizard.exit_code is None:
            wizard.exit_code = leaving.code
        raise urwid.ExitMainLoop

    # Woken before the check: a signal between the two still reaches the loop through the pipe.
    leaving.wake = lambda: wizard.post(stop)
    try:
        if leaving.code is not None:
            return leaving.code
        try:
            loop.run()
        except urwid.InputClosedError:
            # The console hung up and its input ended before the SIGHUP came: leave the same way.
            if leaving.signum is None:
                leaving.signum = signal.SIGHUP
        except OSError:
            if leaving.code is None:
                raise
            # A hung-up terminal refuses the screen's last writes; nobody is there to read them.
    finally:
        leaving.wake = None
    if wizard.exit_code is not None:
        return wizard.exit_code
    return 2 if leaving.code is None else leaving.code


def new_context(hardware: Any, *, target_image: str | None = None, memory_bytes: int,
                virtualisation: bool, restorable: frozenset[str] = frozenset()) -> Context:
    draft = Draft()
    if len(hardware.nics) >= 1:
        draft.nic = hardware.nics[0].name
    if hardware.disks:
        draft.primary_disk = hardware.disks[0].path
    return Context(draft, hardware, memory_bytes=memory_bytes, virtualisation=virtualisation,
                   target_image=target_image, restorable=restorable)


def _restorable(hardware: Any) -> frozenset[str]:
    """Disks with a backup to restore: read from the partitions without mounting them."""
    found = set()
    for disk in existing_installations(hardware):
        backup = find_installation(disk).backup
        if backup is not None and has_backup_marker(backup):
            found.add(disk.path)
    return frozenset(found)


class _ScreenReporter:
    """Feeds the backend's progress events to the wizard (see ``installer.progress``)."""

    def __init__(self, on_event: OnEvent) -> None:
        self.on_event = on_event

    def event(self, event: Any) -> None:
        self.on_event(event.step, event.percent, event.message)

    def failed(self, reason: str, log_text: str) -> None:
        self.on_event("failed", 100, reason)

    def done(self, built: BuildDone) -> None:
        self.on_event("done", 100, "installation complete")


def install_backend(answers: AnswerFile, ctx: Context, on_event: OnEvent) -> None:
    """The backend an unattended install runs, unchanged: the TUI only adds a reporter for its
    own screen."""
    from installer.backends import run_answers  # noqa: PLC0415 - pyparted loads here only
    from installer.progress import HttpReporter  # noqa: PLC0415

    reporters: list[Any] = [_ScreenReporter(on_event)]
    if answers.provisioning.server_url:
        reporters.append(HttpReporter(answers.provisioning.server_url, answers.provisioning.token))
    # The chosen disk is passed as the target too: a loop device (--target-image) is a block
    # device that discovery leaves out of its list of candidate disks on purpose.
    run_answers(answers, target_disk=ctx.draft.primary_disk, boot_mode=None,
                reporters=tuple(reporters))


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGHUP and SIGTERM back, from this process and from the commands it starts.

    When the console hangs up, the kernel signals the whole foreground process group once the
    session leader (the shell) dies: a ``losetup`` caught mid-attach or mid-detach would die
    with its work half done. Held signals arrive, to the handler, when the hold ends.
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, LEAVE_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextlib.contextmanager
def _attached(image: str) -> Iterator[str]:
    """``loop.attached`` with its attach and its detach shielded from a hang-up."""
    from installer.block import loop  # noqa: PLC0415 - pyparted loads here only

    with _signals_held():
        device = loop.attach(image)
    try:
        loop.refresh(device)
        yield device
    finally:
        with _signals_held():
            loop.detach(device)


def _host_facts() -> tuple[int, bool]:
    """Memory and hardware virtualisation, for the hardware warning screen."""
    memory = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) * 1024
    flags = ""
    with contextlib.suppress(OSError):
        flags = Path("/proc/cpuinfo").read_text()
    return memory, (" vmx" in flags or " svm" in flags)


def run(*, target_image: str | None = None, plain: bool = False) -> int:
    """``xcp-install --tui``: discover, ask, install.

    ``target_image`` swaps the disks shown for one disk image file, attached to a loop device for
    the whole session: the screens, the guard rails and the backend then see a real block
    device, exactly as they would see a disk.
    """
    from installer.discovery import Hardware, describe_disk, discover  # noqa: PLC0415

    leaving = _Leaving()
    for signum in (signal.SIGHUP, signal.SIGTERM):
        signal.signal(signum, leaving)
    hardware = discover()
    memory, virtualisation = _host_facts()
    if target_image is None:
        ctx = new_context(hardware, memory_bytes=memory, virtualisation=virtualisation,
                          restorable=_restorable(hardware))
        return run_wizard(ctx, install_backend, plain=plain or None, leaving=leaving)
    image = Path(target_image).resolve()
    if not image.is_file():
        print(f"xcp-install: --target-image {target_image}: no such file", file=sys.stderr)
        return 2
    if leaving.code is not None:  # hung up while discovering: attach nothing
        return leaving.code
    with _attached(str(image)) as device:
        hardware = Hardware((describe_disk(device),), hardware.nics, hardware.missing_facts)
        ctx = new_context(hardware, target_image=str(image), memory_bytes=memory,
                          virtualisation=virtualisation, restorable=_restorable(hardware))
        return run_wizard(ctx, install_backend, plain=plain or None, leaving=leaving)
