"""The Streamlit page: the chat, each run's live trace, the sidebar (model, conversation, checkpoints, library).

All decisions about what to show are in `ui.view` (pure) and all graph driving in `ui.runner`; this module
only draws. One `st.status` per node step (never nested), updated from running to complete or error.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import streamlit as st

from tools_library.retrieval import request_too_long
from ui import runner, view

log = logging.getLogger(__name__)
THREAD_PARAM = "thread"
NOT_CONFIGURED = ""
RECENT_THREADS = 20


# --- cached resources ------------------------------------------------------------------------------------


@st.cache_resource(show_spinner="Opening the checkpoints…")
def _graph_and_saver(home: str, checkpointer: str, postgres_uri: str | None) -> tuple[Any, Any]:
    """The compiled graph and its saver, once per data directory and backend (never per rerun)."""
    return runner.open_graph()


@st.cache_data(ttl=30, show_spinner=False)
def _sandbox_problem(image: str, home: str) -> runner.Problem | None:
    """The sandbox check, at most every 30 seconds."""
    return runner.sandbox_problem()


def _settings() -> Any:
    from sea.settings import get_settings

    return get_settings()


def _graph() -> Any:
    settings = _settings()
    graph, _saver = _graph_and_saver(str(settings.home), settings.checkpointer, settings.postgres_uri)
    return graph


# --- drawing ---------------------------------------------------------------------------------------------


def draw_problem(problem: runner.Problem, kind: str = "warning") -> None:
    """A set-up problem as a friendly box."""
    box = st.error if kind == "error" else st.warning
    box(f"**{problem.title}.** {problem.message}")


def draw_item(item: view.Item) -> None:
    """One line or block inside a step's status box."""
    if item.kind == "code":
        st.caption(item.title)
        st.code(item.text, language="python")
    elif item.kind == "test":
        mark = ":green[✔]" if item.ok else ":red[✘]"
        st.markdown(f"{mark} {view.escape_markdown(item.text)}")
    elif item.kind == "decision":
        st.markdown(f"**Decision:** {view.escape_markdown(item.text)}")
    elif item.kind == "tool_call":
        st.markdown(f"⚙ {item.text}")
    elif item.kind == "error":
        st.error(item.text)
    else:
        st.markdown(f"· {view.escape_markdown(item.text)}")


def draw_answer(turn: view.TurnView) -> None:
    """The answer area of a turn: the answer or the honest failure, then the calls and tokens used."""
    style = view.answer_style(turn)
    body = view.answer_body(turn.answer, turn.usage)
    if style == "answer":
        st.markdown(body)
    elif style == "failure":
        st.error(turn.error or body)
    elif style == "unfinished":
        st.warning(
            f"The run stopped before {', '.join(turn.unfinished)}; use **Resume the run** below to continue it "
            "from its last checkpoint."
        )
    elif style == "interrupted":
        st.info(f"**Question:** {view.escape_markdown(view.question_text(turn.interrupts))}")
        st.caption("Your next message answers it, and the same run goes on.")
    elif turn.streamed:
        st.markdown(turn.streamed + " ▌")
    if turn.usage or turn.answer:
        model = f" · model {view.model_label(turn.model)}" if turn.model else ""
        st.caption(f"{view.usage_text(turn.usage)}{model}")


def draw_turn(turn: view.TurnView) -> None:
    """A finished turn: the request, a status box per node step, the answer."""
    with st.chat_message("user"):
        st.markdown(view.escape_markdown(turn.request))
    with st.chat_message("assistant"):
        for step in turn.steps:
            with st.status(step.label, state=step.state, expanded=False):
                for item in step.items:
                    draw_item(item)
        draw_answer(turn)


