"""Configs: config/learner.yaml lists every DrQConfig / ReplayConfig field with the right type."""
import dataclasses
from pathlib import Path

import pytest
import yaml

from sole_r1_ros.configuration import from_mapping
from sole_r1_ros.rl.config import DrQConfig, ReplayConfig

LEARNER_YAML = Path(__file__).resolve().parents[2] / 'config' / 'learner.yaml'


def _params() -> dict:
    doc = yaml.safe_load(LEARNER_YAML.read_text())
    return doc['/**/learner_node']['ros__parameters']


@pytest.mark.parametrize('section, cls', [('agent', DrQConfig), ('replay', ReplayConfig)])
def test_learner_yaml_lists_every_field_with_the_default_type(section, cls):
    values = _params()[section]
    fields = {f.name: f.default for f in dataclasses.fields(cls)}
    assert set(values) == set(fields)
    for name, default in fields.items():
        # ROS parameters are typed by their first value: 1 is an integer, 1.0 a double
        expected = list if isinstance(default, tuple) else type(default)
        assert type(values[name]) is expected, name
    assert isinstance(from_mapping(cls, values), cls)


def test_from_mapping_rejects_unknown_fields_and_converts_lists():
    config = from_mapping(DrQConfig, {'image_keys': ['external'], 'lr': 1e-3})
    assert config.image_keys == ('external',) and config.lr == 1e-3
    with pytest.raises(ValueError, match='unknown'):
        from_mapping(ReplayConfig, {'capacity': 10, 'capcity': 10})


@pytest.mark.parametrize('field, value', [
    ('fill', 'cubic'), ('reward_mode', 'log'), ('capacity', 0), ('min_labelled_share', 1.5),
    ('success_progress', 120.0), ('max_fill_gap', -1)])
def test_invalid_replay_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        ReplayConfig(**{field: value})


def test_teleop_in_joint_space_is_refused_with_the_reason():
    from sole_r1_ros.nodes.learner_config import LearnerNodeConfig
    with pytest.raises(ValueError, match="teleop needs action_layout 'ee_delta'"):
        LearnerNodeConfig(teleop=True, action_layout='joint_position')
    assert LearnerNodeConfig(teleop=True).teleop
