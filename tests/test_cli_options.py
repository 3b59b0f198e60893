"""The commands' options for settings are made from their declaration in
``fuzzer/settings.py`` (issue 18, item 3): one declaration per option, and the README's
synopsis names every option a command takes."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import click
from click.testing import CliRunner

from fuzzer.cli.commands import main
from fuzzer.cli.options import click_option, parse_function, settings_of
from fuzzer.settings import Flag, Settings, flags, names

ROOT = Path(__file__).resolve().parent.parent


def test_every_settings_option_of_a_command_is_its_flag() -> None:
    for name, command in main.commands.items():
        declared = {f.name: flag for f, flag in flags(name)}
        options = {p.name: p for p in command.params if p.name in names()}
        assert set(options) == set(declared), name
        for setting, flag in declared.items():
            option = options[setting]
            assert isinstance(option, click.Option)
            assert option.opts[0] == flag.name, (name, setting)
            assert (option.help or "") == flag.get(name, "help"), (name, setting)
    assert {f.name for f, _ in flags("run")} >= {"db", "max_examples", "seed", "fail_on"}
    parsed = [f for f in dataclasses.fields(Settings) if f.metadata.get("flag", Flag("", ())).parse]
    assert {f.name for f in parsed} == {"fail_on", "faults"}
    for f in parsed:
        assert callable(parse_function(f.metadata["flag"]))


def test_a_new_setting_is_an_option_from_its_declaration_alone() -> None:
    @dataclasses.dataclass
    class More:
        rounds: int = dataclasses.field(default=3)
        words: frozenset[str] = frozenset()

    rounds, words = dataclasses.fields(More)
    rounds_flag = Flag(
        "--rounds", ("probe",), "How many rounds.", short="-r", kind=int, low=1, high=9
    )
    words_flag = Flag(
        "--words", ("probe",), "Words.", default="a", parse="tests.test_cli_options:_words"
    )
    seen = {}

    @click.command("probe")
    @click_option(rounds, rounds_flag, "probe")
    @click_option(words, words_flag, "probe")
    def probe(**options: object) -> None:
        seen.update(options)

    ran = CliRunner().invoke(probe, ["-r", "4", "--words", "x,y"])
    assert ran.exit_code == 0, ran.output
    assert seen == {"rounds": 4, "words": frozenset({"x", "y"})}
    ran = CliRunner().invoke(probe, [])
    assert seen == {"rounds": 3, "words": frozenset({"a"})}  # the field's, and the flag's
    ran = CliRunner().invoke(probe, ["--rounds", "10"])
    assert ran.exit_code == 2 and "10 is not in the range 1<=x<=9" in ran.output
    ran = CliRunner().invoke(probe, ["--words", ","])
    assert ran.exit_code == 2 and "Invalid value for --words: no words" in ran.output
    assert "How many rounds." in CliRunner().invoke(probe, ["--help"]).output


def _words(text: str) -> frozenset[str]:
    found = frozenset(w for w in text.split(",") if w)
    if not found:
        raise ValueError("no words")
    return found


def test_the_options_make_the_settings_the_command_line_defaults_apply_to() -> None:
    made = settings_of({"db": "sqlite", "faults": (), "fail_on": {"rows"}, "seed": 3})
    assert made == Settings.for_cli(fail_on=frozenset({"rows"}), seed=3)


def test_the_readme_synopsis_names_every_option() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    synopsis = readme.split("## The command line", 1)[1].split("```")[1]
    for name, command in main.commands.items():
        lines = re.findall(rf"^fuzzer {name} .*(?:\n {{10,}}.*)*", synopsis, flags=re.M)
        assert lines, name
        given = " ".join(lines)
        for option in command.params:
            if isinstance(option, click.Option) and not option.hidden:
                assert any(re.search(rf"(?<![\w-]){o}\b", given) for o in option.opts), (
                    f"fuzzer {name} {option.opts[0]}"
                )
