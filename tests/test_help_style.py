"""Help texts in one style (#30 point 6): the list of commands in lower case without a full
stop, each command's description in sentences, and every default as "(default: ...)" at
the end of its option's help."""

import argparse
import re

import pytest

from napari_yolosam.cli.parser import build_parser


def _commands():
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    helps = {c.dest: c.help for c in sub._choices_actions}
    return [(name, helps[name], p) for name, p in sub.choices.items()]


@pytest.mark.parametrize(
    "name, help_, parser", _commands(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_one_style_for_descriptions_and_defaults(name, help_, parser):
    assert help_[0].islower() and not help_.endswith("."), f"{name}: {help_!r}"
    assert parser.description[0].isupper() and parser.description.endswith("."), name
    formatter = parser._get_formatter()
    for action in parser._actions:
        if not action.option_strings or action.help in (None, argparse.SUPPRESS):
            continue
        text = formatter._expand_help(action)
        for found in re.finditer(r"default", text):
            start = found.start()
            assert text[start - 1 : start] == "(" and text[found.end()] == ":", (
                f"{name} {action.option_strings[0]}: {text!r}"
            )
        if "(default:" in text:
            assert text.rstrip().endswith(")"), f"{name} {action.option_strings[0]}: {text!r}"
