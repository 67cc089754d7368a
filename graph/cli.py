"""`python -m graph`: ask the agent, and list, inspect, replay, fork and resume its runs.

    python -m graph ask "Reverse the string 'hello world'" [--thread ID] [--model provider:model]
    python -m graph runs list [--limit N]
    python -m graph runs show THREAD
    python -m graph runs replay THREAD CHECKPOINT [--model provider:model]
    python -m graph runs fork THREAD CHECKPOINT --set key=value [--set ...] [--model provider:model]
    python -m graph runs resume THREAD [--answer TEXT] [--model provider:model]

Live progress goes to stderr, the answer and the usage line to stdout. When the run asks a question (the clarify
route), `ask` prompts for the answer on the terminal and resumes the same run; without a terminal it prints the
question and how to answer it (`runs resume THREAD --answer TEXT`). Exit codes: 0 done (or waiting for an
answer), 1 the run failed, 2 bad input or configuration, 130 interrupted. Errors are one line, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

from pydantic import ValidationError

from graph import events as ev

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

NO_MODEL_MESSAGE = (
    "No chat model is configured: set SEA_MODEL=provider:model (e.g. SEA_MODEL=openai:gpt-4.1-mini with "
    "OPENAI_API_KEY set; anthropic:..., ollama:..., or an OpenAI-compatible server with SEA_MODEL_BASE_URL) "
    "or pass --model provider:model; --model scripted:demo runs the labelled offline demo, which knows only "
    "its demo examples (one or more per route)."
)


class CliError(Exception):
    """A one-line error for the user, with its exit code."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


# --- rendering -------------------------------------------------------------------------------------------


class Renderer:
    """Prints view events as live progress lines (stderr) and the answer block (stdout)."""

    def __init__(self, progress: TextIO, out: TextIO, *, show_code: bool = False) -> None:
        self.progress = progress
        self.out = out
        self.show_code = show_code
        self.answer: ev.Answer | None = None
        self.streamed = ""  # the answer's tokens, printed to `out` as the respond step streams them
        self._open_line = False  # the streamed answer's line is not ended yet

    def _line(self, text: str) -> None:
        if self._open_line:  # end the streamed answer's line before a progress line (same terminal)
            print(file=self.out, flush=True)
            self._open_line = False
        print(text, file=self.progress, flush=True)

    def __call__(self, event: ev.ViewEvent) -> None:
        """Render one event."""
        if isinstance(event, ev.NodeStarted):
            self._line(f"▶ {event.node}")
        elif isinstance(event, ev.NodeFinished):
            self._line(f"✓ {event.node}: {event.summary}")
        elif isinstance(event, ev.NodeFailed):
            self._line(f"✗ {event.node}: {event.error}")
        elif isinstance(event, ev.Progress):
            self._line(f"  · {event.message}")
        elif isinstance(event, ev.Code):
            lines = event.text.splitlines()
            self._line(f"  ✎ {event.code_kind}: {len(lines)} lines")
            if self.show_code:
                for line in lines:
                    self._line(f"    │ {line}")
        elif isinstance(event, ev.TestResult):
            expected = "failed" if event.phase == "red" else "passed"
            if event.outcome == expected:
                note = " (as it should, on the stub)" if event.phase == "red" else ""
            else:
                note = f" — {ev._short(event.message, 120)}" if event.message else ""
            self._line(f"  {event.phase:<5} {event.name}: {event.outcome}{note}")
        elif isinstance(event, ev.ToolCall):
            version = f" v{event.version}" if event.version is not None else ""
            self._line(f"  ⚙ {event.tool}{version}({json.dumps(event.arguments)}) in the sandbox")
        elif isinstance(event, ev.Decision):
            self._line(f"  ◆ route {ev.decision_text(event.model_dump())}")
        elif isinstance(event, ev.Interrupted):
            self._line(f"⏸ question: {ev.question_of(event.value)}")
        elif isinstance(event, ev.Token) and event.node == "respond":
            if not self.streamed:
                print(file=self.out)
            self.streamed += event.text
            self._open_line = True
            print(event.text, end="", file=self.out, flush=True)
        elif isinstance(event, ev.Answer):
            self.answer = event
        elif isinstance(event, ev.CustomEvent):
            self._line(f"  · {event.event}: {json.dumps(event.data, default=str)}")
        # Usage events are covered by the node summaries and the final usage line; other nodes' tokens are
        # structured output, shown as their results.

    def finish(
        self, values: dict[str, Any], thread_id: str, unfinished: list[str], interrupts: list[Any] | None = None
    ) -> None:
        """Print the answer, what failed if anything, the usage, and how to continue."""
        answer = str(values.get("answer") or (self.answer.text if self.answer else ""))
        streamed, self.streamed = self.streamed, ""
        if self._open_line:
            print(file=self.out)
            self._open_line = False
        if streamed and not unfinished and not interrupts and streamed.strip() == answer.strip():
            answer = ""  # already on the screen, token by token
        else:
            print(file=self.out)
        if interrupts:
            print(f"Question: {ev.question_of(interrupts[0])}", file=self.out)
            print(f"Answer it with: python -m graph runs resume {thread_id} --answer TEXT", file=self.out)
        elif unfinished:
            print(f"The run stopped before {', '.join(unfinished)}; resume it with: "
                  f"python -m graph runs resume {thread_id}", file=self.out)
        elif answer:
            print(answer, file=self.out)
        failure = values.get("failure")
        if failure and failure not in answer:
            print(f"What failed: {failure}", file=self.out)
        usage = values.get("usage") or {}
        print(
            f"LLM: {int(usage.get('calls', 0))} calls, {int(usage.get('input_tokens', 0))} input tokens, "
            f"{int(usage.get('output_tokens', 0))} output tokens · thread {thread_id}",
            file=self.out,
            flush=True,
        )


