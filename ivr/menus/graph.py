"""Draw a menu as a graph (Graphviz): nodes with their kind and topic, edges with keys and words.

Only the ways forward are edges. The menu-wide returns (back, to the top, repeat, and the failure
paths that lead there or to the operator) exist in nearly every node: drawn as edges they cross the
whole picture, so each node lists its returns in one line of its own label and the legend says once
where they lead. `root` and `depth` draw one branch: the nodes `depth` steps from `root`, with the
nodes just beyond shown as small stubs.
"""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import attrs

from ivr.menus import model as m
from ivr.menus.problems import did_you_mean

FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf", ".dot": "dot", ".gv": "dot"}
_SHAPES = {
    "language": ("box", "#dbeafe"),
    "menu": ("box", "#e0f2fe"),
    "question": ("box", "#ede9fe"),
    "info": ("note", "#f1f5f9"),
    "queue": ("box3d", "#dcfce7"),
    "transfer": ("cds", "#fef9c3"),
    "hangup": ("octagon", "#fee2e2"),
    "goto": ("rarrow", "#f8fafc"),
    "back": ("larrow", "#f8fafc"),
    "top": ("invhouse", "#f8fafc"),
    "repeat": ("circle", "#f8fafc"),
}
# One phrase per edge and a narrow text column keep the 1414 menu's ten-wide row of services within
# a screen or two; the full phrase lists are in the menu file and in `ivr check`.
_PHRASES_SHOWN = 1
_TEXT_WIDTH = 26
_RETURNS = ("top", "back", "repeat")  # target actions drawn as a line in the node, not as an edge


class GraphError(RuntimeError):
    pass


@attrs.frozen
class _Edge:
    target: m.Target
    label: str  # the key and words, or "after N tries", "timeout"
    failure: bool = False  # taken after the caller's tries ran out (drawn dashed)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _left(lines: list[str]) -> str:
    """A Graphviz label with every line left-aligned ("\\l" ends a left-justified line)."""
    escaped = (line.replace("\\", "\\\\").replace('"', '\\"') for line in lines)
    return '"' + "".join(f"{line}\\l" for line in escaped) + '"'


def _edge_label(key: str | None, phrases: m.Phrases, language: str) -> str:
    words = phrases.get(language)
    parts = [key] if key else []
    if words:
        more = ", …" if len(words) > _PHRASES_SHOWN else ""
        parts.append("«" + ", ".join(words[:_PHRASES_SHOWN]) + more + "»")
    return "\n".join(parts)


def _edges(node: m.Node, language: str) -> Iterator[_Edge]:
    """Everywhere a node leads, returns and failures included; the caller decides what to draw."""
    if isinstance(node, m.MenuNode):
        for option in node.options:
            yield _Edge(option.target, _edge_label(option.key, option.phrases, language))
    if isinstance(node, m.LanguageNode):
        labels = (_edge_label(c.key, c.phrases, language).replace("\n", " ") for c in node.choices)
        yield _Edge(node.next, ", ".join(labels))
    if isinstance(node, m.InfoNode):
        yield _Edge(node.next, "")
    if isinstance(node, m.QueueNode) and node.next is not None:
        yield _Edge(node.next, "timeout")
    if isinstance(node, m.GotoNode):
        yield _Edge(node.target, "")
    if isinstance(node, m.InputNode):
        yield _Edge(node.on_failure, f"after {node.input.retries} tries", failure=True)
    if isinstance(node, m.TopNode | m.BackNode | m.RepeatNode):
        yield _Edge(m.Target(node.kind), "")


def _is_return(menu: m.Menu, edge: _Edge) -> bool:
    """Back, top, repeat, and failures to the operator: the same in every node, said by the legend."""
    if edge.target.action in _RETURNS:
        return True
    return edge.failure and edge.target.node == menu.operator


def _returns_line(menu: m.Menu, node: m.Node, language: str) -> str:
    """One line naming where this node's returns go, e.g. "↩ 1 → top · after 3 tries → top"."""
    parts = []
    for edge in _edges(node, language):
        if not _is_return(menu, edge):
            continue
        where = "operator" if edge.target.action == "node" else edge.target.action
        what = edge.label.split("\n", 1)[0]  # the key only; the words are in the legend
        parts.append(f"{what} → {where}" if what else f"→ {where}")
    return "↩ " + " · ".join(parts) if parts else ""


def _node_label(menu: m.Menu, node: m.Node, language: str) -> str:
    head = f"{node.id}\n[{node.kind}" + (f" · {node.topic}" if node.topic else "") + "]"
    if isinstance(node, m.QueueNode):
        head += f"\nqueue {node.queue.get(language)}" + (" · callback" if node.callback_offer else "")
    if isinstance(node, m.TransferNode):
        head += f"\nto {node.to}"
    own = next((p for p in node.say if p.shared_id is None), None)
    if own is not None:
        text = own.texts.get(language)
        text = text if len(text) <= 70 else text[:69].rsplit(" ", 1)[0] + " …"
        head += "\n" + "\n".join(textwrap.wrap(text, width=_TEXT_WIDTH))
    returns = _returns_line(menu, node, language)
    return head + ("\n" + returns if returns else "")


