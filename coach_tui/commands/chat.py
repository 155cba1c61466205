"""`coach chat [MODEL] [PROMPT…]`: the Chat screen in a plain terminal, like `ollama run`.

With a prompt (arguments, or standard input when it is not a terminal) it
answers once and exits; otherwise it opens a prompt until `/bye` or Ctrl-D.
Every turn is the app's (`actors.usecases.chat`): the crisis net reads the
message first, its support lines are printed above the reply when it fires,
and the conversation is kept in the same private history the app lists.

Threads: the model streams on an event loop in a background thread (an
anyio blocking portal), so the main thread keeps the terminal — `input()`
with line editing, and Ctrl-C, which Python delivers to the main thread
only. Ctrl-C during a reply cancels that reply on its loop (kept, marked
stopped, as Esc in the app); Ctrl-C at the prompt only says how to leave.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future

import click
from anyio.from_thread import BlockingPortal, start_blocking_portal
from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from actors.usecases.chat import (
    DEFAULT_TEMPERATURE,
    REPLY_MAX_TOKENS,
    ChatSession,
    Reply,
    Turn,
    require_workspace,
    resolve_chat_model,
)
from state.errors import CoachError

from ..context import AppContext, pass_app

PROMPT = ">>> "
LEAVE = ("/bye", "/exit", "/quit")
POLL_S = 0.1
"""How often the main thread looks up from a reply it waits for, so Ctrl-C is seen at once on any platform."""
INTERRUPTED = 130
"""The exit status of a one-shot reply stopped with Ctrl-C (128 + SIGINT), as shells expect."""
HELP = """\
  /bye      leave (or Ctrl-D)
  /support  show the support lines
  /?        this help
  Ctrl-C stops a reply; what was written is kept, marked stopped."""


def support_text(markdown: str) -> Text:
    """The support lines as the app's panel shows them: one line each, **bold** kept, no other markup."""
    text = Text()
    for number, line in enumerate(markdown.strip().splitlines()):
        if number:
            text.append("\n")
        for index, part in enumerate(line.split("**")):
            text.append(part, style="bold" if index % 2 else "")
    return text


class TerminalChat:
    """One conversation drawn on a terminal; the turns themselves are the session's."""

    def __init__(self, session: ChatSession, portal: BlockingPortal, *, verbose: bool = False) -> None:
        self.session = session
        self.portal = portal
        self.verbose = verbose
        self.console = Console(highlight=False)
        self._began = False

    # --- drawing --------------------------------------------------------------------------

    def show_support(self, lines: str) -> None:
        self.console.print(
            Panel(support_text(lines), title="Support is available", title_align="left", border_style="bold")
        )

    def _write(self, piece: str) -> None:
        """A piece of the reply, as it comes (the reply's leading blank space left out)."""
        if not self._began:
            piece = piece.lstrip()
            if not piece:
                return
            self._began = True
        click.echo(piece, nl=False)

    # --- waiting on the loop, with Ctrl-C ---------------------------------------------------

    def _wait(self, future: Future) -> object:
        """The task's result, looking up every `POLL_S` so a signal's handler runs at once on any platform."""
        while True:
            try:
                return future.result(timeout=POLL_S)
            except TimeoutError:
                continue
            except KeyboardInterrupt:
                future.cancel()
                raise

    def _reply(self, turn: Turn) -> Reply:
        """The reply to `turn`; Ctrl-C, at any moment until it ends, stops it (see `ChatSession.stop`).

        Ctrl-C is caught by a handler rather than as KeyboardInterrupt, which
        could land anywhere, even inside the call that starts the reply.
        """
        interrupted = threading.Event()
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGINT, lambda signum, frame: interrupted.set())
        try:
            future = self.portal.start_task_soon(self.session.reply, turn, self._write)
            stopping = False
            while True:
                if interrupted.is_set() and not stopping:
                    stopping = True
                    self.portal.call(self.session.stop)
                try:
                    return future.result(timeout=POLL_S)
                except TimeoutError:
                    continue
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)

    # --- a turn ---------------------------------------------------------------------------

    def turn(self, text: str) -> Reply:
        """Send `text`; print the support lines if the net fired, then the reply as it streams."""
        turn = self.session.send(text)
        if turn.flagged:
            self.show_support(turn.support_lines)
        self._began = False
        reply = self._reply(turn)
        if self._began:
            click.echo()
        if reply.stopped:
            click.secho("[stopped — the reply so far is kept]", dim=True, err=True)
        elif reply.failed:
            click.secho(reply.note, fg="red", err=True)
        elif self.verbose and reply.note:
            click.secho(reply.note, dim=True, err=True)
        return reply

    def once(self, text: str) -> int:
        """One prompt, one reply; the exit status."""
        reply = self.turn(text)
        if reply.failed:
            raise CoachError(reply.note)
        return INTERRUPTED if reply.stopped else 0

    def interactive(self, read: Callable[[str], str] = input) -> None:
        """The prompt loop: until `/bye` or end of input."""
        session = self.session
        if session.notice:
            click.secho(session.notice, bold=True)
        click.secho(f"model {session.model} · /bye or Ctrl-D leaves · Ctrl-C stops a reply · /? help", dim=True)
        click.secho(f"loading {session.model}…", dim=True, err=True)
        self._wait(self.portal.start_task_soon(session.warm))
        while True:
            try:
                line = read(PROMPT)
            except EOFError:
                click.echo()
                break
            except KeyboardInterrupt:
                click.echo("\nUse /bye or Ctrl-D to leave.")
                continue
            text = line.strip()
            if not text:
                continue
            command = text.split()[0].lower()
            if command in LEAVE:
                break
            if command in ("/?", "/help"):
                click.echo(HELP)
            elif command == "/support":
                self.show_support(session.support_lines())
            elif command.startswith("/"):
                click.echo(f"Unknown command {command!r}; /? lists them.")
            else:
                self.turn(text)
        if session.conversation.messages:
            click.secho(f"Kept privately in {session.history_file} (the app's Chat lists it).", dim=True, err=True)


