"""Cross-reference checks on a loaded menu: targets, reachability, loops, keys, queues, prompts, words.

Unreachable nodes are warnings, not errors: an admin often prepares a branch (an outage notice, a
new service) before linking it in, and rejecting the whole file on hot reload for that would keep
an older, wrong menu running. Every other check here is an error, except phrases unknown to a speech
model (the option still works by key; the model may be swapped later), duplicated phrases, also
those that differ only in word forms the matcher reduces ("запись" / "записи"), and a recording the
prompts build refuses (callers hear a consistent prompt; the engine takes the menu all the same).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import attrs

from ivr.menus import model as m
from ivr.menus.problems import MenuProblem, Problems, did_you_mean, ordinal
from ivr.menus.yamlpos import Position
from ivr.texts import LANGUAGES, PromptProblem, PromptText

# Given texts, what is wrong with their audio: a message (an error), or a PromptProblem with its severity.
PromptCheck = Callable[[list[PromptText]], Sequence[str | PromptProblem]]
# Where the file put values the model keeps no position of: (node id, key), or (None, key) at the top
# level. Filled by the loader, so a message points at the `topic:` line, not at its node's first line.
KeyPlaces = dict[tuple[str | None, str], Position]
Vocabulary = Callable[[str], "set[str] | None"]
_SECTION_RE = re.compile(r"^\s*\[([^\]]+)\]\s*(\([^)]*\))?")


@attrs.frozen
class ValidatorOptions:
    """What the validator may consult beyond the menu file itself.

    queues_conf: asterisk-conf/queues.conf; None skips the queue check (with a warning).
    check_prompts: given one node's (or shared text's) PromptTexts, returns a message per prompt that
        is neither recorded nor buildable (an error), and per recording the build refuses (a warning: the
        engine takes the menu, and callers hear a consistent prompt); supplied by the prompts package.
    vocabulary: language -> the speech model's words, or None when no model is present.
    """

    queues_conf: Path | None = None
    check_prompts: PromptCheck | None = None
    vocabulary: Vocabulary | None = None

    @classmethod
    def beside(cls, menus_dir: str | Path) -> ValidatorOptions:
        """The queues of the asterisk-conf/ directory that sits beside the menus directory."""
        queues = Path(menus_dir).resolve().parent / "asterisk-conf" / "queues.conf"
        return cls(queues_conf=queues if queues.is_file() else None)


def asterisk_queue_names(path: Path) -> set[str]:
    """Queue names defined in queues.conf: every [section] except [general] and templates `(!)`."""
    names = set()
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        match = _SECTION_RE.match(line.split(";", 1)[0])
        if not match:
            continue
        name, flags = match.group(1).strip(), match.group(2) or ""
        if name != "general" and "!" not in flags:
            names.add(name)
    return names


def validate_menu(
    menu: m.Menu, options: ValidatorOptions = ValidatorOptions(), places: KeyPlaces | None = None
) -> list[MenuProblem]:
    problems = Problems()
    places = places or {}
    _check_start(menu, places, problems)
    _check_targets(menu, problems)
    _check_reachable(menu, problems)
    _check_loops(menu, problems)
    _check_keys(menu, problems)
    _check_phrases(menu, problems)
    _check_topics(menu, places, problems)
    _check_queues(menu, options.queues_conf, problems)
    if options.check_prompts is not None:
        _check_prompts(menu, options.check_prompts, problems)
    if options.vocabulary is not None:
        _check_vocabulary(menu, options.vocabulary, problems)
    return problems.items


def _exists(menu: m.Menu, target: m.Target) -> bool:
    return target.action != "node" or target.node in menu.nodes


def _check_start(menu: m.Menu, places: KeyPlaces, problems: Problems) -> None:
    for key, node_id in (("start", menu.start), ("top", menu.top)):
        if key == "top" and node_id == menu.start:
            continue  # said once, for start (top defaults to it)
        if node_id and node_id not in menu.nodes:
            hint = did_you_mean(node_id, menu.nodes)
            problems.error(
                places.get((None, key), menu.pos),
                f'{key}: "{node_id}" is not a node{hint}; name a node under nodes:',
            )
    first = menu.nodes.get(menu.start)
    if isinstance(first, m.BackNode | m.RepeatNode):
        problems.error(
            places.get((first.id, "kind"), first.pos),
            f'the start node "{menu.start}" cannot be {first.kind}: nothing comes before it',
        )


def _check_targets(menu: m.Menu, problems: Problems) -> None:
    for node in menu.nodes.values():
        for target in node.targets():
            if target.action == "node" and not target.node:
                continue  # the loader already reported the missing key
            if not _exists(menu, target):
                hint = did_you_mean(target.node or "", menu.nodes)
                problems.error(
                    target.pos or node.pos,
                    f'node "{node.id}" leads to "{target.node}", which is not a node{hint}; '
                    "fix the name or add the node",
                )
            if target.action == "repeat" and not node.takes_input:
                problems.error(
                    target.pos, f'node "{node.id}" ({node.kind}) cannot go to repeat: only input nodes repeat'
                )
    operator = menu.global_keys.get("operator")
    if operator and operator.target and not _exists(menu, operator.target):
        hint = did_you_mean(operator.target.node or "", menu.nodes)
        problems.error(
            operator.target.pos, f'keys.operator goes to "{operator.target}", which is not a node{hint}'
        )


def _successors(menu: m.Menu, node: m.Node) -> Iterable[str]:
    for target in node.targets():
        if target.action == "node" and target.node:
            yield target.node
        elif target.action == "top":
            yield menu.top
    if isinstance(node, m.TopNode):
        yield menu.top
    if isinstance(node, m.InputNode) and node.global_keys and menu.operator:
        yield menu.operator


def _check_reachable(menu: m.Menu, problems: Problems) -> None:
    if menu.start not in menu.nodes:
        return
    seen = {menu.start}
    stack = [menu.start]
    while stack:
        node = menu.nodes[stack.pop()]
        for successor in _successors(menu, node):
            if successor in menu.nodes and successor not in seen:
                seen.add(successor)
                stack.append(successor)
    for node in menu.nodes.values():
        if node.id not in seen:
            problems.warning(
                node.pos,
                f'node "{node.id}" cannot be reached from start "{menu.start}"; link it from an option '
                "or remove it",
            )


def _pass_through_next(menu: m.Menu, node: m.Node) -> str | None:
    """The one node a node that neither waits for input nor leaves the menu moves on to."""
    if node.takes_input or node.leads_out:
        return None
    if isinstance(node, m.TopNode):
        return menu.top
    target = getattr(node, "next", None) or getattr(node, "target", None)
    if not isinstance(target, m.Target):
        return None  # back/repeat nodes land on an input node visited before
    if target.action == "top":
        return menu.top
    return target.node if target.action == "node" else None


def _check_loops(menu: m.Menu, problems: Problems) -> None:
    """A cycle of nodes none of which waits for input or leads out would spin the call forever."""
    done: set[str] = set()
    for first in menu.nodes:
        path: list[str] = []
        on_path: set[str] = set()
        current: str | None = first
        while current is not None and current in menu.nodes and current not in done:
            if current in on_path:
                cycle = path[path.index(current) :]
                node = menu.nodes[cycle[0]]
                chain = " -> ".join([*cycle, cycle[0]])
                problems.error(
                    node.pos,
                    f"loop without an exit: {chain}; none of these nodes waits for the caller or leaves the "
                    "menu, so the call would spin forever. Make one of them a menu, or point it elsewhere",
                )
                break
            path.append(current)
            on_path.add(current)
            current = _pass_through_next(menu, menu.nodes[current])
        done.update(path)


def _check_keys(menu: m.Menu, problems: Problems) -> None:
    by_key: dict[str, m.GlobalKey] = {}
    for action in menu.global_keys.values():
        if action.key is None:
            continue
        if action.key in by_key:
            problems.error(
                action.pos,
                f'keys.{action.action} uses "{action.key}", already the key of keys.{by_key[action.key].action}; '
                "give each menu-wide action its own key",
            )
        by_key.setdefault(action.key, action)
    for node in menu.nodes.values():
        if not isinstance(node, m.InputNode):
            continue
        items = getattr(node, "options", ()) or getattr(node, "choices", ())
        used: dict[str, Position] = {}
        for number, item in enumerate(items, start=1):
            label = f'node "{node.id}", {ordinal(number)} {"choice" if isinstance(node, m.LanguageNode) else "option"}'
            if item.key is None:
                if not item.phrases and node.input.modes != {"dtmf"}:  # DTMF-only: the loader reports it
                    problems.error(
                        item.pos, f"{label} has neither a key nor phrases; callers cannot choose it"
                    )
                continue
            if item.key in used:
                problems.error(
                    item.pos,
                    f'{label}: key "{item.key}" is already used at line {used[item.key].line}; '
                    "each key may lead to one place",
                )
            used.setdefault(item.key, item.pos)
            taken = by_key.get(item.key) if node.global_keys else None
            if taken is not None and not _same_as_global(menu, item, taken):
                problems.error(
                    item.pos,
                    f'{label}: key "{item.key}" is the menu-wide {taken.action} key (keys.{taken.action}); '
                    f"choose another key here, or set global_keys: false on this node",
                )
            for other in used:
                if other != item.key and (other.startswith(item.key) or item.key.startswith(other)):
                    problems.error(
                        item.pos,
                        f'{label}: key "{item.key}" and key "{other}" start alike, so the shorter one '
                        "can never wait for the longer; use keys that do not prefix each other",
                    )
            if node.global_keys and taken is None:
                # "08" beside the menu-wide "0": pressing 0 would wait for a second key before the
                # operator, in every node that offers "08"
                for key, action in by_key.items():
                    if key != item.key and (key.startswith(item.key) or item.key.startswith(key)):
                        problems.error(
                            item.pos,
                            f'{label}: key "{item.key}" and the menu-wide {action.action} key "{key}" '
                            "start alike, so one of them would wait for a second key; choose a key that "
                            "starts with neither, or set global_keys: false on this node",
                        )
        if node.input.modes == {"dtmf"} and not items and not node.global_keys:
            problems.error(node.pos, f'node "{node.id}" takes DTMF but offers no keys at all')


def _same_as_global(menu: m.Menu, item: m.Option | m.LanguageChoice, action: m.GlobalKey) -> bool:
    """An option may repeat a menu-wide key if it does the same thing (e.g. "0: operator" listed)."""
    if not isinstance(item, m.Option):
        return False
    if action.action == "operator":
        return item.target.action == "node" and item.target.node == menu.operator
    return item.target.action == action.action


def _check_phrases(menu: m.Menu, problems: Problems) -> None:
    from ivr.speech.matcher import phrase_key  # only menus that take speech need the matcher

    global_keys = {action.key for action in menu.global_keys.values() if action.key is not None}
    for node in menu.nodes.values():
        if not isinstance(node, m.InputNode) or not node.input.speech:
            continue
        items = getattr(node, "options", ()) or getattr(node, "choices", ())
        owners: dict[tuple[str, str], int] = {}
        # The same phrase once word forms are reduced: the matcher cannot tell the options apart by it.
        reduced: dict[tuple[str, tuple[str, ...]], tuple[int, str]] = {}
        for number, item in enumerate(items, start=1):
            duplicate_of_global = item.key in global_keys
            missing = [lang for lang in LANGUAGES if not item.phrases.get(lang)]
            if missing and not duplicate_of_global and not isinstance(node, m.LanguageNode):
                # Speech-only: a language without phrases cannot reach the option at all.
                report = problems.error if node.input.modes == {"speech"} else problems.warning
                langs = " and ".join(missing)
                report(
                    item.pos,
                    f'node "{node.id}", {ordinal(number)} option has no {langs} phrases, so {langs} callers cannot say '
                    f"it; add phrases: {{{missing[0]}: [...]}}",
                )
            for lang in LANGUAGES:
                for phrase in item.phrases.get(lang):
                    other = owners.setdefault((lang, phrase), number)
                    if other != number:
                        problems.warning(
                            item.pos,
                            f'node "{node.id}": the {lang} phrase "{phrase}" is listed for the {ordinal(other)} '
                            f"option and the {ordinal(number)}; the first one wins",
                        )
                        continue
                    key = phrase_key(phrase, lang)
                    first, first_phrase = reduced.setdefault((lang, key), (number, phrase))
                    if first != number:
                        problems.warning(
                            item.pos,
                            f'node "{node.id}": the {lang} phrase "{phrase}" of the {ordinal(number)} option is '
                            f'"{first_phrase}" of the {ordinal(first)} in another form ({" ".join(key)}); speech cannot tell the '
                            "two options apart by it, so keep it in one of them",
                        )
        if isinstance(node, m.LanguageNode) and not any(choice.phrases for choice in node.choices):
            problems.warning(node.pos, f'node "{node.id}" takes speech but its choices list no phrases')


def _check_topics(menu: m.Menu, places: KeyPlaces, problems: Problems) -> None:
    if not menu.topics:
        return
    for node in menu.nodes.values():
        if node.topic is not None and node.topic not in menu.topics:
            hint = did_you_mean(node.topic, menu.topics)
            problems.error(
                places.get((node.id, "topic"), node.pos),
                f'node "{node.id}" has topic "{node.topic}", not listed in topics:{hint}; add it there',
            )
    used = {node.topic for node in menu.nodes.values()}
    for topic in menu.topics:
        if topic not in used:
            problems.warning(
                places.get((None, f"topic:{topic}"), menu.pos),
                f'topic "{topic}" is listed in topics: but no node has it: no call is ever counted under it, '
                "and an outage announced for it is heard only after the language choice; give it to the "
                "nodes of its subject, or remove it",
            )


def _check_queues(menu: m.Menu, queues_conf: Path | None, problems: Problems) -> None:
    queue_nodes = [node for node in menu.nodes.values() if isinstance(node, m.QueueNode)]
    if not queue_nodes:
        return
    if queues_conf is None or not queues_conf.is_file():
        where = f" ({queues_conf} not found)" if queues_conf else ""
        problems.warning(
            menu.pos,
            f"queue names not checked against Asterisk{where}; keep asterisk-conf/queues.conf beside menus/",
        )
        return
    defined = asterisk_queue_names(queues_conf)
    for node in queue_nodes:
        for lang in LANGUAGES:
            name = node.queue.get(lang)
            if name and name not in defined:
                hint = did_you_mean(name, defined)
                problems.error(
                    node.queue.pos,
                    f'node "{node.id}": queue "{name}" ({lang}) is not defined in {queues_conf}{hint}; '
                    "add a [section] for it there or fix the name",
                )


def _check_prompts(menu: m.Menu, check: PromptCheck, problems: Problems) -> None:
    """Ask the prompts package about each node's own texts, so every message gets that node's place."""
    groups: list[tuple[Position, list[m.Prompt]]] = [(t.pos, [t.prompt]) for t in menu.texts.values()]
    defaults: dict[str, m.Prompt] = {}
    for node in menu.nodes.values():
        own = []
        for _, prompt in node.prompts():
            if prompt.shared_id is not None:
                continue
            if prompt.sound.startswith(f"{menu.name}/default-"):
                defaults.setdefault(prompt.sound, prompt)
            else:
                own.append(prompt)
        if own:
            groups.append((node.pos, own))
    groups.extend((p.pos, [p]) for p in defaults.values())
    for pos, prompts in groups:
        texts = [PromptText(p.sound, lang, p.texts.get(lang)) for p in prompts for lang in LANGUAGES]
        for problem in check(texts):
            if isinstance(problem, PromptProblem) and problem.severity == "warning":
                problems.warning(pos, f"prompt audio: {problem.message}")
            else:
                problems.error(pos, f"prompt audio: {problem}")


def _check_vocabulary(menu: m.Menu, vocabulary: Vocabulary, problems: Problems) -> None:
    for lang in LANGUAGES:
        words = vocabulary(lang)
        if words is None:
            continue
        items: list[tuple[Position, m.Phrases]] = [(g.pos, g.phrases) for g in menu.global_keys.values()]
        for node in menu.nodes.values():
            for item in getattr(node, "options", ()) + getattr(node, "choices", ()):
                items.append((item.pos, item.phrases))
        for pos, phrases in items:
            for phrase in phrases.get(lang):
                unknown = [word for word in phrase.split() if word not in words]
                if unknown:
                    problems.warning(
                        pos,
                        f'{lang} phrase "{phrase}": {", ".join(unknown)} not in the {lang} speech model\'s '
                        "vocabulary, so it can never be recognised; use words the model knows",
                    )
