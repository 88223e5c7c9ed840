"""`ivr prompts build`: every text of every language into prompts/<lang>/<name>.wav (+ .wav16), incrementally.

The texts handed to build_prompts are the complete set for the languages built: a generated file whose
text is no longer among them is deleted. Per (language, name) the build decides:
- an admin's recording is there (any file the manifest does not know as the build's own, or a name.mp3,
  name.WAV ... beside it): check that it is sound audio, keep it, convert it to the native format if it
  is not already, mark it human; the original bytes go to prompts/<lang>/.originals/ when the file has
  to be converted.
- the recording is broken (not audio, empty, cut short, silent): refuse it, and callers keep hearing one
  consistent prompt. A name.mp3 beside the prompt stays where it is and the prompt's files are not
  touched; a name.wav has itself replaced the prompt's narrowband audio, so it is set aside into
  prompts/<lang>/.refused/ and the text synthesised in its place (both formats, never a mix).
- the build's own file is there and its content key (text + voice + SYNTH_VERSION) is unchanged: nothing.
- otherwise: synthesise.
Entries are marked pending in the manifest before their files are touched, so the leftovers of an
interrupted build are recognised as the build's own next time.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import attrs

from ivr.config import PromptSettings, Settings
from ivr.prompts.audio import (
    NARROWBAND_EXT,
    RECORDING_EXTS,
    WIDEBAND_EXT,
    AudioError,
    file_sha256,
    read_wav_info,
    recording_fault,
    sox_path,
)
from ivr.prompts.catalog import asterisk_sound_texts
from ivr.prompts.manifest import GENERATED, HUMAN, Entry, Manifest, ManifestError
from ivr.prompts.render import RenderJob, RenderResult, render
from ivr.prompts.synth import SYNTH_VERSION, SynthError, VoiceSettings, all_voices, synthesis_problems
from ivr.texts import LANGUAGES, PromptProblem, PromptText

ORIGINALS_DIR = ".originals"
REFUSED_DIR = ".refused"  # broken recordings set aside from a prompt's own place, for the admin to see
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*")
# How many characters of a text (spaces and punctuation counted) a person says in a second at an
# ordinary pace: espeak-ng speaks the menus' texts at 9-15 a second (150 words a minute). A recording is
# measured against what its text needs at this pace; one far shorter is refused (audio.TOO_SHORT_SHARE).
ORDINARY_PACE = 15.0
# Below this many jobs a build runs them one after another in the calling thread.
_MIN_PARALLEL_JOBS = 8

ProgressCallback = Callable[[int, int, str], None]


class PromptError(ValueError):
    """The texts cannot be built as given (bad name, unknown language, empty or conflicting text)."""


@attrs.frozen
class BuildReport:
    """What a build did (or, with check_only, would do). Names are "<lang>/<name>"."""

    check_only: bool = False
    synthesized: tuple[str, ...] = ()
    converted: tuple[str, ...] = ()  # human recordings brought to the native format
    human: tuple[str, ...] = ()  # human recordings in use, converted or not
    unchanged: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()  # generated files of texts no longer in the menus (check: would be)
    unused_human: tuple[str, ...] = ()  # human recordings no text refers to (kept)
    outdated_human: tuple[str, ...] = ()  # human recordings whose text changed since they were adopted
    unknown: tuple[str, ...] = ()  # audio files named after no prompt: never played (a misnamed recording?)
    recased: tuple[str, ...] = ()  # recordings with an upper-case ending (bye.WAV) adopted as bye.wav
    missing: tuple[str, ...] = ()  # check_only: no audio at all
    stale: tuple[str, ...] = ()  # check_only: text/voice changed
    to_convert: tuple[str, ...] = ()  # check_only: a recording put there waits for a build to convert it
    # Broken recordings (messages): callers hear a consistent prompt without them, but not what the
    # admin recorded; the build and the check exit non-zero until the admin replaces or deletes them.
    refused: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()  # messages
    conversions: tuple[str, ...] = ()  # which recordings were converted, from which file (messages)
    leftovers: tuple[str, ...] = ()  # refused recordings a good one has replaced, removed (check: would be)
    waiting: tuple[str, ...] = ()  # check_only: what callers hear of each recording in to_convert (messages)
    # Recordings no prompt uses, and converted ones whose .wav the admin deleted: what to do (messages).
    unused_notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Every prompt playable (the engine may start); a refused recording does not change that."""
        return not self.failed and not (self.check_only and (self.missing or self.stale or self.to_convert))

    @property
    def exit_code(self) -> int:
        return 0 if self.ok and not self.refused else 1

    def notices(self) -> list[str]:
        """What the admin should know or see to, one a line (neither a build nor a check fails for it):
        for a check, what a build would do first."""
        recased = RECASED_CHECK if self.check_only else RECASED
        lines = []
        if self.check_only:
            lines += [f"missing: {name}" for name in self.missing]
            lines += [f"stale: {name}" for name in self.stale]
            lines += [f"unused, a build removes it: {name}" for name in self.removed]
        return (
            lines
            + list(self.waiting)
            + list(self.conversions)
            + list(self.leftovers)
            + [OUTDATED.format(name=n) for n in self.outdated_human]
            + [UNKNOWN.format(name=n) for n in self.unknown]
            + list(self.unused_notes)
            + [recased.format(file=f, name=_lower_case_ending(f)) for f in self.recased]
        )

    def counts(self, label: str = "") -> str:
        """The one line of figures that ends the summary."""
        if self.check_only:
            counts = f"{len(self.missing)} missing, {len(self.stale)} stale, {len(self.unchanged)} up to date"
            human = _count(self.human, "human recording")
            if self.to_convert:
                human += f", {_count(self.to_convert, 'recording')} waiting to be converted"
            return f"prompts check: {counts}, {human}{self._refused_count()}"
        return (
            f"{label}{len(self.synthesized)} synthesised, {_count(self.converted, 'recording')} converted, "
            f"{len(self.unchanged)} unchanged, {len(self.human)} human, {len(self.removed)} removed, "
            f"{len(self.failed)} failed{self._refused_count()}"
        )

    def summary(self, label: str = "") -> str:
        """Problems and notices, one a line, then the counts. `label` starts the counts line: the CLI
        prints "prompts: ", while the engine's log line says "prompts:" itself and passes nothing."""
        errors = [f"error: {message}" for message in self.failed]
        if self.check_only:
            lines = self.notices() + errors + list(self.refused)
        else:
            lines = errors + list(self.refused) + self.notices()
        return "\n".join([*lines, self.counts(label)])

    def _refused_count(self) -> str:
        """Only when there are some: the usual counts line stays as it always was."""
        return f", {_count(self.refused, 'recording')} refused" if self.refused else ""