def _stdin_is_a_terminal() -> bool:
    isatty = getattr(sys.stdin, "isatty", None)
    return bool(isatty and isatty())


@click.command("chat")
@click.argument("model", required=False)
@click.argument("prompt", nargs=-1)
@click.option("--system", metavar="TEXT", help="A system prompt instead of the domain pack's.")
@click.option("--temperature", type=click.FloatRange(0.0, 2.0), default=DEFAULT_TEMPERATURE, show_default=True)
@click.option("--max-tokens", type=click.IntRange(min=1), default=REPLY_MAX_TOKENS, show_default=True)
@click.option(
    "--workspace", "-w", metavar="DIR", help="Where exported models are found (the same as `coach -w DIR chat`)."
)
@click.option("--verbose", "-v", is_flag=True, help="After each reply, its time to first token and speed (stderr).")
@pass_app
def chat_cmd(
    app: AppContext,
    model: str | None,
    prompt: tuple[str, ...],
    system: str | None,
    temperature: float,
    max_tokens: int,
    workspace: str | None,
    verbose: bool,
) -> None:
    """Chat offline with MODEL, like `ollama run`: a prompt, or an interactive session.

    MODEL is what the app's model picker offers: a bundled model
    (smollm2-135m-instruct, the default, or gemma3-270m), the file name of a
    GGUF exported into the workspace, server:NAME for a run config's server;
    or the path of any GGUF. PROMPT (or standard input, when it is not a
    terminal) is answered once; without either, a prompt opens: /bye or
    Ctrl-D leaves, Ctrl-C stops a reply.

    The conversation joins the app's private chat history, and the crisis
    net reads every message, as in the app's Chat screen.
    """
    if workspace:
        app.workspace_option = workspace
    if app.workspace_option:  # named on purpose: a typo is told, as by every command that reads one
        require_workspace(app.workspace, app.db_url)
    chosen = resolve_chat_model(model, app.workspace, app.db_url)  # before anything loads
    text = " ".join(prompt).strip()
    interactive = not text and _stdin_is_a_terminal()
    if not text and not interactive:
        text = sys.stdin.read().strip()
        if not text:
            raise click.UsageError("nothing to say: give a PROMPT, or text on standard input")
    session = ChatSession(
        app.pack(),
        chosen.id,
        exports=chosen.exports,
        system=system,
        temperature=temperature,
        max_tokens=max_tokens,
    )
    if interactive:
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401 - line editing and history for input()
    with start_blocking_portal() as portal:
        face = TerminalChat(session, portal, verbose=verbose)
        if interactive:
            face.interactive()
            return
        status = face.once(text)
    if status:
        raise click.exceptions.Exit(status)