class LiveTurn:
    """Draws a streaming turn: a new status box per node step, items as they come, labels as they change."""

    def __init__(self) -> None:
        self.trace = st.container()
        self.answer_area = st.empty()
        self.boxes: dict[int, Any] = {}

    def __call__(self, turn: view.TurnView, change: view.Change) -> None:
        """Apply one change to the page."""
        if change.step is not None and change.step < len(turn.steps):
            step = turn.steps[change.step]
            box = self.boxes.get(change.step)
            if box is None:
                box = self.trace.status(step.label, state=step.state, expanded=step.state == "running")
                self.boxes[change.step] = box
            if change.item is not None:
                with box:
                    draw_item(change.item)
            if change.label or change.new_step:
                box.update(label=step.label, state=step.state, expanded=step.state == "running")
        if change.answer:
            with self.answer_area.container():
                draw_answer(turn)


# --- session ---------------------------------------------------------------------------------------------


def _thread_id() -> str:
    """The conversation's thread id: kept in the session and mirrored to the URL (?thread=...)."""
    if "thread_id" not in st.session_state:
        from_url = str(st.query_params.get(THREAD_PARAM, "")).strip()
        st.session_state.thread_id = from_url[:200] if from_url else str(uuid.uuid4())
    if st.query_params.get(THREAD_PARAM) != st.session_state.thread_id:
        st.query_params[THREAD_PARAM] = st.session_state.thread_id
    return str(st.session_state.thread_id)


def _new_conversation() -> None:
    st.session_state.thread_id = str(uuid.uuid4())
    st.query_params[THREAD_PARAM] = st.session_state.thread_id
    st.session_state.pop("pending", None)


def _open_thread(thread_id: str) -> None:
    st.session_state.thread_id = thread_id
    st.query_params[THREAD_PARAM] = thread_id
    st.session_state.pop("pending", None)
    st.session_state.get("turns", {}).pop(thread_id, None)  # rebuilt from its checkpoints


def _set_pending(action: dict[str, Any]) -> None:
    st.session_state.pending = action


def _turns(graph: Any, thread_id: str) -> list[view.TurnView]:
    """The thread's turns: kept in the session while it lives, rebuilt from the checkpointer after a reload."""
    cache: dict[str, list[view.TurnView]] = st.session_state.setdefault("turns", {})
    if thread_id not in cache:
        cache[thread_id] = runner.load_turns(graph, thread_id)
    return cache[thread_id]


def _model_options() -> list[str]:
    configured = (_settings().model or "").strip()
    options = [configured or NOT_CONFIGURED]
    if view.DEMO_MODEL not in options:
        options.append(view.DEMO_MODEL)
    return options


def _option_label(model: str) -> str:
    if model == NOT_CONFIGURED:
        return "not configured (set SEA_MODEL)"
    return view.model_label(model)


# --- the page --------------------------------------------------------------------------------------------


def sidebar_top() -> str:
    """Model selector, new conversation, the thread id; returns the chosen model ('' when none)."""
    with st.sidebar:
        st.header("Self-Engineering Agent")
        model = st.selectbox("Model", _model_options(), format_func=_option_label, key="model",
                             help="From SEA_MODEL; scripted:demo is the offline demo: scripted, not a real model.")
        if model == view.DEMO_MODEL:
            st.caption(f"⚠ {view.DEMO_LABEL}: it knows only its demo examples.")
        st.button("New conversation", on_click=_new_conversation, width="stretch")
        st.caption(f"Thread `{st.session_state.thread_id}`")
    return str(model or "")


def sidebar_checkpoints(graph: Any, thread_id: str) -> None:
    """The thread's checkpoints, with replay and fork."""
    rows, _head = runner.checkpoint_rows(graph, thread_id)
    with st.sidebar.expander(f"Checkpoints ({len(rows)})", expanded=False):
        if not rows:
            st.caption("No checkpoints yet: ask something first.")
            return
        for row in rows:
            nxt = f" → {', '.join(row.next)}" if row.next else ""
            st.markdown(
                f"`{row.step:>3}` **{view.escape_markdown(row.node)}**{view.escape_markdown(nxt)} — "
                f"{view.escape_markdown(view.shorten(row.summary, 90))}"
            )
        choices = {f"step {r.step} · {r.node} · …{r.checkpoint_id[-8:]}": r.checkpoint_id for r in rows if r.next}
        if not choices:
            return
        label = st.selectbox("From checkpoint", list(choices), key="checkpoint_choice")
        st.button("Replay from here", width="stretch", on_click=_set_pending,
                  args=({"kind": "replay", "checkpoint": choices[label]},))
        st.text_area("Fork with edits (key=value, one per line)", key="fork_edits",
                     placeholder="request=Reverse 'Python'")
        st.button("Fork and run", width="stretch", on_click=_fork_clicked, args=(choices[label],))


