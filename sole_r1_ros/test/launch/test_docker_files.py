"""Docker files: checked statically (no Docker engine runs here)."""
import os
import re

import yaml

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))


def test_dockerfile_copies_existing_paths_and_builds_with_colcon():
    text = open(os.path.join(_REPO, 'docker', 'Dockerfile')).read()
    assert re.search(r'^FROM ros:\$\{ROS_DISTRO\}', text, re.M)
    for source in re.findall(r'^COPY (\S+) ', text, re.M):
        assert os.path.exists(os.path.join(_REPO, source)), source
    assert 'colcon build' in text


def test_compose_runs_the_reward_node_on_a_gpu_and_the_rest_by_the_robot():
    compose = yaml.safe_load(open(os.path.join(_REPO, 'docker', 'compose.yaml')))
    services = compose['services']
    assert 'reward_node' in services['reward']['command']
    gpu = services['reward']['deploy']['resources']['reservations']['devices'][0]
    assert gpu['capabilities'] == ['gpu']
    assert 'learner_node' in services['robot']['command']
    assert 'camera_node' in services['robot']['command']
    for service in services.values():
        for part in re.findall(r'share/sole_r1_ros/(config/\S+)', service['command']):
            assert os.path.exists(os.path.join(_REPO, 'sole_r1_ros', part)), part
