"""Training choices and defaults: defined once in glitchnet.config, read by the command, the app and training."""

import dataclasses
import subprocess
import sys

import pytest

from glitchnet.architectures import ARCHITECTURE_NAMES
from glitchnet.classes import CLASSES, DURATIONS_S
from glitchnet.cli import build_parser
from glitchnet.config import ALL_VIEWS, AUGMENTATION_LABELS, AUGMENTATION_MODES, DURATION_VIEWS, VIEWS, TrainConfig


def _train_actions() -> dict:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")  # argparse keeps subparsers in a private list
    return {a.dest: a for a in sub.choices["train"]._actions}


def test_the_command_takes_its_training_defaults_and_choices_from_train_config():
    actions = _train_actions()
    fields = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.name != "data"}
    assert set(fields) <= set(actions)  # every knob is an option
    for name, default in fields.items():
        assert actions[name].default == default, name
    assert tuple(actions["augment"].choices) == AUGMENTATION_MODES
    assert tuple(actions["arch"].choices) == ARCHITECTURE_NAMES
    assert "0.5, 1.0, 2.0, 4.0 or all" in actions["view"].help


def test_views_are_the_gravity_spy_durations_and_all():
    from glitchnet.config import parse_view
    from glitchnet.errors import DatasetError

    assert VIEWS == ("0.5", "1.0", "2.0", "4.0", "all") and VIEWS == (*DURATION_VIEWS, ALL_VIEWS)
    assert [parse_view(v) for v in VIEWS] == [*DURATIONS_S, None]
    assert TrainConfig.view in VIEWS and TrainConfig.augment in AUGMENTATION_MODES
    with pytest.raises(DatasetError, match=r"view must be one of 0\.5, 1\.0, 2\.0, 4\.0 or 'all', not '3'"):
        parse_view("3")


def test_training_and_augmentation_read_the_same_definitions():
    import glitchnet.augment as augment
    import glitchnet.train as train

    assert train.TrainConfig is TrainConfig and augment.AUGMENTATION_MODES is AUGMENTATION_MODES
    assert list(AUGMENTATION_LABELS) == list(AUGMENTATION_MODES)
    with pytest.raises(ValueError, match="augmentation mode must be one of class, generic, none"):
        augment.make_augmenter("flips")


def test_a_checkpoint_records_the_views_it_was_trained_on():
    from glitchnet.model import GlitchNet
    from glitchnet.train import _describe

    model = GlitchNet(width=8)
    classes = list(CLASSES)
    assert _describe(model, TrainConfig(data="d", view=ALL_VIEWS), 1, [], {}, classes).views == list(DURATION_VIEWS)
    assert _describe(model, TrainConfig(data="d", view="2"), 1, [], {}, classes).views == ["2.0"]


def test_the_settings_and_the_command_line_load_without_torch():
    code = "import sys, glitchnet.config, glitchnet.cli; glitchnet.cli.build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