def sidebar_threads(graph: Any, thread_id: str) -> None:
    """Recent conversations (`runs list`), each openable; the current one is marked."""
    threads = runner.recent_threads(graph, limit=RECENT_THREADS)
    with st.sidebar.expander(f"Recent conversations ({len(threads)})", expanded=False):
        if not threads:
            st.caption("None yet.")
        for thread in threads:
            label = view.shorten(thread.request or "(no request)", 48)
            if thread.thread_id == thread_id:
                st.markdown(f"**▸ {view.escape_markdown(label)}** (this one)")
            else:
                st.button(label, key=f"open-{thread.thread_id}", on_click=_open_thread, args=(thread.thread_id,),
                          width="stretch", help=f"thread {thread.thread_id}")


def _fork_clicked(checkpoint_id: str) -> None:
    edits = str(st.session_state.get("fork_edits", ""))
    _set_pending({"kind": "fork", "checkpoint": checkpoint_id, "assignments": edits.splitlines()})


def sidebar_library() -> None:
    """The tool library: each tool with its version and calls, expandable to its signature, code and tests."""
    with st.sidebar:
        st.subheader("Tool library")
        try:
            tools = runner.library_tools()
        except Exception as exc:  # the library is optional for the page: say why it is not listed
            st.error(f"The tool library could not be opened: {runner.one_line(exc)}")
            return
        if not tools:
            st.caption("No tools yet.")
        for tool in tools:
            with st.expander(f"{tool.name} v{tool.version} · {tool.usage.calls} call(s)"):
                st.code(tool.signature, language="python")
                st.markdown(view.escape_markdown(tool.description))
                st.caption(f"source: {tool.provenance.source}")
                st.caption("Implementation (tool.py)")
                st.code(tool.code, language="python")
                st.caption("Tests (test_tool.py)")
                st.code(tool.tests, language="python")


def run_live(request: str, action: Any) -> view.TurnView:
    """Show the request and stream its run into a new assistant message."""
    with st.chat_message("user"):
        st.markdown(view.escape_markdown(request))
    with st.chat_message("assistant"):
        return action(LiveTurn())


def main() -> None:
    """Draw the page and run what the user asked for; an unexpected failure is one line, never a traceback."""
    st.set_page_config(page_title="Self-Engineering Agent", page_icon="🛠️")
    try:
        _page()
    except Exception as exc:  # Streamlit's own stop/rerun signals are BaseExceptions and pass through
        log.debug("page failed", exc_info=exc)
        st.error(f"Something went wrong: {type(exc).__name__}: {runner.one_line(exc)}. Reload the page to retry.")


