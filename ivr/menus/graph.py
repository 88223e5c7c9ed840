"""Draw a menu as a graph (Graphviz): nodes with their kind and topic, edges with keys and words."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from pathlib import Path

from ivr.menus import model as m

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
_PHRASES_SHOWN = 3


class GraphError(RuntimeError):
    pass


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _edge_label(key: str | None, phrases: m.Phrases, language: str) -> str:
    words = phrases.get(language)
    parts = [key] if key else []
    if words:
        more = ", …" if len(words) > _PHRASES_SHOWN else ""
        parts.append("«" + ", ".join(words[:_PHRASES_SHOWN]) + more + "»")
    return "\n".join(parts)


def _node_label(node: m.Node, language: str) -> str:
    head = f"{node.id}\n[{node.kind}" + (f" · {node.topic}" if node.topic else "") + "]"
    if isinstance(node, m.QueueNode):
        head += f"\nqueue {node.queue.get(language)}" + (" · callback" if node.callback_offer else "")
    if isinstance(node, m.TransferNode):
        head += f"\nto {node.to}"
    own = next((p for p in node.say if p.shared_id is None), None)
    if own is not None:
        text = own.texts.get(language)
        text = text if len(text) <= 70 else text[:69].rsplit(" ", 1)[0] + " …"
        head += "\n" + "\n".join(textwrap.wrap(text, width=36))
    return head


def to_dot(menu: m.Menu, language: str = "kk") -> str:
    lines = [
        f"digraph {_quote(menu.name)} {{",
        "  rankdir=LR;",
        '  node [fontname="DejaVu Sans", fontsize=10, style=filled];',
        '  edge [fontname="DejaVu Sans", fontsize=9];',
        f'  label={_quote(_legend(menu, language))}; labelloc=t; fontname="DejaVu Sans";',
        f"  __start [shape=point, width=0.15]; __start -> {_quote(menu.start)};",
    ]
    for node in menu.nodes.values():
        shape, colour = _SHAPES.get(node.kind, ("box", "white"))
        lines.append(
            f"  {_quote(node.id)} [label={_quote(_node_label(node, language))}, shape={shape}, fillcolor={_quote(colour)}];"
        )
    needs_back = False
    for node in menu.nodes.values():
        edges: list[tuple[m.Target, str, str]] = []
        if isinstance(node, m.MenuNode):
            edges += [(o.target, _edge_label(o.key, o.phrases, language), "solid") for o in node.options]
        if isinstance(node, m.LanguageNode):
            choices = ", ".join(
                _edge_label(c.key, c.phrases, language).replace("\n", " ") for c in node.choices
            )
            edges.append((node.next, choices, "solid"))
        if isinstance(node, m.InfoNode | m.QueueNode) and node.next is not None:
            edges.append((node.next, "" if isinstance(node, m.InfoNode) else "timeout", "solid"))
        if isinstance(node, m.GotoNode):
            edges.append((node.target, "", "solid"))
        if isinstance(node, m.InputNode) and node.on_failure.node != menu.operator:
            edges.append((node.on_failure, f"after {node.input.retries} tries", "dashed"))
        if isinstance(node, m.TopNode):
            edges.append((m.Target("top"), "", "solid"))
        if isinstance(node, m.BackNode):
            edges.append((m.Target("back"), "", "solid"))
        for target, label, style in edges:
            if target.action == "back":
                needs_back = True
            destination = {"back": "__back", "top": menu.top, "repeat": node.id}.get(
                target.action, target.node
            )
            lines.append(
                f"  {_quote(node.id)} -> {_quote(destination or '')} [label={_quote(label)}, style={style}];"
            )
    if needs_back:
        lines.append('  __back [label="back\\n(previous menu)", shape=larrow, fillcolor="#f8fafc"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _legend(menu: m.Menu, language: str) -> str:
    parts = [f"menu {menu.name} ({language})"]
    for action in menu.global_keys.values():
        label = _edge_label(action.key, action.phrases, language).replace("\n", " ")
        parts.append(f"{action.action}: {label}")
    parts.append("dashed: after failed tries; failures to the operator not drawn")
    return "\n".join(parts)


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