def _count(items: tuple[str, ...], noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def content_key(text: str, voice: VoiceSettings, wideband: bool) -> str:
    """What a generated file depends on; any change makes it stale."""
    basis = {"v": SYNTH_VERSION, "text": normalize_text(text), "voice": voice.fingerprint(), "wb": wideband}
    return hashlib.sha256(json.dumps(basis, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


# Callers hear a person's recording whatever the text says now: the admin must hear of a change.
OUTDATED = (
    "recording older than its text: {name} (callers still hear the recorded words; record it again, "
    "or delete it to hear the new text synthesised)"
)


UNKNOWN = "no prompt is named after {name}: it is never played (a recording with a wrong name or place?)"

# A node deleted from its menu leaves the person's recording behind, unplayed: the build never deletes it,
# nor the original it converted it from, which is the better copy to move to a renamed node's name.
UNUSED_HUMAN = (
    "recording no prompt uses any more: {name}.wav (its node deleted or renamed?); it is kept: delete it "
    "if it is no longer needed (the next build removes its .wav16 with it)"
)
UNUSED_CONVERTED = (
    "recording no prompt uses any more: {name}.wav (its node deleted or renamed?), converted from the "
    "original kept as {original}; both are kept. For a renamed node, move the original to the new name "
    "({folder}<new id>{ending}) and delete {name}.wav: the build converts it again. If neither is needed "
    "any more, delete both (the next build removes the .wav16 too)"
)
# The admin deleted a converted recording's .wav: the original stays, with no prompt to name it after this.
DELETED_CONVERTED = (
    "recording deleted: {name}.wav; its original stays as {original}: delete that too if it is no longer "
    "needed, or move it back to {name}{ending} to have it converted again"
)

# Windows tools write endings in capitals; Asterisk looks for bye.wav only, so the build converts.
RECASED = (
    "{file} adopted as {name}: Asterisk looks for the lower-case ending only (the original is kept in "
    ".originals/)"
)
RECASED_CHECK = "{file}: a build adopts it as {name} (Asterisk looks for the lower-case ending only)"


def _lower_case_ending(file: str) -> str:
    stem, dot, ending = file.rpartition(".")
    return f"{stem}{dot}{ending.lower()}"


def normalize_text(text: str) -> str:
    """Whitespace never changes speech, so it never makes a prompt stale."""
    return " ".join(text.split())


def prompt_files(prompts_dir: str | os.PathLike[str], text: PromptText) -> tuple[Path, Path]:
    """(name.wav, name.wav16) under prompts/<lang>/."""
    base = Path(prompts_dir) / text.language / text.name
    return base.with_name(base.name + NARROWBAND_EXT), base.with_name(base.name + WIDEBAND_EXT)


def collect_texts(
    texts: Iterable[PromptText],
    languages: Iterable[str] = LANGUAGES,
    *,
    include_asterisk_sounds: bool = True,
) -> dict[str, dict[str, str]]:
    """{language: {name: normalised text}} with every problem reported at once."""
    languages = tuple(languages)
    problems: list[str] = []
    for language in languages:
        if language not in LANGUAGES:
            problems.append(f"unknown language {language!r} (known: {', '.join(LANGUAGES)})")
    chosen: dict[str, dict[str, str]] = {language: {} for language in languages}
    everything = list(texts)
    if include_asterisk_sounds:
        everything += [
            t for language in chosen if language in LANGUAGES for t in asterisk_sound_texts(language)
        ]
    for item in everything:
        where = f"{item.language}/{item.name}"
        if item.language not in LANGUAGES:
            problems.append(f"{where}: unknown language {item.language!r}")
            continue
        if item.language not in chosen:
            continue
        if not _NAME.fullmatch(item.name) or ".." in item.name.split("/"):
            problems.append(f"{where}: a sound name is letters, digits, '_', '-', '.' and '/' between parts")
            continue
        text = normalize_text(item.text)
        if not text:
            problems.append(f"{where}: empty text")
            continue
        earlier = chosen[item.language].setdefault(item.name, text)
        if earlier != text:
            problems.append(f"{where}: two different texts for one sound ({earlier[:30]!r}, {text[:30]!r})")
    if problems:
        raise PromptError("\n".join(problems))
    return chosen


def build_prompts(
    texts: Iterable[PromptText],
    prompts_dir: str | os.PathLike[str],
    settings: PromptSettings | Settings,
    *,
    check_only: bool = False,
    force: bool = False,
    languages: Iterable[str] = LANGUAGES,
    include_asterisk_sounds: bool = True,
    wideband: bool = True,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
    remove_unused: bool = True,
) -> BuildReport:
    """Bring prompts/<lang>/ in line with `texts` (the complete set for `languages`).

    `force` synthesises every generated prompt again (human recordings are still never touched).
    `wideband` also writes the 16 kHz `.wav16` Asterisk prefers on G.722/Opus channels.
    `remove_unused=False` keeps generated prompts no text needs any more: the running engine builds
    so, because calls in progress finish on the menu version they started with, and may still play
    a sound a reload (or a menu file moved away) no longer names; `ivr prompts build` tidies them.
    """
    prompt_settings = settings.prompts if isinstance(settings, Settings) else settings
    targets = collect_texts(texts, languages, include_asterisk_sounds=include_asterisk_sounds)
    voices = all_voices(prompt_settings, tuple(targets))
    root = Path(prompts_dir)
    tally = _Tally()
    plans = {
        language: _plan_language(root / language, names, voices[language], wideband, force, tally)
        for language, names in targets.items()
    }
    for plan in plans.values():
        _name_unknown_files(plan, tally)
    if check_only:
        for plan in plans.values():
            for step in plan.steps:
                _tally_for_check(step, tally)
            _remove_unused(plan, tally, dry_run=True)
            tally.leftovers += [leftover.check_message() for leftover in plan.leftovers]
        return tally.report(check_only=True)
    if any(plan.steps for plan in plans.values()):
        problems = synthesis_problems(voices) if any(p.needs_speech for p in plans.values()) else []
        if sox_path() is None:
            problems.append("sox is not installed (Debian: apt-get install sox libsox-fmt-all)")
        if problems:
            tally.failed += problems
            return tally.report()
    for plan in plans.values():
        for name, old in plan.adopted:
            _drop_generated_wav16(plan.language_dir, name, old)
    try:
        _execute([step for plan in plans.values() for step in plan.steps], workers, progress, tally)
    finally:
        for plan in plans.values():
            if remove_unused:
                _remove_unused(plan, tally)
            _remove_leftovers(plan, tally)
            plan.manifest.save()
    return tally.report()


def _tally_for_check(step: _Step, tally: _Tally) -> None:
    """What a build would do, as the check lists it (a refused recording is named on its own line)."""
    if step.reason == "refused":
        return
    if step.reason == "recording":
        tally.to_convert.append(step.key)
        if _recased(step):
            tally.recased.append(_file_key(step, step.job.source))  # its own line says it all
        else:
            tally.waiting.append(_waiting(step))
        return
    (tally.missing if step.reason == "missing" else tally.stale).append(step.key)
    if step.reason == "missing":  # a converted recording deleted, its text synthesised in its place
        _name_original_left(step.language_dir, step.key, step.previous, tally)


def _waiting(step: _Step) -> str:
    """A recording the next build converts, and what callers hear until then."""
    source = step.job.source
    assert source is not None
    until = "until `ivr prompts build` (or the running engine, at its start or next menu reload) converts it"
    if step.move_source == "kept":
        return f"recording waiting to be converted again: {_file_key(step, source)} (a build was interrupted)"
    if step.move_source == "after":
        return (
            f"recording waiting to be converted: {_file_key(step, source)}; callers keep hearing the prompt "
            f"as it was {until} into {step.key}.wav"
        )
    # A .wav in the prompt's own place, in a shape Asterisk's format_wav refuses ("Unexpected frequency
    # mismatch"): Asterisk falls back on the prompt's other file, the .wav16 of what was there before.
    info = read_wav_info(source)
    shape = "not 16-bit PCM"
    if info is not None:
        channels = "mono" if info.channels == 1 else f"{info.channels} channels"
        shape = f"{info.rate} Hz, {channels}, {8 * info.sample_width}-bit"
    wav16 = step.language_dir / f"{step.name}{WIDEBAND_EXT}"
    hear = "the old .wav16 (what the prompt said before)" if wav16.is_file() else "nothing there"
    return (
        f"recording waiting to be converted: {_file_key(step, source)} ({shape}): Asterisk plays a .wav "
        f"only at 8 kHz, mono, 16-bit, so callers hear {hear} {until}"
    )


def _recased(step: _Step) -> bool:
    """A name.WAV (or .Wav) beside the prompt: converted, and said so, as the admin meant it to play."""
    source = step.job.source
    if step.move_source != "after" or source is None:
        return False
    return source.suffix != NARROWBAND_EXT and source.suffix.lower() == NARROWBAND_EXT


def _file_key(step: _Step, path: Path | None) -> str:
    """ "kk/1414/bye.WAV": a file under prompts/, as the report's other names are written."""
    assert path is not None
    return f"{step.language_dir.name}/{path.relative_to(step.language_dir).as_posix()}"


def missing_prompts(
    texts: Iterable[PromptText],
    prompts_dir: str | os.PathLike[str] = "prompts",
    *,
    include_asterisk_sounds: bool = False,
) -> list[str]:
    """Every text with no playable .wav, as "<lang>/<name>": the engine refuses to start on these.

    `include_asterisk_sounds` also requires the digits/ and queue- sounds of every language present
    (the engine needs them when it says queue positions and waiting minutes itself).
    """
    texts = list(texts)
    if include_asterisk_sounds:
        for language in sorted({t.language for t in texts} & set(LANGUAGES)):
            texts += asterisk_sound_texts(language)
    missing = []
    for text in texts:
        wav, _ = prompt_files(prompts_dir, text)
        if not wav.is_file():
            missing.append(f"{text.language}/{text.name}")
    return sorted(set(missing))


def check_prompts(
    texts: Iterable[PromptText],
    prompts_dir: str | os.PathLike[str] = "prompts",
    settings: PromptSettings | Settings | None = None,
    *,
    buildable_is_fine: bool = False,
) -> list[PromptProblem]:
    """What the menu validator says of these texts' audio. Errors: prompts missing, and why they could
    not be built here; recordings a build cannot choose between. Warnings: recordings a build refuses
    (broken): callers hear a consistent prompt all the same, and the engine takes the menu, so an
    `ivr check` in front of every menu edit must not block the edit for them.

    With `buildable_is_fine`, a missing prompt this machine can synthesise is no problem (`ivr check`
    after an edit: the engine builds it on reload); only prompts neither present nor buildable are.
    """
    texts = list(texts)
    prompt_settings = settings.prompts if isinstance(settings, Settings) else settings or PromptSettings()
    messages = [
        f"prompt {key} is missing (run `ivr prompts build`)" for key in missing_prompts(texts, prompts_dir)
    ]
    languages = sorted({t.language for t in texts} & set(LANGUAGES))
    try:
        targets = collect_texts(texts, languages, include_asterisk_sounds=False)
        voices = all_voices(prompt_settings, tuple(languages))
        tally = _recording_problems(targets, Path(prompts_dir), voices)
    except (PromptError, SynthError, ManifestError) as exc:
        return [PromptProblem(message) for message in [*messages, *str(exc).splitlines()]]
    if messages:
        reasons = synthesis_problems(voices)
        if sox_path() is None:
            reasons.append("sox is not installed: prompts cannot be converted (apt-get install sox)")
        messages = [] if buildable_is_fine and not reasons else messages + reasons
    refused = [refusal.message(check_only=True) for refusal in sorted(set(tally.refused))]
    return [PromptProblem(message) for message in [*messages, *tally.failed]] + [
        PromptProblem(message, "warning") for message in refused
    ]


def _recording_problems(
    targets: dict[str, dict[str, str]], root: Path, voices: dict[str, VoiceSettings]
) -> _Tally:
    """What a check of these prompts says about their recordings, nothing else: the build's own plan,
    so `ivr check` and `ivr prompts build --check` never disagree."""
    tally = _Tally()
    for language, names in targets.items():
        _plan_language(root / language, names, voices[language], True, False, tally)
    return tally


# --- planning -------------------------------------------------------------------------------------


@attrs.frozen
class _Step:
    key: str  # "kk/1414/main"
    language_dir: Path
    name: str
    reason: str  # "missing", "stale", "recording", "refused" (a broken name.wav synthesised over)
    job: RenderJob
    manifest: Manifest = attrs.field(eq=False, repr=False)
    previous: Entry | None = None  # the manifest entry before this build
    text: str = ""
    # Where the admin's original goes: "after" a successful conversion (name.mp3 beside name.wav),
    # "before" it (the source is name.wav itself, which the conversion replaces), or "kept" already.
    move_source: str = "after"
    set_aside: Path | None = None  # "refused": where the broken name.wav is kept for the admin


@attrs.define
class _Plan:
    language_dir: Path
    manifest: Manifest
    targets: dict[str, str]
    voice: VoiceSettings
    wideband: bool
    force: bool
    steps: list[_Step] = attrs.field(factory=list)
    # Native human .wav files found in place of generated ones: their old generated .wav16 goes on build.
    adopted: list[tuple[str, Entry | None]] = attrs.field(factory=list)
    # Refused recordings set aside by earlier builds that a good recording has replaced since.
    leftovers: list[_Leftover] = attrs.field(factory=list)
    # Each folder's file names, read once (recordings are found by their ending in any case).
    listings: dict[Path, tuple[str, ...]] = attrs.field(factory=dict)

    @property
    def needs_speech(self) -> bool:
        return any(step.job.source is None for step in self.steps)

    def add_step(self, name: str, reason: str, job: RenderJob, text: str, **how: Any) -> None:
        previous = self.manifest.entries.get(name)
        self.steps.append(
            _Step(job.key, self.language_dir, name, reason, job, self.manifest, previous, text, **how)
        )

    def speak(self, name: str, text: str) -> RenderJob:
        """The job that synthesises `name` into its .wav (and .wav16)."""
        wav, wav16 = self.files(name)
        key = f"{self.language_dir.name}/{name}"
        return RenderJob(key, wav, wav16 if self.wideband else None, text=text, voice=self.voice)

    def files(self, name: str) -> tuple[Path, Path]:
        base = self.language_dir / name
        return base.with_name(base.name + NARROWBAND_EXT), base.with_name(base.name + WIDEBAND_EXT)

    def file_names(self, folder: Path) -> tuple[str, ...]:
        if folder not in self.listings:
            self.listings[folder] = tuple(sorted(os.listdir(folder))) if folder.is_dir() else ()
        return self.listings[folder]


# Where a refused recording stands, for its message: it is the prompt's own .wav, a name.mp3 (or
# another ending) beside it, or a copy an earlier build set aside into .refused/.
IN_PLACE, BESIDE, SET_ASIDE = "in place", "beside", "set aside"


# What callers hear of a prompt one of whose recordings an earlier build set aside (SET_ASIDE): the
# synthesised text; or, until a build, what has been put in its place since (itself refused), or nothing.
NOW_TEXT, NOW_REFUSED, NOW_MISSING = "text", "refused", "missing"


@attrs.frozen(order=True)
class _Refusal:
    """A recording the build will not play to callers: what is wrong with it and what callers hear."""

    # The file the message is about: where the admin put it ("prompts/ru/1414/welcome.wav"), or, for
    # SET_ASIDE, the copy an earlier build kept ("prompts/ru/.refused/1414/welcome.<sha>.wav").
    file: str
    fault: str  # "is not audio sox can read (sox: ...)"
    where: str
    kept: str = ""  # IN_PLACE: where the build keeps it, "prompts/ru/.refused/1414/welcome.<sha>.wav"
    # BESIDE: the prompt's own .wav, which callers go on hearing; SET_ASIDE: where it was set aside from
    prompt: str = ""
    now: str = NOW_TEXT  # SET_ASIDE: what callers hear of the prompt, before a build

    def message(self, check_only: bool) -> str:
        said = f"recording refused: {self.file} {self.fault}"
        put_right = f"put a good recording at {self.file} and run `ivr prompts build`"
        if self.where == BESIDE:
            return (
                f"{said}. It is left as it is and callers keep hearing {self.prompt}; replace it with a "
                "good recording (or delete it) and run `ivr prompts build`"
            )
        if self.where == SET_ASIDE:
            return (
                f"recording refused earlier: {self.file} (set aside from {self.prompt}) {self.fault}; "
                f"{self._now(check_only)}. To use a recording, put a good one at {self.prompt} and run "
                f"`ivr prompts build`; to keep the synthesised text, delete {self.file}"
            )
        if check_only:
            return (
                f"{said}. Callers get it as it is (a file Asterisk cannot read: the old .wav16, if there "
                "is one, or nothing) until `ivr prompts build` (or the engine, at its start or a menu "
                f"reload) sets it aside as {self.kept} and synthesises the text; {put_right}"
            )
        return (
            f"{said}. It is set aside as {self.kept}; callers hear the synthesised text. To use a "
            f"recording, {put_right}"
        )

    def _now(self, check_only: bool) -> str:
        """After a build callers hear the synthesised text; before it, a check says what is there."""
        if check_only and self.now == NOW_REFUSED:
            return f"callers get what is at {self.prompt} now, refused too (its own message says so)"
        if check_only and self.now == NOW_MISSING:
            return (
                f"{self.prompt} is missing now (callers get its .wav16 if there is one, else nothing) "
                "until `ivr prompts build` (or the running engine) synthesises the text"
            )
        return "callers hear the synthesised text"


@attrs.define
class _Tally:
    synthesized: list[str] = attrs.field(factory=list)
    converted: list[str] = attrs.field(factory=list)
    human: list[str] = attrs.field(factory=list)
    unchanged: list[str] = attrs.field(factory=list)
    removed: list[str] = attrs.field(factory=list)
    unused_human: list[str] = attrs.field(factory=list)
    outdated_human: list[str] = attrs.field(factory=list)
    unknown: list[str] = attrs.field(factory=list)
    recased: list[str] = attrs.field(factory=list)
    missing: list[str] = attrs.field(factory=list)
    stale: list[str] = attrs.field(factory=list)
    refused: list[_Refusal] = attrs.field(factory=list)
    failed: list[str] = attrs.field(factory=list)
    conversions: list[str] = attrs.field(factory=list)
    leftovers: list[str] = attrs.field(factory=list)
    to_convert: list[str] = attrs.field(factory=list)
    waiting: list[str] = attrs.field(factory=list)
    unused_notes: list[str] = attrs.field(factory=list)

    def report(self, *, check_only: bool = False) -> BuildReport:
        fields: dict[str, Any] = {
            name: tuple(sorted(value)) for name, value in attrs.asdict(self, recurse=False).items()
        }
        fields["refused"] = tuple(refusal.message(check_only) for refusal in sorted(set(self.refused)))
        fields["failed"] = tuple(self.failed)
        return BuildReport(check_only=check_only, **fields)


def _sha_or_none(path: Path) -> str | None:
    return file_sha256(path) if path.is_file() else None


def _plan_language(
    language_dir: Path,
    targets: dict[str, str],
    voice: VoiceSettings,
    wideband: bool,
    force: bool,
    tally: _Tally,
) -> _Plan:
    plan = _Plan(language_dir, Manifest.load(language_dir), targets, voice, wideband, force)
    for name, text in targets.items():
        _plan_prompt(plan, name, text, tally)
    _name_refusals_set_aside(plan, tally)
    return plan


def _plan_prompt(plan: _Plan, name: str, text: str, tally: _Tally) -> None:
    """What the build does for one prompt (the module's docstring says why)."""
    language_dir = plan.language_dir
    key = f"{language_dir.name}/{name}"
    wav, wav16 = plan.files(name)
    entry = plan.manifest.entries.get(name)
    wav_sha = _sha_or_none(wav)
    pending = entry is not None and entry.pending
    ours = entry is not None and wav_sha is not None and (pending or wav_sha == entry.wav_sha)
    wav16_target = wav16 if plan.wideband else None
    sources = _recording_sources(plan, wav)
    if sources:
        if len(sources) > 1 or (wav_sha is not None and not ours):
            found = ", ".join(p.name for p in ([wav] if wav_sha and not ours else []) + sources)
            tally.failed.append(f"{key}: several recordings ({found}); keep one")
            return
        fault = _fault_of(sources[0], text)
        if fault is None:
            plan.add_step(name, "recording", RenderJob(key, wav, wav16_target, source=sources[0]), text)
            return
        # Left where it is: the prompt's own files are untouched, and go on as if it were not there.
        tally.refused.append(_Refusal(str(sources[0]), fault, BESIDE, prompt=str(wav)))
    kept = language_dir / entry.source if entry is not None and entry.source else None
    if pending and entry is not None and entry.kind == HUMAN and kept is not None and kept.is_file():
        # A conversion was interrupted after the original was moved aside: convert it again.
        job = RenderJob(key, wav, wav16_target, source=kept)
        plan.add_step(name, "recording", job, text, move_source="kept")
    elif wav_sha is None:
        plan.add_step(name, "missing", plan.speak(name, text), text)
    elif ours and entry is not None and entry.kind == GENERATED:
        wav16_fine = not plan.wideband or _sha_or_none(wav16) == entry.wav16_sha
        stale = pending or entry.key != content_key(text, plan.voice, plan.wideband) or not wav16_fine
        if plan.force or stale:
            plan.add_step(name, "stale", plan.speak(name, text), text)
        else:
            tally.unchanged.append(key)
    elif ours:
        if entry is not None and entry.kind == HUMAN and entry.text and entry.text != normalize_text(text):
            tally.outdated_human.append(key)
        tally.human.append(key)
        tally.unchanged.append(key)
    else:
        _adopt_recording(plan, name, key, wav, wav_sha, wav16_target, tally, text)


def _adopt_recording(
    plan: _Plan, name: str, key: str, wav: Path, wav_sha: str, wav16: Path | None, tally: _Tally, text: str
) -> None:
    """A .wav the build did not write: a person's recording. Record it; convert it if Asterisk can't play it."""
    fault = _fault_of(wav, text)
    if fault is not None:
        _refuse_in_place(plan, name, wav, wav_sha, fault, tally, text)
        return
    info = read_wav_info(wav)
    if info is not None and info.is_narrowband_native:
        plan.adopted.append((name, plan.manifest.entries.get(name)))
        plan.manifest.entries[name] = Entry(HUMAN, wav_sha, text=normalize_text(text))  # what it says
        tally.human.append(key)
        tally.unchanged.append(key)
        return
    plan.add_step(name, "recording", RenderJob(key, wav, wav16, source=wav), text, move_source="before")


def _refuse_in_place(
    plan: _Plan, name: str, wav: Path, wav_sha: str, fault: str, tally: _Tally, text: str
) -> None:
    """A broken name.wav has taken the place of the prompt's narrowband audio, whatever that was (a
    native recording has no copy elsewhere): the text is synthesised there, in both formats, so every
    caller hears the same words, and the admin's file is kept in .refused/ to look at."""
    set_aside = plan.language_dir / REFUSED_DIR / f"{name}.{wav_sha[:12]}{wav.suffix}"
    tally.refused.append(_Refusal(str(wav), fault, IN_PLACE, kept=str(set_aside)))
    plan.add_step(name, "refused", plan.speak(name, text), text, set_aside=set_aside)


def _fault_of(recording: Path, text: str) -> str | None:
    """What is wrong with an admin's recording of `text`, or None. A recording that cannot be looked at
    (no sox) is not played either: refusing it keeps the prompt the build can vouch for."""
    try:
        return recording_fault(recording, needs=speaking_time(text))
    except AudioError as exc:
        return f"could not be checked: {exc}"
    except OSError as exc:
        return f"could not be read: {exc.strerror or exc}"


def speaking_time(text: str) -> float:
    """Seconds a person takes to say `text` at an ordinary pace: an estimate from its length, which is
    all a recording's check needs (only a recording under a third of it is refused), and there for every
    recording. The synthesised prompt's length would not be: a .wav recording dropped in its place has
    replaced it; and a voice set slower, for clarity, would lengthen it and so refuse a brisk speaker."""
    return len(normalize_text(text)) / ORDINARY_PACE


def _is_recording_ending(ending: str) -> bool:
    """name.mp3, name.flac ... and name.WAV: Windows tools write endings in capitals, while Asterisk
    looks for name.wav exactly; the build converts such a file into name.wav like any other source."""
    return ending != NARROWBAND_EXT and ending.lower() in RECORDING_EXTS


def _recording_sources(plan: _Plan, wav: Path) -> list[Path]:
    """The admin's recordings beside the prompt's own .wav, by the folder's listing: on a file system
    that ignores case, bye.WAV is bye.wav itself (the same file), not a second recording."""
    stem = wav.name[: -len(NARROWBAND_EXT)]
    found = []
    for file_name in plan.file_names(wav.parent):
        if not (file_name.startswith(stem) and _is_recording_ending(file_name[len(stem) :])):
            continue
        path = wav.parent / file_name
        if path.is_file() and not (wav.exists() and os.path.samefile(path, wav)):
            found.append(path)
    return found


_SET_ASIDE_NAME = re.compile(r"(?P<name>.+)\.[0-9a-f]{12}(?P<ending>\.[^./]+)")


def _name_refusals_set_aside(plan: _Plan, tally: _Tally) -> None:
    """Recordings an earlier build set aside into .refused/, each named as itself: while their prompt
    speaks the synthesised text, the admin has not put a good recording in their place yet, nor let
    them go. Once a good recording has replaced them, they are left over: the build removes them."""
    folder = plan.language_dir / REFUSED_DIR
    if not folder.is_dir():
        return
    steps = {step.name: step.reason for step in plan.steps}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        found = _SET_ASIDE_NAME.fullmatch(path.relative_to(folder).as_posix())
        if found is None or found["name"] not in plan.targets:
            continue
        name = found["name"]
        live = plan.language_dir / f"{name}{found['ending']}"
        entry = plan.manifest.entries.get(name)
        if entry is not None and entry.kind == HUMAN and not entry.pending:
            plan.leftovers.append(_Leftover(name, path, live, replaced=True))
            continue  # a good recording has been adopted since: the refused one is history
        if steps.get(name) == "recording":  # a good one is being adopted: history once it is converted
            plan.leftovers.append(_Leftover(name, path, live, replaced=False))
            continue
        now = {"refused": NOW_REFUSED, "missing": NOW_MISSING}.get(steps.get(name, ""), NOW_TEXT)
        fault = _fault_of(path, plan.targets[name]) or "was refused by an earlier build"
        tally.refused.append(_Refusal(str(path), fault, SET_ASIDE, prompt=str(live), now=now))


@attrs.frozen
class _Leftover:
    """A recording an earlier build refused and set aside, which a good recording has replaced since."""

    name: str
    path: Path
    live: Path  # where the good recording is
    replaced: bool  # already; else once the conversion under way succeeds

    def check_message(self) -> str:
        return (
            f"refused recording left over: {self.path} (a good recording replaces it at {self.live}): "
            "a build removes it"
        )


def _remove_leftovers(plan: _Plan, tally: _Tally) -> None:
    """Refused copies no one needs any more: broken audio, kept only until a good recording came."""
    for leftover in plan.leftovers:
        entry = plan.manifest.entries.get(leftover.name)
        adopted = entry is not None and entry.kind == HUMAN and not entry.pending
        if not (leftover.replaced or adopted) or not leftover.path.is_file():
            continue
        leftover.path.unlink()
        _prune_empty_dirs(leftover.path.parent, plan.language_dir)
        tally.leftovers.append(
            f"refused recording removed: {leftover.path} (a good recording has replaced it at "
            f"{leftover.live})"
        )


def _name_unknown_files(plan: _Plan, tally: _Tally) -> None:
    """Audio files in prompts/<lang>/ that no prompt is named after (`goodby.wav`, `egov.WAV16`, `main.mp3`
    outside its menu's folder): the build would otherwise pass over them without a word."""
    language = plan.language_dir.name
    if not plan.language_dir.is_dir():
        return
    for path in plan.language_dir.rglob("*"):
        relative = path.relative_to(plan.language_dir)
        if relative.parts[0] in (ORIGINALS_DIR, REFUSED_DIR, "incidents") or not path.is_file():
            continue  # admins' originals kept by the build; outage announcements the engine writes
        ending = path.suffix
        if ending.lower() not in (WIDEBAND_EXT, *RECORDING_EXTS):
            continue
        name = relative.with_suffix("").as_posix()
        known = name in plan.targets or name in plan.manifest.entries
        played = ending in (NARROWBAND_EXT, WIDEBAND_EXT) or _is_recording_ending(ending)
        if not known or not played:  # `egov.WAV16`: Asterisk looks for `egov.wav16` only
            tally.unknown.append(f"{language}/{relative.as_posix()}")


def _drop_generated_wav16(language_dir: Path, name: str, entry: Entry | None) -> None:
    """The prompt's new audio has no .wav16 (a human .wav, an 8 kHz recording, a narrowband build): the
    previous one, the build's by its hash, must not speak other words for it on wideband channels."""
    wav16 = language_dir / f"{name}{WIDEBAND_EXT}"
    if entry is not None and entry.wav16_sha and _sha_or_none(wav16) == entry.wav16_sha:
        wav16.unlink()


# --- execution ------------------------------------------------------------------------------------


def _execute(
    steps: list[_Step], workers: int | None, progress: ProgressCallback | None, tally: _Tally
) -> None:
    jobs: dict[str, tuple[_Step, RenderJob]] = {}
    for step in steps:
        job = step.job
        entries = step.manifest.entries
        if step.set_aside is not None:
            _set_aside(job.wav, step.set_aside)
        if job.source is None:
            entries[step.name] = Entry(GENERATED, "", text=step.text, pending=True)
        elif step.move_source == "before":
            kept = _original_path(step, job.source)
            kept.parent.mkdir(parents=True, exist_ok=True)
            os.replace(job.source, kept)
            job = attrs.evolve(job, source=kept)
            entries[step.name] = Entry(
                HUMAN, "", source=kept.relative_to(step.language_dir).as_posix(), pending=True
            )
        elif step.move_source == "after":
            entries[step.name] = Entry(HUMAN, "", pending=True)
        jobs[step.key] = (step, job)
    for manifest in {id(step.manifest): step.manifest for step in steps}.values():
        manifest.save()  # the pending marks must be on disk before any file is touched
    total = len(jobs)
    for done, result in enumerate(_run_jobs([job for _, job in jobs.values()], workers), start=1):
        step, job = jobs[result.key]
        _record(step, job, result, tally)
        if progress is not None:
            progress(done, total, result.key)


def _run_jobs(jobs: list[RenderJob], workers: int | None) -> Iterator[RenderResult]:
    workers = workers if workers is not None else min(os.cpu_count() or 1, 4)
    if workers <= 1 or len(jobs) < _MIN_PARALLEL_JOBS:
        for job in jobs:
            yield render(job)
        return
    # Threads, not processes: espeak-ng synthesis is serialised by a lock in synth.py (its state is
    # process-global), but the sox conversions, which run as child processes, overlap with it and with
    # each other. No start-up cost, and none of the spawn/fork hazards inside the engine's own process.
    with ThreadPoolExecutor(min(workers, len(jobs)), thread_name_prefix="prompts") as pool:
        futures = [pool.submit(render, job) for job in jobs]
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


def _set_aside(broken: Path, kept: Path) -> None:
    """Copied, not moved: the prompt's path is never empty while the text is synthesised over it."""
    kept.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(broken, kept)


def _original_path(step: _Step, source: Path) -> Path:
    digest = file_sha256(source)[:12]
    return step.language_dir / ORIGINALS_DIR / f"{step.name}.{digest}{source.suffix}"


def _record(step: _Step, job: RenderJob, result: RenderResult, tally: _Tally) -> None:
    manifest = step.manifest
    if result.error and job.source is not None:
        tally.failed.append(f"{step.key}: {_conversion_failed(step, job, result.error)}")
        return
    if result.error:
        tally.failed.append(f"{step.key}: {result.error}")
        return
    if result.wav16_sha is None:  # the last build's .wav16 would speak other words on wideband channels
        _drop_generated_wav16(step.language_dir, step.name, step.previous)
    if job.source is None:
        key = content_key(step.text, job.voice, job.wav16 is not None) if job.voice else ""
        manifest.entries[step.name] = Entry(GENERATED, result.wav_sha, result.wav16_sha, key, step.text)
        tally.synthesized.append(step.key)
        if step.reason == "missing":  # a converted recording deleted, its text synthesised in its place
            _name_original_left(step.language_dir, step.key, step.previous, tally)
        return
    # Where the admin put it: beside the prompt ("after"), the prompt's own .wav ("before"), or the
    # original kept by a conversion that was interrupted ("kept").
    put = step.job.wav if step.move_source == "before" else step.job.source
    if _recased(step):
        tally.recased.append(_file_key(step, step.job.source))  # its own line says it all
    source = job.source
    if step.move_source == "after":
        kept = _original_path(step, source)
        kept.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, kept)
        source = kept
    relative = source.relative_to(step.language_dir).as_posix()
    manifest.entries[step.name] = Entry(
        HUMAN, result.wav_sha, result.wav16_sha, text=normalize_text(step.text), source=relative
    )
    tally.converted.append(step.key)
    tally.human.append(step.key)
    if not _recased(step):
        wav16 = " and .wav16" if result.wav16_sha else ""
        if step.move_source == "before":
            into = "in its place" + (", with a .wav16" if wav16 else "")
        else:
            into = f"into {step.key}.wav{wav16}"
        tally.conversions.append(
            f"recording converted: {_file_key(step, put)} {into} (the original kept as "
            f"{_file_key(step, source)})"
        )


def _conversion_failed(step: _Step, job: RenderJob, error: str) -> str:
    """A recording sox could not convert: the prompt stays as it was (the render wrote both formats or
    neither), the admin's file goes back to where they put it, and the message names it there."""
    if step.previous is None:
        step.manifest.entries.pop(step.name, None)
    else:
        step.manifest.entries[step.name] = step.previous
    source = job.source
    if step.move_source == "before" and source is not None and not step.job.wav.exists():
        os.replace(source, step.job.wav)
        error = error.replace(str(source), str(step.job.wav))
    return error


def _remove_unused(plan: _Plan, tally: _Tally, *, dry_run: bool = False) -> None:
    language = plan.language_dir.name
    for name, entry in list(plan.manifest.entries.items()):
        if name in plan.targets:
            continue
        key = f"{language}/{name}"
        wav = plan.language_dir / f"{name}{NARROWBAND_EXT}"
        wav16 = plan.language_dir / f"{name}{WIDEBAND_EXT}"
        original = _original_of(plan.language_dir, entry)
        if entry.kind == HUMAN and wav.exists():
            tally.unused_human.append(key)  # a person's recording is theirs to delete
            if original is None:
                tally.unused_notes.append(UNUSED_HUMAN.format(name=key))
            else:
                folder = key.rpartition("/")[0] + "/"
                tally.unused_notes.append(
                    UNUSED_CONVERTED.format(
                        name=key, original=original, folder=folder, ending=original.suffix
                    )
                )
            continue
        # A generated prompt, or a recording its admin deleted: what the build made of it goes too (a
        # converted .wav16 by its hash), the original in .originals/ stays, and the admin is told so.
        tally.removed.append(key)
        _name_original_left(plan.language_dir, key, entry, tally)
        if dry_run:
            continue
        for path, sha in ((wav, entry.wav_sha), (wav16, entry.wav16_sha)):
            # Only the build's own bytes: a person's file put in its place since is left alone.
            if path.is_file() and (entry.pending or (sha and file_sha256(path) == sha)):
                path.unlink()
        del plan.manifest.entries[name]
        _prune_empty_dirs(wav.parent, plan.language_dir)


def _original_of(language_dir: Path, entry: Entry | None) -> Path | None:
    """The original a human recording was converted from, when it is still in .originals/ ("ru/.originals/
    1414/welcome.<sha>.mp3", as the report names files); None for a .wav adopted as it was."""
    if (
        entry is None
        or entry.kind != HUMAN
        or not entry.source
        or not (language_dir / entry.source).is_file()
    ):
        return None
    return Path(language_dir.name) / entry.source


def _name_original_left(language_dir: Path, key: str, entry: Entry | None, tally: _Tally) -> None:
    """The admin deleted a converted recording's .wav: its original in .originals/ is all that is left of
    it, and nothing names it after this build (it is theirs, so the build does not delete it)."""
    original = _original_of(language_dir, entry)
    if original is not None:
        tally.unused_notes.append(
            DELETED_CONVERTED.format(name=key, original=original, ending=original.suffix)
        )


def _prune_empty_dirs(directory: Path, stop: Path) -> None:
    while directory != stop and directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()
        directory = directory.parent