def _page() -> None:
    problem = runner.settings_problem()
    if problem is not None:
        draw_problem(problem, "error")
        st.stop()
    thread_id = _thread_id()
    model = sidebar_top()
    st.title("Self-Engineering Agent")
    st.caption(f"Model: {view.model_label(model)} · a tool is built by TDD in the sandbox when none fits.")
    try:
        graph = _graph()
    except runner.SetupError as exc:
        draw_problem(runner.Problem("The checkpoints cannot be opened", str(exc)), "error")
        st.stop()

    model_problem = runner.model_problem(model)
    if model_problem is not None:
        draw_problem(model_problem)
    settings = _settings()
    sandbox_problem = _sandbox_problem(settings.sandbox_image, str(settings.home))
    if sandbox_problem is not None:
        draw_problem(sandbox_problem, "error")

    turns = _turns(graph, thread_id)
    for turn in turns:
        draw_turn(turn)

    pending = st.session_state.pop("pending", None)
    status = runner.thread_status(graph, thread_id)
    # No max_chars: Streamlit would cut a longer paste silently and run what is left; the length is checked
    # below instead, and a longer request is refused with one sentence.
    prompt = st.chat_input("Ask for something, e.g. Reverse the string 'hello world'")
    if pending is None and prompt is None:
        _offer_resume(status)
    if prompt is not None and pending is None and status.interrupts and prompt.strip():
        # The run asked a question: this message is its answer; the same run resumes with it.
        pending = {"kind": "answer", "value": prompt.strip()}

    if prompt is not None or pending is not None:
        request = str(prompt or "").strip()
        if prompt is not None and not request:
            st.warning("The request is empty; say what you want, e.g. “Reverse the string 'hello'”.")
        elif prompt is not None and (refusal := request_too_long(request, settings.max_request_chars)):
            st.warning(refusal)
        elif model_problem is not None or sandbox_problem is not None:
            if request:
                with st.chat_message("user"):
                    st.markdown(view.escape_markdown(request))
            with st.chat_message("assistant"):
                if model_problem is not None:
                    draw_problem(model_problem)
                else:
                    draw_problem(sandbox_problem, "error")  # type: ignore[arg-type]
        else:
            # Forget the thread's turns while it runs: if the user stops the run, the next rerun rebuilds them
            # from the checkpoints, partial run included.
            st.session_state.turns.pop(thread_id, None)
            turn = _run(graph, thread_id, model, request, pending)
            if turn is not None and (pending is None or pending.get("kind") == "answer"):
                st.session_state.turns[thread_id] = [*turns, turn]
            if turn is not None and turn.unfinished:
                _offer_resume(runner.thread_status(graph, thread_id))
            # (resume, replay and fork change the branch: the next rerun rebuilds the thread from its checkpoints)

    sidebar_checkpoints(graph, thread_id)
    sidebar_threads(graph, thread_id)
    sidebar_library()


def _offer_resume(status: runner.ThreadStatus) -> None:
    """A waiting interrupt gets an answer box; a stopped run gets a resume button."""
    if status.interrupts:
        return  # the question is shown as the last answer; the chat input answers it
    if status.next:
        st.info(f"The last run stopped before {', '.join(status.next)}.")
        st.button("Resume the run", on_click=_set_pending, args=({"kind": "resume"},))


def _run(graph: Any, thread_id: str, model: str, request: str, pending: dict[str, Any] | None
         ) -> view.TurnView | None:
    """Run a new request, or the pending resume / replay / fork, live; bad input is one clear error."""
    from graph.runs import RunsError

    if pending is None:
        return run_live(request, lambda live: runner.run_turn(
            graph, thread_id, {"request": request}, model=model, request=request, on_change=live))
    kind = pending.get("kind")
    try:
        if kind == "answer":
            answer = str(pending["value"])
            return run_live(answer, lambda live: runner.run_turn(
                graph, thread_id, runner.resume_command(answer), model=model, request=answer, on_change=live))
        if kind == "resume":
            graph_input = runner.resume_command(pending["value"]) if "value" in pending else None
            return run_live("(resume)", lambda live: runner.run_turn(
                graph, thread_id, graph_input, model=model, request="(resume)", on_change=live))
        if kind == "replay":
            return run_live(f"(replay from …{pending['checkpoint'][-8:]})", lambda live: runner.replay(
                graph, thread_id, pending["checkpoint"], model=model, on_change=live))
        if kind == "fork":
            return run_live(f"(fork at …{pending['checkpoint'][-8:]})", lambda live: runner.fork(
                graph, thread_id, pending["checkpoint"], pending["assignments"], model=model, on_change=live))
    except RunsError as exc:
        st.error(str(exc))
    return None
