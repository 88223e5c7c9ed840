"""asterisk-conf/ holds together: the dialplan lints clean, and every queue, context and endpoint one
file names is defined in the file that owns it, including the queues the 1414 menu sends callers to.
Also the queue choice and wait estimate the engine makes from AMI's QueueSummary."""

from __future__ import annotations

import configparser
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

from ivr.contact.queue_choice import (
    choose_queue,
    estimated_wait,
    general_queue,
    queue_names,
    should_offer_callback,
)
from ivr.texts import LANGUAGES

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "asterisk-conf"
EXTENSIONS = CONF / "extensions.conf"
QUEUES = CONF / "queues.conf"
MENU_1414 = ROOT / "menus" / "1414.yaml"

EXPECTED_QUEUES = {
    "kk-general",
    "ru-general",
    "kk-egov",
    "ru-egov",
    "kk-booking",
    "ru-booking",
    "kk-vehicles",
    "ru-vehicles",
}


# ---- small readers for Asterisk's config format ----------------------------------------------


def sections(path: Path) -> dict[str, list[str]]:
    """Section name -> its lines without comments (templates included, marked by their header)."""
    result: dict[str, list[str]] = {}
    current: list[str] | None = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        header = re.match(r"^\[([^\]]+)\]", line)
        if header:
            current = result.setdefault(header.group(1), [])
            continue
        if current is not None:
            current.append(line)
    return result


def settings(lines: list[str]) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in lines:
        key, _, value = line.replace("=>", "=", 1).partition("=")
        values.setdefault(key.strip(), []).append(value.strip())
    return values