# --- plumbing ------------------------------------------------------------------------------------------


def _settings() -> Any:
    from sea.settings import get_settings

    try:
        return get_settings()
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error.get("loc", ())) or "settings"
        raise CliError(f"Bad setting SEA_{where.upper()}: {error.get('msg', 'invalid value')}.") from None


@contextmanager
def _graph() -> Iterator[Any]:
    """The graph compiled with the configured checkpointer, closed afterwards."""
    from graph.checkpointing import CheckpointerConfigError, open_checkpointer

    settings = _settings()
    try:
        with open_checkpointer(settings) as saver:
            from graph.builder import build_graph

            yield build_graph(saver)
    except CheckpointerConfigError as exc:
        raise CliError(str(exc)) from None


def _context(model: str | None) -> Any:
    """The run's Context with the chosen model, checked up front so a bad model is a one-line error."""
    from graph.context import Context
    from graph.models import ModelNotConfiguredError, get_chat_model

    settings = _settings()
    chosen = (model if model is not None else settings.model) or ""
    try:
        get_chat_model(chosen, base_url=settings.model_base_url, temperature=settings.model_temperature)
    except ModelNotConfiguredError as exc:
        raise CliError(str(exc) or NO_MODEL_MESSAGE) from None
    return Context(model=chosen.strip())


def _run(
    graph: Any,
    graph_input: Any,
    config: dict[str, Any],
    context: Any,
    renderer: Renderer,
    ask_user: Callable[[str], str | None] | None = None,
) -> int:
    """Stream a run; while it waits on a question and `ask_user` gets an answer, resume it with that answer."""
    from langgraph.types import Command

    from graph.runs import question_of, stream_run

    thread_id = config["configurable"]["thread_id"]
    try:
        result = stream_run(graph, graph_input, config, context=context, on_event=renderer)
        while result.interrupts and ask_user is not None:
            answer = ask_user(question_of(result.interrupts[0]))
            if answer is None or not answer.strip():
                break  # no answer: the run waits; `runs resume THREAD --answer TEXT` continues it
            result = stream_run(graph, Command(resume=answer.strip()), result.config, context=context,
                                on_event=renderer)
    except KeyboardInterrupt:
        print(f"\nInterrupted; resume with: python -m graph runs resume {thread_id}", file=renderer.progress)
        return EXIT_INTERRUPTED
    except CliError:
        raise
    except Exception as exc:
        raise CliError(
            f"{_one_line(exc)} (the run stopped at its last checkpoint; continue it with: "
            f"python -m graph runs resume {thread_id})",
            EXIT_FAILED,
        ) from None
    renderer.finish(result.values, thread_id, result.next, result.interrupts)
    if result.interrupts:
        return EXIT_OK
    return EXIT_FAILED if result.values.get("outcome") == "error" else EXIT_OK


def _terminal_asker(stdin: TextIO, err: TextIO) -> Callable[[str], str | None] | None:
    """Asks a run's question on the terminal (None when stdin is not one: the question is printed instead)."""
    if not stdin.isatty():
        return None

    def ask(question: str) -> str | None:
        print(f"? {question}", file=err, flush=True)
        print("> ", end="", file=err, flush=True)
        line = stdin.readline()
        return line.rstrip("\n") if line else None

    return ask


