"""Docker files: checked statically (no Docker engine runs here)."""
import json
import os
import re
import shlex

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
    robot_script = open(os.path.join(_REPO, 'docker', 'robot.sh')).read()
    # the learner gets the goal as the reward node does: it refuses a run of another goal
    assert services['robot']['command'] == ('bash /ws/src/sole_r1_ros/docker/robot.sh '
                                            '-p learner_node:goal:="${GOAL:-close the drawer}"')
    assert 'learner_node' in robot_script and 'camera_node' in robot_script
    for name in ('robot', 'sim'):   # the learner's stop budget + its final checkpoint
        assert int(services[name]['stop_grace_period'].rstrip('s')) >= 30, name
    for name in ('reward', 'reward_vllm'):   # PID 1 must handle SIGTERM: no `ros2 run` in between
        assert services[name]['command'].split()[0] == 'reward_node', name
    for service in services.values():
        for part in re.findall(r'share/sole_r1_ros/(config/\S+)', service['command']):
            assert os.path.exists(os.path.join(_REPO, 'sole_r1_ros', part)), part


def _flags(words):
    """{'--flag': 'value' or True} of a command line split into words."""
    flags, index = {}, 0
    while index < len(words):
        if words[index].startswith('--'):
            has_value = index + 1 < len(words) and not words[index + 1].startswith('--')
            flags[words[index]] = words[index + 1] if has_value else True
            index += 2 if has_value else 1
        else:
            index += 1
    return flags


def test_compose_serves_sole_r1_with_vllm_and_points_the_reward_node_at_it():
    compose = yaml.safe_load(open(os.path.join(_REPO, 'docker', 'compose.yaml')))
    vllm, client = compose['services']['vllm'], compose['services']['reward_vllm']
    assert vllm['image'].startswith('vllm/vllm-openai:')
    assert vllm['deploy']['resources']['reservations']['devices'][0]['capabilities'] == ['gpu']
    assert 'health' in ' '.join(vllm['healthcheck']['test'])
    flags = _flags(shlex.split(vllm['command']))
    assert flags['--model'].endswith('Philip-MIT/SOLE-R1-8B}')
    assert flags['--enable-prefix-caching'] is True
    assert int(flags['--max-model-len']) >= 2048 + 200   # the authors' prompt limit + reply
    assert json.loads(flags['--limit-mm-per-prompt']) == {'image': 1, 'video': 0}
    assert flags['--generation-config'] == 'vllm'   # sampling only from each request
    # The reward node asks the vllm service for the model it serves, without a GPU of its own.
    assert client['depends_on']['vllm']['condition'] == 'service_healthy'
    assert 'deploy' not in client
    params = dict(re.findall(r'-p reward_node:([\w.]+):=(\S+)', client['command']))
    assert params['backend'] == 'openai'
    assert params['model'] == flags['--served-model-name']
    assert params['openai.base_url'] == f"http://{flags['--host']}:{flags['--port']}/v1"
    assert client['environment']['SOLE_R1_API_KEY'] == vllm['environment']['VLLM_API_KEY']


def test_readme_vllm_command_matches_the_compose_service_and_sampling_is_the_authors():
    readme = open(os.path.join(_REPO, 'README.md')).read()
    [command] = re.findall(r'^vllm serve .*?(?<!\\)$', readme, re.M | re.S)
    words = shlex.split(command.replace('\\\n', ' '))
    compose = yaml.safe_load(open(os.path.join(_REPO, 'docker', 'compose.yaml')))
    served = _flags(shlex.split(compose['services']['vllm']['command']))
    served.pop('--model')
    assert words[2] == 'Philip-MIT/SOLE-R1-8B'
    assert _flags(words) == served
    # vLLM takes the sampling from each request: RewardConfig's defaults are the authors'.
    from sole_r1_ros.reward import OpenAIConfig, RewardConfig
    config = RewardConfig()
    assert (config.temperature, config.top_p, config.top_k, config.max_new_tokens) == \
        (1.0, 0.9, 50, 200)
    assert OpenAIConfig().send_top_k and OpenAIConfig().image_format == 'png'