def run_asterisklint(path: Path) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("asterisklint")
    env = {k: v for k, v in os.environ.items() if k != "ALINT_IGNORE"}  # nothing muted
    code = "import os, sys; from asterisklint.main import main; sys.exit(main(sys.argv[1:], os.environ))"
    return subprocess.run(
        [sys.executable, "-c", code, "dialplan-check", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


# ---- the dialplan --------------------------------------------------------------------------


def test_dialplan_lints_clean():
    result = run_asterisklint(EXTENSIONS)
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    assert report.strip() == ""


def test_lint_catches_a_broken_dialplan(tmp_path):
    # The same dialplan with a Goto to a context that does not exist: the lint must say so.
    broken = tmp_path / "extensions.conf"
    text = EXTENSIONS.read_text(encoding="utf-8")
    broken.write_text(text.replace("Goto(ivr-fallback,s,1)", "Goto(ivr-falback,s,1)"), encoding="utf-8")
    result = run_asterisklint(broken)
    assert result.returncode == 1
    assert "E_DP_GOTO_NOCONTEXT" in result.stdout + result.stderr


def test_1414_entry_hands_the_call_to_the_engine_in_kazakh():
    entry = sections(EXTENSIONS)["ivr-1414"]
    body = "\n".join(entry)
    assert "Set(CHANNEL(language)=${IVR_DEFAULT_LANGUAGE})" in body
    assert "AGI(agi://${IVR_HOST}:${IVR_PORT}/1414)" in body
    assert "AGI(hagi://${IVR_SRV}/1414)" in body
    # AGIEXITONHANGUP must stay false so the engine sees HANGUP and dead-channel replies.
    assert "Set(AGIEXITONHANGUP=no)" in body
    assert '$["${AGISTATUS}" != "SUCCESS"]?ivr-fallback,s,1' in body
    globals_ = settings(sections(EXTENSIONS)["globals"])
    assert globals_["IVR_DEFAULT_LANGUAGE"] == ["kk"]
    assert globals_["IVR_PORT"] == ["4573"]


def test_fallback_queues_by_the_channel_language():
    body = "\n".join(sections(EXTENSIONS)["ivr-fallback"])
    assert '${IF($["${CHANNEL(language)}" = "ru"]?ru:kk)}' in body
    assert "Queue(${IVR_LANG}-general," in body


def dialplan_queue_names() -> tuple[set[str], set[str]]:
    """Queue names the dialplan uses: literal ones (per language), and variables set by the engine."""
    literal: set[str] = set()
    dynamic: set[str] = set()
    text = EXTENSIONS.read_text(encoding="utf-8")
    for line in text.splitlines():
        line = line.split(";", 1)[0]
        for match in re.finditer(r"\b(?:Queue|PauseQueueMember|UnpauseQueueMember)\(([^,)]*)", line):
            name = match.group(1)
            if not name:  # PauseQueueMember with no queue: every queue
                continue
            for language in LANGUAGES:
                expanded = name.replace("${IVR_LANG}", language).replace("${CHANNEL(language)}", language)
                (dynamic if "${" in expanded else literal).add(expanded)
    return literal, dynamic


def test_every_queue_the_dialplan_names_exists():
    literal, dynamic = dialplan_queue_names()
    assert literal == {"kk-general", "ru-general"}
    assert literal <= queue_names(QUEUES)
    # The rest come from the callback originate (its Exten); the engine runs Queue itself over AGI.
    assert dynamic == {"${IVR_CALLBACK_QUEUE}"}


def test_callback_patterns_match_every_queue_and_only_queues():
    callback = sections(EXTENSIONS)["ivr-callback"]
    patterns = [m.group(1) for line in callback if (m := re.match(r"exten\s*=>\s*_([^,]+),1,", line))]
    assert patterns == ["kk-.", "ru-."]
    prefixes = tuple(p.rstrip(".") for p in patterns)
    assert all(name.startswith(prefixes) for name in queue_names(QUEUES))


def test_callback_dials_only_kazakhstan_numbers():
    out = sections(EXTENSIONS)["ivr-callback-out"]
    extens = [line for line in out if line.startswith("exten")]
    assert len(extens) == 1
    assert extens[0].startswith("exten => _77XXXXXXXXX,1,")


# ---- queues.conf -----------------------------------------------------------------------------


def test_queues_conf_defines_exactly_the_1414_queues():
    assert queue_names(QUEUES) == EXPECTED_QUEUES


def test_every_queue_has_members_of_its_language_or_bilingual():
    queues = sections(QUEUES)
    for name in EXPECTED_QUEUES:
        members = settings(queues[name])["member"]
        language = name.split("-")[0]
        for member in members:
            interface = member.split(",")[0]
            assert interface.startswith((f"PJSIP/op-{language}-", "PJSIP/op-kkru-")), (name, member)


def test_every_queue_uses_the_shared_template():
    text = QUEUES.read_text(encoding="utf-8")
    for name in EXPECTED_QUEUES:
        assert f"[{name}](queue-1414)" in text


def test_queue_names_skips_general_and_templates(tmp_path):
    conf = tmp_path / "queues.conf"
    conf.write_text(
        "[general]\npersistentmembers=yes\n[base](!)\nstrategy=ringall\n"
        "[kk-test](base) ; a comment\nmember => PJSIP/a\n[ru-test]\n",
        encoding="utf-8",
    )
    assert queue_names(conf) == {"kk-test", "ru-test"}


def test_queue_names_rejects_a_malformed_header(tmp_path):
    conf = tmp_path / "queues.conf"
    conf.write_text("[general]\n[kk-test\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"queues.conf:2: malformed section header"):
        queue_names(conf)


# ---- names across files --------------------------------------------------------------------


def test_pjsip_contexts_exist_in_the_dialplan():
    contexts = set(sections(EXTENSIONS))
    pjsip = sections(CONF / "pjsip.conf")
    used = {value for lines in pjsip.values() for value in settings(lines).get("context", [])}
    assert used == {"from-trunk", "operators"}
    assert used <= contexts


def pjsip_endpoints() -> set[str]:
    text = (CONF / "pjsip.conf").read_text(encoding="utf-8")
    from_template = set(re.findall(r"^\[([^\]]+)\]\(operator-endpoint\)", text, flags=re.M))
    typed = {name for name, lines in sections(CONF / "pjsip.conf").items() if "type=endpoint" in lines}
    return from_template | typed


def test_queue_members_are_pjsip_endpoints():
    endpoints = pjsip_endpoints()
    queues = sections(QUEUES)
    for queue in EXPECTED_QUEUES:
        for member in settings(queues[queue])["member"]:
            interface, _, _, state_interface = member.split(",")
            assert interface == state_interface
            assert interface.removeprefix("PJSIP/") in endpoints, member


def test_operator_extensions_reach_the_endpoints():
    # [operators] dials 1xx -> op-kk-1xx, 2xx -> op-ru-2xx, 3xx -> op-kkru-3xx.
    body = "\n".join(sections(EXTENSIONS)["operators"])
    for prefix, desk in (("1", "op-kk-"), ("2", "op-ru-"), ("3", "op-kkru-")):
        assert f"exten => _{prefix}XX,1,Dial(PJSIP/{desk}${{EXTEN}},30)" in body
        assert any(name.startswith(desk) for name in pjsip_endpoints())


def test_operators_log_in_and_out_of_their_desks_general_queue():
    body = "\n".join(sections(EXTENSIONS)["operators"])
    for desk, queues in (
        ("kk", ["kk-general"]),
        ("ru", ["ru-general"]),
        ("kkru", ["kk-general", "ru-general"]),
    ):
        for queue in queues:
            for app in ("AddQueueMember", "RemoveQueueMember"):
                line = next(x for x in body.splitlines() if f"{app}({queue}," in x)
                assert f'"${{IVR_DESK}}" = "{desk}"' in line, line
    assert "exten => *53,1," in body and "exten => *54,1," in body
    assert "Set(IVR_DESK=${CUT(IVR_ENDPOINT,-,2)})" in body  # op-kkru-301 -> kkru
    # a member listed in queues.conf cannot log in or out by phone: the operator hears so
    assert '$["${AQMSTATUS}" = "ADDED"]?Set(IVR_DONE=1)' in body
    assert '$["${RQMSTATUS}" = "REMOVED"]?Set(IVR_DONE=1)' in body
    assert body.count('Playback(${IF($["${IVR_DONE}" = "1"]?beep:beeperr)})') == 2


def test_a_caller_given_back_by_a_queue_after_the_engine_stopped_hears_the_apology():
    # The engine routes (IVR_ROUTED) before Queue; if it stops while the caller waits and the queue
    # gives them back, the dialplan says what the engine would have said, rather than hang up.
    body = "\n".join(sections(EXTENSIONS)["ivr-1414"])
    assert 'same => n(routed),GotoIf($["${QUEUESTATUS}" != ""]?ivr-busy,s,1)' in body
    assert "Playback(ivr/operators-busy)" in "\n".join(sections(EXTENSIONS)["ivr-busy"])


def test_trunk_named_in_the_dialplan_exists_in_pjsip():
    trunk = settings(sections(EXTENSIONS)["globals"])["IVR_TRUNK"][0]
    assert "type=endpoint" in sections(CONF / "pjsip.conf")[trunk]


def test_manager_user_has_only_what_the_engine_needs():
    manager = sections(CONF / "manager.conf")
    general = settings(manager["general"])
    assert general["bindaddr"] == ["127.0.0.1"]
    assert general["webenabled"] == ["no"]
    user = settings(manager["ivr"])
    assert user["read"] == ["system,call,agent,user"]
    assert user["write"] == ["originate"]
    filters = [line for line in manager["ivr"] if line.startswith("eventfilter")]
    names = {re.search(r"name\(([^)]+)\)", line).group(1) for line in filters}
    assert {
        "QueueCallerJoin",
        "QueueCallerLeave",
        "QueueCallerAbandon",
        "Hangup",
        "UserEvent",
        "FullyBooted",
    } <= names


def test_every_config_file_is_well_formed_ini_like():
    # Asterisk's format is close enough to INI that a strict parser finds stray brackets and the like.
    for path in sorted(CONF.glob("*.conf")):
        parser = configparser.RawConfigParser(strict=False, delimiters=("=", "=>"), comment_prefixes=(";",))
        text = re.sub(r"^(\[[^\]]+\])\([^)]*\)", r"\1", path.read_text(encoding="utf-8"), flags=re.M)
        parser.read_string(re.sub(r"^ same =>", "same =>", text, flags=re.M), source=str(path))
        assert parser.sections(), path


# ---- the 1414 menu's queues exist ------------------------------------------------------------


def menu_queue_names(path: Path) -> set[str]:
    """Queue names a menu file uses: through the menu loader when it loads, else straight from the YAML."""
    try:
        from ivr.menus.loader import load_menu
        from ivr.menus.problems import MenuError
    except ImportError:  # the menu package is not there yet: read the YAML itself
        return _yaml_queue_names(path)
    try:
        return set(load_menu(path).queues())
    except MenuError:  # the menu still has errors elsewhere; its queue names are still worth checking
        return _yaml_queue_names(path)


def _yaml_queue_names(path: Path) -> set[str]:
    import yaml

    found: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "queue" and isinstance(value, dict):
                    found.update(str(v) for v in value.values() if isinstance(v, str))
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(yaml.safe_load(path.read_text(encoding="utf-8")))
    return found


@pytest.mark.skipif(not MENU_1414.exists(), reason="menus/1414.yaml not written yet")
def test_every_queue_of_the_1414_menu_exists_in_queues_conf():
    used = menu_queue_names(MENU_1414)
    assert used, "the 1414 menu names no queue at all"
    assert used <= queue_names(QUEUES), sorted(used - queue_names(QUEUES))


def test_menu_queue_reader_finds_queue_mappings(tmp_path):
    menu = tmp_path / "menu.yaml"
    menu.write_text(
        "nodes:\n  operator:\n    queue: {kk: kk-general, ru: ru-general}\n"
        "  cars:\n    queue: {kk: kk-vehicles, ru: ru-carz}\n",
        encoding="utf-8",
    )
    used = _yaml_queue_names(menu)
    assert used == {"kk-general", "ru-general", "kk-vehicles", "ru-carz"}
    assert used - queue_names(QUEUES) == {"ru-carz"}


# ---- queue choice and the callback decision -----------------------------------------------


@attrs.frozen
class Summary:
    """What QueueSummary reports, as plain data."""

    available: int
    logged_in: int
    callers: int
    hold_time: float


@attrs.frozen
class SummaryWithTalk(Summary):
    talk_time: float = 0.0


def test_choose_queue_by_language():
    queues = {"kk": "kk-egov", "ru": "ru-egov"}
    assert choose_queue(queues, "kk") == "kk-egov"
    assert choose_queue(queues, "ru") == "ru-egov"


def test_choose_queue_falls_back_to_the_other_language_then_general():
    assert choose_queue({"kk": "kk-vehicles"}, "ru") == "kk-vehicles"
    assert choose_queue({"ru": "ru-booking", "kk": ""}, "kk") == "ru-booking"
    assert choose_queue({}, "ru") == "ru-general"
    assert general_queue("kk") == "kk-general"


def test_choose_queue_refuses_an_unknown_language():
    with pytest.raises(ValueError, match="'en' is not one of kk, ru"):
        choose_queue({"kk": "kk-general"}, "en")


def test_nobody_logged_in_means_callback():
    empty = Summary(available=0, logged_in=0, callers=0, hold_time=0)
    assert estimated_wait(empty) == math.inf
    assert should_offer_callback(empty, threshold_seconds=10_000)


def test_a_free_operator_means_no_wait():
    calm = Summary(available=2, logged_in=5, callers=1, hold_time=240)
    assert estimated_wait(calm) == 0
    assert not should_offer_callback(calm, threshold_seconds=60)


def test_without_talk_time_asterisk_hold_time_is_the_estimate():
    busy = Summary(available=0, logged_in=4, callers=12, hold_time=300)
    assert estimated_wait(busy) == 300
    assert should_offer_callback(busy, threshold_seconds=180)
    assert not should_offer_callback(busy, threshold_seconds=300)


def test_talk_time_estimate_follows_a_flood_at_once():
    # Booking service down: 400 callers, 20 operators busy, 3 min per call, hold time still calm.
    flood = SummaryWithTalk(available=0, logged_in=20, callers=400, hold_time=60, talk_time=180)
    assert estimated_wait(flood) == pytest.approx(401 * 180 / 20)
    assert should_offer_callback(flood, threshold_seconds=600)
    # One in line, 10 operators of 5 minutes each: about half a minute.
    short = SummaryWithTalk(available=0, logged_in=10, callers=0, hold_time=120, talk_time=300)
    assert estimated_wait(short) == pytest.approx(30)
    assert not should_offer_callback(short, threshold_seconds=60)


def test_free_operators_shorten_the_line():
    some_free = SummaryWithTalk(available=2, logged_in=10, callers=5, hold_time=0, talk_time=100)
    assert estimated_wait(some_free) == pytest.approx(4 * 100 / 10)