def branch(menu: m.Menu, root: str | None = None, depth: int | None = None) -> dict[str, int]:
    """Node id -> steps from `root` (default: the start) along forward edges, up to `depth` steps."""
    root = root or menu.start
    if root not in menu.nodes:
        raise GraphError(f'menu {menu.name} has no node "{root}"{did_you_mean(root, menu.nodes)}')
    if depth is not None and depth < 0:
        raise GraphError(f"--depth must be 0 or more, got {depth}")
    steps = {root: 0}
    frontier = [root]
    while frontier and (depth is None or steps[frontier[0]] < depth):
        following = []
        for node_id in frontier:
            for edge in _edges(menu.nodes[node_id], "kk"):
                target = edge.target.node
                if _is_return(menu, edge) or target not in menu.nodes or target in steps:
                    continue
                steps[target] = steps[node_id] + 1
                following.append(target)
        frontier = following
    return steps


def to_dot(menu: m.Menu, language: str = "kk", root: str | None = None, depth: int | None = None) -> str:
    shown = branch(menu, root, depth)
    lines = [
        f"digraph {_quote(menu.name)} {{",
        # Top to bottom: a menu fans out into many options, which fit side by side better than
        # stacked in one tall column of a left-to-right drawing.
        "  rankdir=TB; nodesep=0.25; ranksep=0.5;",
        '  node [fontname="DejaVu Sans", fontsize=10, style=filled];',
        '  edge [fontname="DejaVu Sans", fontsize=9];',
        f"  __legend [shape=note, fillcolor=white, fontsize=9, label={_left(_legend(menu, language, root, depth))}];",
    ]
    first = root or menu.start
    if first == menu.start:
        lines.append(f"  __start [shape=point, width=0.15]; __start -> {_quote(menu.start)};")
    stubs: set[str] = set()
    for node_id in shown:
        node = menu.nodes[node_id]
        shape, colour = _SHAPES.get(node.kind, ("box", "white"))
        lines.append(
            f"  {_quote(node.id)} [label={_quote(_node_label(menu, node, language))}, shape={shape}, "
            f"fillcolor={_quote(colour)}];"
        )
    for node_id in shown:
        for edge in _edges(menu.nodes[node_id], language):
            target = edge.target.node
            if _is_return(menu, edge) or not target:
                continue
            if target not in shown:
                stubs.add(target)  # beyond the depth asked for: a stub says the branch goes on
            style = "dashed" if edge.failure else "solid"
            lines.append(
                f"  {_quote(node_id)} -> {_quote(target)} [label={_quote(edge.label)}, style={style}];"
            )
    for stub in sorted(stubs):
        lines.append(
            f'  {_quote(stub)} [label={_quote(stub + " …")}, shape=box, style="dashed,rounded", '
            "fontcolor=gray30, color=gray50];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def _legend(menu: m.Menu, language: str, root: str | None, depth: int | None) -> list[str]:
    scope = ""
    if root or depth is not None:
        scope = f", from {root or menu.start}" + (f", {depth} steps" if depth is not None else "")
    lines = [
        f"menu {menu.name} ({language}{scope})",
        "",
        "Menu-wide, in every node that waits for the caller:",
    ]
    goes = {
        "operator": f"to the operator ({menu.operator})",
        "language": "switch to the other language",
        "repeat": "hear the node again",
        "back": "back to the previous menu",
        "top": f"to the top ({menu.top})",
    }
    for action in menu.global_keys.values():
        label = _edge_label(action.key, action.phrases, language).replace("\n", " ")
        lines.append(f"  {label or action.action}: {goes.get(action.action, action.action)}")
    lines += [
        "",
        "↩ in a node: its own keys back (→ top, back, repeat) and where failures go,",
        f"   drawn there rather than as edges: top is {menu.top}"
        + (f", operator is {menu.operator}" if menu.operator else ""),
        "Dashed edge: after the caller's tries ran out. Dashed box: the branch goes on (--depth).",
    ]
    return lines


def render(dot_source: str, output: str | Path) -> Path:
    """Write the graph to `output`; the format follows its extension (.svg, .png, .pdf, .dot)."""
    output = Path(output)
    fmt = FORMATS.get(output.suffix.lower())
    if fmt is None:
        raise GraphError(f"{output}: unknown picture format; use one of {', '.join(FORMATS)}")
    if fmt == "dot":
        output.write_text(dot_source, encoding="utf-8")
        return output
    dot = shutil.which("dot")
    if dot is None:
        raise GraphError(
            "graphviz 'dot' was not found on PATH; install Graphviz (Debian/Ubuntu: apt install graphviz), "
            "or write the graph source with -o FILE.dot"
        )
    done = subprocess.run(
        [dot, f"-T{fmt}", "-o", str(output)], input=dot_source.encode(), capture_output=True, check=False
    )
    if done.returncode != 0:
        raise GraphError(f"dot failed ({done.returncode}): {done.stderr.decode(errors='replace').strip()}")
    return output