def _errors_as_cli_errors(action: Callable[[], int]) -> int:
    """Run a command, turning every known failure into a one-line CliError."""
    from graph.runs import RunsError

    try:
        return action()
    except (CliError, KeyboardInterrupt):
        raise
    except RunsError as exc:
        raise CliError(str(exc)) from None
    except Exception as exc:
        raise CliError(_one_line(exc), EXIT_FAILED) from None


def _one_line(exc: BaseException) -> str:
    name = type(exc).__name__
    if name == "ModelNotConfiguredError":
        return str(exc) or NO_MODEL_MESSAGE
    text = " ".join(str(exc).split())
    if len(text) > 300:
        text = text[:299] + "…"
    return f"{name}: {text}" if text else name


# --- commands ------------------------------------------------------------------------------------------


def cmd_ask(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Ask the agent one request on a new or existing thread."""
    request = args.request.strip()
    if not request:
        raise CliError("The request is empty; say what you want, e.g. ask \"Reverse the string 'hello'\".")
    from tools_library.retrieval import request_too_long

    refusal = request_too_long(request, _settings().max_request_chars)
    if refusal is not None:  # refused before any model, graph or library is opened
        raise CliError(refusal)
    context = _context(args.model)
    thread_id = args.thread or str(uuid.uuid4())
    from graph.runs import thread_config

    print(f"thread {thread_id} · model {context.model}", file=err, flush=True)
    renderer = Renderer(err, out, show_code=args.show_code)

    def action() -> int:
        from langgraph.types import Command

        from graph.runs import pending_interrupts, question_of

        with _graph() as graph:
            snapshot = graph.get_state(thread_config(thread_id)) if args.thread else None
            waiting = pending_interrupts(snapshot) if snapshot is not None else []
            if waiting:  # the thread's run asked a question: this message is its answer, as in the app
                print(f"note: answering the question thread {thread_id} is waiting on: {question_of(waiting[0])}",
                      file=err)
                return _run(graph, Command(resume=request), thread_config(thread_id), context, renderer,
                            ask_user=_terminal_asker(args.stdin, err))
            if snapshot is not None and (pending := list(snapshot.next)):
                print(
                    f"note: thread {thread_id} had an unfinished run (next: {', '.join(pending)}); this request "
                    f"starts a new one (`runs resume {thread_id}` would have continued it)",
                    file=err,
                )
            return _run(graph, {"request": request}, thread_config(thread_id), context, renderer,
                        ask_user=_terminal_asker(args.stdin, err))

    return _errors_as_cli_errors(action)


def cmd_runs_list(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """List threads, newest first."""
    from graph.runs import list_threads, updated_at

    def action() -> int:
        with _graph() as graph:
            threads = list_threads(graph, limit=args.limit)
        if not threads:
            print("No threads yet; start one with: python -m graph ask \"...\"", file=out)
            return EXIT_OK
        print(f"{'thread':<36}  {'ckpts':>5}  {'updated (UTC)':<19}  {'status':<18}  request", file=out)
        for t in threads:
            status = f"next: {','.join(t.next)}" if t.next else (t.outcome or "done")
            print(
                f"{t.thread_id:<36}  {t.checkpoints:>5}  {updated_at(t):<19}  {status[:18]:<18}  "
                f"{ev._short(t.request, 60)}",
                file=out,
            )
        return EXIT_OK

    return _errors_as_cli_errors(action)


def cmd_runs_show(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Show a thread's checkpoints, oldest first."""
    from graph.runs import history, updated_at

    def action() -> int:
        with _graph() as graph:
            checkpoints = history(graph, args.thread)
        print(f"{'step':>4}  {'checkpoint':<36}  {'node':<12}  {'next':<12}  {'time (UTC)':<19}  summary", file=out)
        for c in checkpoints:
            print(
                f"{c.step:>4}  {c.checkpoint_id:<36}  {c.node[:12]:<12}  {','.join(c.next)[:12] or '-':<12}  "
                f"{updated_at(c):<19}  {c.summary}",
                file=out,
            )
        return EXIT_OK

    return _errors_as_cli_errors(action)


def cmd_runs_replay(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Replay a thread from one of its checkpoints."""
    from graph.runs import replay_config

    context = _context(args.model)

    def action() -> int:
        with _graph() as graph:
            config = replay_config(graph, args.thread, args.checkpoint)
            print(f"replaying thread {args.thread} from {config['configurable']['checkpoint_id']}", file=err)
            return _run(graph, None, config, context, Renderer(err, out, show_code=args.show_code))

    return _errors_as_cli_errors(action)


def cmd_runs_fork(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Fork a thread at a checkpoint with edited state values, then run the new branch."""
    from graph.runs import RunsError, fork, parse_assignments, validate_edit

    try:
        values = parse_assignments(args.set)
    except RunsError as exc:
        raise CliError(str(exc)) from None
    context = _context(args.model)

    def action() -> int:
        with _graph() as graph:
            validate_edit(graph, values)
            config = fork(graph, args.thread, args.checkpoint, values)
            print(f"forked thread {args.thread} at a new checkpoint {config['configurable']['checkpoint_id']}",
                  file=err)
            return _run(graph, None, config, context, Renderer(err, out, show_code=args.show_code))

    return _errors_as_cli_errors(action)


def cmd_runs_resume(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Continue a thread's unfinished run (interrupted or killed) from its last checkpoint."""
    from graph.runs import resume_config

    context = _context(args.model)

    from langgraph.types import Command

    def action() -> int:
        with _graph() as graph:
            config = resume_config(graph, args.thread, answer=args.answer)
            print(f"resuming thread {args.thread}", file=err)
            graph_input = Command(resume=args.answer.strip()) if args.answer is not None else None
            return _run(graph, graph_input, config, context, Renderer(err, out, show_code=args.show_code),
                        ask_user=_terminal_asker(args.stdin, err))

    return _errors_as_cli_errors(action)


# --- parser --------------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, with one-line errors and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The `python -m graph` argument parser."""
    parser = _Parser(prog="python -m graph", description="The self-engineering agent.")
    parser.add_argument("-v", "--verbose", action="store_true", help="show library warnings and logs")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def model_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--model", help="provider:model (default SEA_MODEL), or scripted:demo for the offline demo")
        p.add_argument("--show-code", action="store_true", help="print the tests and code as they are written")

    ask = commands.add_parser("ask", help="ask the agent a request")
    ask.add_argument("request", help="what you want, in plain language")
    ask.add_argument("--thread", help="continue this conversation thread (default: a new one)")
    model_option(ask)
    ask.set_defaults(handler=cmd_ask)

    runs = commands.add_parser("runs", help="list, show, replay, fork and resume runs")
    runs_commands = runs.add_subparsers(dest="runs_command", required=True, parser_class=_Parser)
    listing = runs_commands.add_parser("list", help="list threads, newest first")
    listing.add_argument("--limit", type=int, default=50, help="at most this many threads (default 50)")
    listing.set_defaults(handler=cmd_runs_list)
    show = runs_commands.add_parser("show", help="show a thread's checkpoints")
    show.add_argument("thread")
    show.set_defaults(handler=cmd_runs_show)
    replay = runs_commands.add_parser("replay", help="replay a thread from a checkpoint")
    replay.add_argument("thread")
    replay.add_argument("checkpoint", help="checkpoint id (or a unique part of it) from `runs show`")
    model_option(replay)
    replay.set_defaults(handler=cmd_runs_replay)
    fork = runs_commands.add_parser("fork", help="fork a thread at a checkpoint with edited state, and run it")
    fork.add_argument("thread")
    fork.add_argument("checkpoint", help="checkpoint id (or a unique part of it) from `runs show`")
    fork.add_argument("--set", action="append", required=True, metavar="KEY=VALUE",
                      help="a state value to change (JSON when it parses, else a string); repeatable")
    model_option(fork)
    fork.set_defaults(handler=cmd_runs_fork)
    resume = runs_commands.add_parser("resume", help="continue a thread's unfinished run from its last checkpoint")
    resume.add_argument("thread")
    resume.add_argument("--answer", help="the answer to the question the run is waiting on (the clarify route)")
    model_option(resume)
    resume.set_defaults(handler=cmd_runs_resume)
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    stdin: TextIO | None = None,
) -> int:
    """Run the CLI; returns the exit code. A run's question is asked on `stdin` when it is a terminal."""
    out = out or sys.stdout
    err = err or sys.stderr
    args = build_parser().parse_args(argv)
    args.stdin = stdin or sys.stdin
    root = logging.getLogger()
    if not root.handlers:  # leave an embedding program's (or pytest's) logging alone
        level = logging.INFO if args.verbose else logging.ERROR
        handler = logging.StreamHandler(err)
        handler.setLevel(level)  # the level on the handler: some libraries set DEBUG on their own loggers
        root.addHandler(handler)
        root.setLevel(level)
    try:
        return int(args.handler(args, out, err))
    except CliError as exc:
        print(f"error: {exc}", file=err, flush=True)
        return exc.code
    except KeyboardInterrupt:
        print("\nInterrupted.", file=err)
        return EXIT_INTERRUPTED
